"""experiments/gpu_fit.py (the JAX trainer of pretrained/mnist) and gpu_tensorboard.py."""

import json
import os
import subprocess
import sys
import tempfile
import time

from tests.test_case import REPO, GlomTestCase, mnist_dir, user_env


class GpuFitTest(GlomTestCase):
    def test_trains_to_the_deadline_annealed_and_the_model_loads_under_tensorflow(self):
        try:
            import jax  # noqa: F401
        except ImportError:
            self.skipTest("jax is not installed (pip install -e .[jax])")
        from glom_tf.cli import load_glom_model
        from glom_tf.config import Config
        from training import data
        from training.recipe import compile_model

        peak = 0.004
        with tempfile.TemporaryDirectory() as tmp:
            prefix = os.path.join(tmp, "run")
            deadline = time.time() + 75
            command = [
                sys.executable, os.path.join(REPO, "experiments", "gpu_fit.py"), "--preset", "tiny",
                "--set", "train_size=400", "--set", "validation_size=200", "--set", "batch_size=20",
                "--set", "augment_shift=2", "--set", f"learning_rate={peak}", "--data-dir", mnist_dir(),
                "--out", prefix, "--deadline", str(deadline), "--reserve", "15",
            ]  # fmt: skip
            env = user_env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            self.assertEqual(done.returncode, 0, done.stderr[-3000:])
            self.assertLessEqual(os.path.getmtime(prefix + ".json"), deadline)
            with open(prefix + ".json") as f:
                summary = json.load(f)
            with open(prefix + ".jsonl") as f:
                rows = [json.loads(line) for line in f]
            rates = summary["lr_per_chunk"]
            # a warm-up chunk at a fifth of the peak, then the cosine from the peak down
            self.assertAllClose(rates[0], 0.2 * peak)
            self.assertAllClose(rates[1], peak, rtol=0.05)
            self.assertTrue(all(a >= b for a, b in zip(rates[1:], rates[2:])), rates)
            self.assertGreater(len(rates), 4)
            self.assertLess(rates[-1], 0.35 * peak)
            self.assertEqual(summary["chunks"], len(rates))
            self.assertEqual([r["epoch"] for r in rows], list(range(1, len(rows) + 1)))
            self.assertEqual(summary["history"], rows)
            self.assertEqual(summary["train_examples"], 400)
            self.assertEqual(summary["backend"], "jax")

            # The saved model under TensorFlow, on the same held-out images, gives the figures
            # the JAX run reported.
            config = Config(
                **{k: tuple(v) if isinstance(v, list) else v for k, v in summary["config"].items()}
            )
            _, validation = data.split_train_validation(
                data.load_arrays("mnist", "train", mnist_dir()), 200, 400, config.seed
            )
            model = compile_model(load_glom_model(prefix + ".keras"), config)
            figures = model.evaluate(
                validation.images.astype("float32") / 255.0, validation.labels.astype("int32"),
                batch_size=100, verbose=0, return_dict=True,
            )  # fmt: skip
            for key in ("vote_accuracy", "mean_accuracy", "loss"):
                self.assertAllClose(figures[key], summary["validation"][key], atol=1e-4)

    def test_init_from_under_jax_copies_the_shared_weights_by_path(self):
        """gpu_fit's second stages start from `initial_weights(config).assign_to(model)` under JAX."""
        try:
            import jax  # noqa: F401
        except ImportError:
            self.skipTest("jax is not installed (pip install -e .[jax])")
        script = """
import json, sys
import numpy as np
from glom_tf.model import build_model
from glom_tf.presets import get_preset
from training.train import initial_weights
tiny = get_preset("tiny")
source = build_model(tiny.with_overrides(seed=5))
source.save(sys.argv[1])
config = tiny.with_overrides(position="top_down", init_from=sys.argv[1])
model = build_model(config)
weights = initial_weights(config)
weights.assign_to(model)
given = {v.path: np.asarray(v) for v in source.weights}
got = {v.path: np.asarray(v) for v in model.weights}
print(json.dumps({"note": weights.note, "only_here": sorted(set(got) - set(given)),
                  "max_diff": max(float(np.abs(got[k] - given[k]).max()) for k in given)}))
"""
        with tempfile.TemporaryDirectory() as tmp:
            env = user_env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
            done = subprocess.run(
                [sys.executable, "-c", script, os.path.join(tmp, "source.keras")],
                env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            self.assertEqual(done.returncode, 0, done.stderr[-3000:])
            result = json.loads(done.stdout.strip().splitlines()[-1])
        self.assertEqual(result["only_here"], ["glom/step/location"])
        self.assertEqual(result["note"], "; initialised fresh: glom/step/location")
        self.assertEqual(result["max_diff"], 0.0)

    def test_bad_arguments_are_one_line_errors(self):
        script = os.path.join(REPO, "experiments", "gpu_fit.py")
        for args, expected in (
            (["--preset", "nope", "--data-dir", "x", "--out", "y", "--deadline", "1"], "unknown preset"),
            (
                ["--preset", "tiny", "--data-dir", "/nonexistent", "--out", "y", "--deadline", "1"],
                "no such directory",
            ),
            (["--preset", "tiny", "--data-dir", mnist_dir(), "--out", "y", "--deadline", "1"], "has passed"),
            (
                [
                    "--preset",
                    "tiny",
                    "--set",
                    "train_size=30",
                    *["--data-dir", mnist_dir(), "--out", "y"],
                    "--deadline",
                    "9e9",
                ],
                "make no chunk",
            ),
            (
                ["--preset", "tiny", "--data-dir", "x", "--out", "y", "--deadline", "1", "--require-gpu"],
                "--require-gpu",
            ),
        ):
            done = subprocess.run(
                [sys.executable, script, *args], env=user_env(), capture_output=True, text=True
            )
            self.assertEqual(done.returncode, 2, done.stderr)
            self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
            self.assertIn(expected, done.stderr)


class GpuTensorBoardTest(GlomTestCase):
    def test_summary_becomes_tensorboard_runs_with_hparams(self):
        import tensorflow as tf
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        import glom_tf

        config = json.loads(glom_tf.get_preset("tiny").to_json())
        history = [
            {"epoch": e, "lr": 0.01 / e, "train_loss": 2.0 / e, "train_vote_accuracy": 0.1 * e,
             "val_loss": 2.5 / e, "val_mean_accuracy": 0.05 * e, "seconds": 3.0 * e}
            for e in (1, 2, 3)
        ]  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, "stage9")
            os.makedirs(folder)
            path = os.path.join(folder, "demo.json")
            with open(path, "w") as f:
                json.dump({"config": config, "history": history}, f)
            logdir = os.path.join(tmp, "tb")
            command = [
                sys.executable,
                os.path.join(REPO, "experiments", "gpu_tensorboard.py"),
                "--logdir",
                logdir,
            ]
            done = subprocess.run([*command, path], env=user_env(), capture_output=True, text=True)
            self.assertEqual(done.returncode, 0, done.stderr)
            read, tags = {}, {}
            for split in ("train", "validation"):
                acc = EventAccumulator(
                    os.path.join(logdir, "stage9_demo", split), size_guidance={"tensors": 0}
                )
                acc.Reload()
                tags[split] = set(acc.Tags()["tensors"])
                read[split] = {
                    tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
                    for tag in tags[split]
                    if tag.startswith("epoch_")
                }
            self.assertAllClose([v for _, v in read["train"]["epoch_loss"]], [2.0, 1.0, 2.0 / 3])
            self.assertEqual([s for s, _ in read["train"]["epoch_loss"]], [0, 1, 2])
            self.assertAllClose([v for _, v in read["train"]["epoch_learning_rate"]], [0.01, 0.005, 0.01 / 3])
            self.assertAllClose([v for _, v in read["validation"]["epoch_mean_accuracy"]], [0.05, 0.1, 0.15])
            self.assertNotIn("epoch_seconds", read["train"])
            self.assertIn("_hparams_/session_start_info", tags["validation"])
            # a second conversion into the same logdir is refused, and nothing is overwritten
            before = sorted(os.listdir(os.path.join(logdir, "stage9_demo", "train")))
            again = subprocess.run([*command, path], env=user_env(), capture_output=True, text=True)
            self.assertEqual(again.returncode, 2)
            self.assertIn("exists", again.stderr)
            self.assertEqual(sorted(os.listdir(os.path.join(logdir, "stage9_demo", "train"))), before)
