"""tf.distribute on CPU: MirroredStrategy on 2 logical devices, 2 multi-worker processes."""

import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np

import glom_tf.model  # noqa: F401  (registers the model classes for loading)
from tests.test_case import REPO, GlomTestCase, mnist_dir, user_env

FIT = (
    "import os, sys, json\n"
    "import tensorflow as tf\n"
    "cpu = tf.config.list_physical_devices('CPU')[0]\n"
    "tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
    "import glom_tf\n"
    "from training.train import fit\n"
    # A tiny learning rate keeps the weights where they start, so the logged losses of every
    # strategy must agree closely (a replica-scaling bug would be off by a factor of 2).
    "c = glom_tf.get_preset('tiny').with_overrides(\n"
    "    train_size=256, validation_size=100, epochs=1, seed=1, learning_rate=float(sys.argv[4]))\n"
    "m = fit(c, sys.argv[1], data_dir=sys.argv[2], strategy=sys.argv[3], verbose=0)\n"
    "print('RESULT', json.dumps(m))\n"
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def result(run):
    line = [x for x in run.stdout.splitlines() if x.startswith("RESULT ")]
    return json.loads(line[-1][len("RESULT ") :])


class DistributeTest(GlomTestCase):
    def fit(self, workdir, strategy, env=None, wait=True, learning_rate=1e-6):
        cmd = [sys.executable, "-c", FIT, workdir, mnist_dir(), strategy, str(learning_rate)]
        env = user_env(**(env or {}))
        if wait:
            return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        return subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def test_mirrored_and_multi_worker_match_one_device(self):
        tmp = self.get_temp_dir()
        single = self.fit(os.path.join(tmp, "single"), "default")
        self.assertEqual(single.returncode, 0, single.stderr[-3000:])
        mirrored = self.fit(os.path.join(tmp, "mirrored"), "mirrored")
        self.assertEqual(mirrored.returncode, 0, mirrored.stderr[-3000:])
        one, two = result(single), result(mirrored)
        self.assertEqual(two["replicas"], 2)
        self.assertAllClose(two["train_loss"], one["train_loss"], rtol=1e-5)

        ports = [free_port(), free_port()]
        workers = []
        for index in range(2):
            tf_config = {
                "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                "task": {"type": "worker", "index": index},
            }
            workdir = os.path.join(tmp, f"worker{index}")
            workers.append(
                self.fit(workdir, "multi_worker", {"TF_CONFIG": json.dumps(tf_config)}, wait=False)
            )
        outputs = [w.communicate(timeout=900) for w in workers]
        for w, (_, err) in zip(workers, outputs):
            self.assertEqual(w.returncode, 0, err[-3000:])
        results = [json.loads(o.split("RESULT ")[-1].splitlines()[0]) for o, _ in outputs]
        self.assertEqual(results[0]["replicas"], 2)
        self.assertAllClose(results[0]["train_loss"], one["train_loss"], rtol=1e-5)
        self.assertEqual(results[0]["train_loss"], results[1]["train_loss"])
        weights = [
            keras.saving.load_model(os.path.join(tmp, f"worker{i}", "model.keras")).get_weights()
            for i in range(2)
        ]
        for a, b in zip(*weights):
            self.assertAllEqual(a, b)
        single_weights = keras.saving.load_model(os.path.join(tmp, "single", "model.keras")).get_weights()
        self.assertTrue(all(np.allclose(a, b, atol=1e-5) for a, b in zip(weights[0], single_weights)))
