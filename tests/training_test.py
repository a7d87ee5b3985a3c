"""End-to-end training on real digits: fit, evaluate, TensorBoard, resume, faults, bad input."""

import glob
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

from tests.test_case import MNIST_DIR, REPO, GlomTestCase

TINY = ["--preset", "tiny", "--set", "train_size=300", "--set", "validation_size=200", "--quiet"]


def cli(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def one_line_error(test, run, code=2, needle=None):
    test.assertEqual(run.returncode, code, run.stdout[-1000:] + run.stderr[-2000:])
    lines = run.stderr.strip().splitlines()
    test.assertEqual(len(lines), 1, run.stderr)
    test.assertTrue(lines[0].startswith("error: "), lines[0])
    test.assertNotIn("Traceback", run.stderr)
    if needle:
        test.assertIn(needle, lines[0])


def scalars(logdir):
    """{tag: [(step, value)]} from the event files under `logdir` (tensorboard's reader)."""
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(logdir, size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["tensors"]:
        events = acc.Tensors(tag)
        values = [(e.step, _tensor(e.tensor_proto).reshape(-1)) for e in events]
        if events and events[0].tensor_proto.dtype in (1, 2) and all(v.size == 1 for _, v in values):
            out[tag] = [(step, float(v[0])) for step, v in values]  # float or double scalars
    return out, acc


def _tensor(proto):
    import tensorflow as tf

    return np.asarray(tf.make_ndarray(proto))


class FitEndToEndTest(GlomTestCase):
    def setUp(self):
        super().setUp()
        self.skip_without_mnist_files()

    def test_fit_then_evaluate_and_tensorboard(self):
        workdir = os.path.join(self.get_temp_dir(), "run")
        run = cli("training.fit", *TINY, "--epochs", "2", "--data-dir", MNIST_DIR, "--workdir", workdir)
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        for name in ("config.json", "metrics.json", "model.keras", "checkpoints/last.keras"):
            self.assertTrue(os.path.exists(os.path.join(workdir, name)), name)
        metrics = json.load(open(os.path.join(workdir, "metrics.json")))
        self.assertEqual((metrics["images"], metrics["train_examples"], metrics["epochs"]), (200, 300, 2))
        self.assertTrue(metrics["source"].startswith("idx:"))
        self.assertEqual(len(metrics["confusion_matrix"]), 10)
        self.assertEqual(sum(map(sum, metrics["confusion_matrix"])), 200)
        self.assertAlmostEqual(
            metrics["accuracy_vote"], np.trace(metrics["confusion_matrix"]) / 200, places=6
        )
        config = json.load(open(os.path.join(workdir, "config.json")))
        self.assertEqual((config["dim"], config["epochs"], config["train_size"]), (8, 2, 300))

        # TensorBoard: train/validation scalars per epoch, extras, an image panel, hparams.
        train, _ = scalars(os.path.join(workdir, "tensorboard", "train"))
        val, _ = scalars(os.path.join(workdir, "tensorboard", "validation"))
        for tag in ("epoch_loss", "epoch_vote_accuracy", "epoch_agreement"):
            self.assertEqual([s for s, _ in train[tag]], [0, 1], tag)
            self.assertIn(tag, val)
        extras, acc = scalars(os.path.join(workdir, "tensorboard", "extras"))
        self.assertEqual(len(extras["learning_rate"]), 2)
        self.assertAlmostEqual(extras["learning_rate"][0][1], 0.01, places=6)
        self.assertGreater(extras["images_per_second"][-1][1], 0)
        panel = acc.Tensors("validation_panel")[-1].tensor_proto
        self.assertGreater(len(panel.string_val), 2)  # width, height, PNG bytes
        self.assertTrue(panel.string_val[2].startswith(b"\x89PNG"))
        hp_files = glob.glob(os.path.join(workdir, "tensorboard", "extras", "*"))
        self.assertTrue(any(b"hparams" in open(f, "rb").read() for f in hp_files))

        # Evaluate on the official test split.
        out = os.path.join(workdir, "eval.json")
        ev = cli(
            "training.evaluate", "--model", os.path.join(workdir, "model.keras"), "--dataset", "mnist",
            "--split", "test", "--data-dir", MNIST_DIR, "--limit", "300", "--out", out,
        )  # fmt: skip
        self.assertEqual(ev.returncode, 0, ev.stderr[-3000:])
        figures = json.load(open(out))
        self.assertEqual(figures["images"], 300)
        for key in ("accuracy_vote", "accuracy_mean", "agreement", "agreement_digit", "per_class_accuracy"):
            self.assertIn(key, figures)
        curves = figures["islands"]  # per time step, per level
        self.assertEqual(len(curves["agreement"]), config["steps"] + 1)
        self.assertEqual(len(curves["similarity"][0]), config["levels"])
        self.assertIn("agreement by time step", ev.stdout)
        confusion = np.array(figures["confusion_matrix"])
        self.assertEqual(confusion.sum(), 300)
        self.assertAlmostEqual(figures["accuracy_vote"], np.trace(confusion) / 300, places=6)
        self.assertAlmostEqual(
            figures["per_class_accuracy"]["1"], confusion[1, 1] / confusion[1].sum(), places=6
        )

        # A finished run, run again, says so and does not retrain.
        again = cli("training.fit", *TINY, "--epochs", "2", "--data-dir", MNIST_DIR, "--workdir", workdir)
        self.assertEqual(again.returncode, 0, again.stderr[-2000:])
        self.assertIn("already trained", again.stdout)
        # More epochs continue from the last checkpoint.
        more = cli("training.fit", *TINY, "--epochs", "3", "--data-dir", MNIST_DIR, "--workdir", workdir)
        self.assertEqual(more.returncode, 0, more.stderr[-2000:])
        self.assertIn("resuming", more.stdout)
        self.assertIn("from epoch 2", more.stdout)
        self.assertEqual(json.load(open(os.path.join(workdir, "metrics.json")))["epochs"], 3)
        # A different config in the same workdir is refused.
        other = cli("training.fit", *TINY, "--set", "dim=12", "--data-dir", MNIST_DIR, "--workdir", workdir)
        one_line_error(self, other, needle="different config")

    def test_resume_after_kill_9(self):
        workdir = os.path.join(self.get_temp_dir(), "killed")
        args = [*TINY, "--epochs", "40", "--data-dir", MNIST_DIR, "--workdir", workdir]
        env = dict(os.environ, PYTHONPATH=REPO)
        proc = subprocess.Popen(
            [sys.executable, "-m", "training.fit", *args], cwd=REPO, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        state = os.path.join(workdir, "checkpoints", "state.json")
        deadline = time.time() + 300
        while time.time() < deadline and not os.path.exists(state):
            time.sleep(0.5)
        time.sleep(1.5)  # somewhere inside a later epoch (or a checkpoint write)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = json.load(open(state))["epoch"]
        self.assertGreaterEqual(done, 1)
        # The checkpoint left by the killed run is whole: it loads.
        import keras

        import glom_tf  # noqa: F401  (registers the classes)

        restored = keras.saving.load_model(os.path.join(workdir, "checkpoints", "last.keras"))
        self.assertEqual(restored.count_params(), 4274)
        rerun = cli("training.fit", *args)
        self.assertEqual(rerun.returncode, 0, rerun.stderr[-3000:])
        self.assertIn("resuming", rerun.stdout)
        resumed_from = int(rerun.stdout.split("from epoch ")[1].split()[0])
        self.assertGreaterEqual(resumed_from, done)
        self.assertEqual(json.load(open(os.path.join(workdir, "metrics.json")))["epochs"], 40)

    def test_same_seed_same_metrics(self):
        results = []
        for i in range(2):
            workdir = os.path.join(self.get_temp_dir(), f"det{i}")
            run = cli(
                "training.fit",
                *TINY,
                "--epochs",
                "1",
                "--seed",
                "3",
                "--data-dir",
                MNIST_DIR,
                "--workdir",
                workdir,
            )
            self.assertEqual(run.returncode, 0, run.stderr[-2000:])
            metrics = json.load(open(os.path.join(workdir, "metrics.json")))
            loss, _ = scalars(os.path.join(workdir, "tensorboard", "train"))
            results.append(
                (metrics["accuracy_vote"], metrics["accuracy_mean"], metrics["agreement"], loss["epoch_loss"])
            )
        self.assertEqual(results[0], results[1])

    def test_nan_stops_and_keeps_nothing_bad(self):
        workdir = os.path.join(self.get_temp_dir(), "nan")
        run = cli(
            "training.fit", *TINY, "--set", "hidden_scale=1e30", "--data-dir", MNIST_DIR, "--workdir", workdir
        )
        one_line_error(self, run, code=3, needle="loss became")
        self.assertFalse(os.path.exists(os.path.join(workdir, "model.keras")))
        self.assertFalse(os.path.exists(os.path.join(workdir, "checkpoints", "last.keras")))

    def test_checkpointer_keeps_the_last_good_checkpoint(self):
        import glom_tf
        from tests.test_case import mnist_digits
        from training.callbacks import Checkpointer

        tmp = self.get_temp_dir()
        path, state = os.path.join(tmp, "last.keras"), os.path.join(tmp, "state.json")
        config = glom_tf.get_preset("tiny")
        model = glom_tf.compile_model(glom_tf.build_model(config), config)
        x, y = mnist_digits(64)
        good = Checkpointer(path, state)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[good])
        before = open(path, "rb").read()
        bad = Checkpointer(path, state)
        x_nan = x.copy()
        x_nan[:] = np.nan
        model.fit(x_nan, y, batch_size=32, epochs=2, verbose=0, callbacks=[bad])
        self.assertEqual(bad.diverged, "nan")
        self.assertEqual(open(path, "rb").read(), before)
        self.assertEqual(json.load(open(state))["epoch"], 1)


class BadInputTest(GlomTestCase):
    def setUp(self):
        self.skip_without_mnist_files()
        super().setUp()
        self.bad_dir = os.path.join(self.get_temp_dir(), "bad")
        shutil.rmtree(self.bad_dir, ignore_errors=True)
        os.makedirs(self.bad_dir)
        for name in os.listdir(MNIST_DIR):
            if name.endswith(".gz"):
                shutil.copy(os.path.join(MNIST_DIR, name), self.bad_dir)

    def fit(self, *args):
        return cli(
            "training.fit", "--preset", "tiny", "--workdir", os.path.join(self.get_temp_dir(), "w"), *args
        )

    def test_bad_flags_and_config(self):
        one_line_error(self, self.fit("--dataset", "no_such_dataset_xyz"), needle="no_such_dataset_xyz")
        one_line_error(self, self.fit("--set", "nope=1"), needle="unknown config key: nope")
        one_line_error(self, self.fit("--epochs", "-1"), needle="epochs must be >= 0")
        one_line_error(self, self.fit("--set", "dim=abc"), needle="dim expects")
        one_line_error(self, self.fit("--preset", "huge"), needle="unknown preset")
        one_line_error(self, self.fit("--bogus-flag"), needle="unrecognized")

    def test_bad_data(self):
        one_line_error(self, self.fit("--data-dir", "/no/such/dir"), needle="/no/such/dir")
        images = os.path.join(self.bad_dir, "train-images-idx3-ubyte.gz")
        raw = open(images, "rb").read()
        with open(images, "wb") as f:
            f.write(raw[: len(raw) // 2])  # truncated gzip
        one_line_error(self, self.fit("--data-dir", self.bad_dir), needle="train-images-idx3-ubyte.gz")
        with open(images, "wb") as f:
            f.write(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 100))  # a labels magic in the images file
        one_line_error(self, self.fit("--data-dir", self.bad_dir), needle="wrong IDX magic")
        data = bytearray(gzip.decompress(raw))
        with open(images, "wb") as f:
            f.write(bytes(data[:-784]))  # uncompressed and one image short
        os.rename(images, images[:-3])
        one_line_error(self, self.fit("--data-dir", self.bad_dir), needle="truncated")

    def test_evaluate_bad_model(self):
        one_line_error(self, cli("training.evaluate", "--model", "/no/model.keras"), needle="/no/model.keras")
