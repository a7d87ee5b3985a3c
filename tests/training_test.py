"""End-to-end training on real digits: fit, evaluate, TensorBoard, resume, faults, bad input.

The command-line tests run each command as a user's shell would: a fresh process whose
environment has no TF_CPP_MIN_LOG_LEVEL (the commands keep TensorFlow's start-up lines off
stderr themselves), and a bad input must give exactly one line on stderr and exit code 2.
"""

import contextlib
import fcntl
import glob
import gzip
import io
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import types

import numpy as np

from tests.test_case import REPO, GlomTestCase, mnist_dir, user_env

TINY = ["--preset", "tiny", "--set", "train_size=300", "--set", "validation_size=200", "--quiet"]
TINY_STEPS = 300 // 32  # optimizer steps per epoch of TINY (batch 32)


def cli(*args, timeout=600):
    """`python -m <args>` in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=user_env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def call_main(main, *argv):
    """A command's `main(argv)` run through glom_tf.cli.run in this process (no start-up
    cost); returns .returncode, .stdout, .stderr like subprocess.run."""
    from glom_tf.cli import run

    out, err = io.StringIO(), io.StringIO()
    code = None
    saved = dict(os.environ)  # run() sets TF_CPP_MIN_LOG_LEVEL: keep this process as it was
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            run(lambda: main(list(argv)))
        except SystemExit as e:
            code = e.code
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def one_line_error(test, run, code=2, needle=None):
    test.assertEqual(run.returncode, code, run.stdout[-1000:] + run.stderr[-2000:])
    lines = run.stderr.strip().splitlines()
    test.assertEqual(len(lines), 1, run.stderr)
    test.assertTrue(lines[0].startswith("error: "), lines[0])
    test.assertNotIn("Traceback", run.stderr)
    if needle:
        test.assertIn(needle, lines[0])


def plain_keras_model(path):
    """A .keras file that loads but is not a GLOM model."""
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(path)
    return path


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


def load_checkpoint(path):
    """A saved model with its optimizer, read with Keras alone (not the code under test)."""
    import keras

    import glom_tf.model  # noqa: F401  (registers the classes)

    return keras.saving.load_model(path)


def cosine(step, lr, warmup, total_steps):
    """Keras CosineDecay after a linear warm-up, by hand: lr/2 (1 + cos(pi t / T)), t clipped."""
    if step < warmup:
        return lr * step / warmup
    t = min(step - warmup, total_steps - warmup)
    return lr * 0.5 * (1 + math.cos(math.pi * t / (total_steps - warmup)))


class CommandErrorsTest(GlomTestCase):
    """Bad input to every command: one line on stderr, exit code 2. Needs no data files."""

    def test_every_command_one_line_error_in_a_plain_shell(self):
        tmp = self.get_temp_dir()
        plain = plain_keras_model(os.path.join(tmp, "plain.keras"))
        regular_file = os.path.join(tmp, "a_file")
        open(regular_file, "w").close()
        out_dir = os.path.join(tmp, "dir.tflite")
        os.makedirs(out_dir, exist_ok=True)
        served = os.path.join(tmp, "served")
        cases = [
            (("training.fit", "--workdir", regular_file, "--preset", "tiny"), "not a directory"),
            (("training.evaluate", "--model", plain), "not a GLOM model"),
            (("training.visualize", "--model", "/no/such.keras", "--out", tmp), "/no/such.keras"),
            (("training.benchmark", "--preset", "tiny", "--steps", "0"), "--steps"),
            (("export.saved_model", "--model", plain, "--out", served), "not a GLOM model"),
            (("export.tflite", "--model", plain, "--out", out_dir), "is a directory"),
            (("export.predict", plain, regular_file), "not a GLOM model"),
        ]
        for args, needle in cases:
            with self.subTest(command=args[0]):
                one_line_error(self, cli(*args), needle=needle)
        self.assertFalse(os.path.exists(served))  # saved_model left no directory
        self.assertEqual(os.listdir(out_dir), [])  # tflite left no temporary file
        self.assertEqual(sorted(os.listdir(tmp)), ["a_file", "dir.tflite", "plain.keras"])

    def test_fit_bad_flags_and_config(self):
        from training.fit import main

        tmp = self.get_temp_dir()
        workdir = os.path.join(tmp, "w")

        def fit(*args):
            return call_main(main, "--preset", "tiny", "--workdir", workdir, *args)

        one_line_error(self, fit("--set", "nope=1"), needle="unknown config key: nope")
        one_line_error(self, fit("--dataset", "no_such_dataset_xyz"), needle="no_such_dataset_xyz")
        one_line_error(self, fit("--epochs", "-1"), needle="epochs must be >= 0")
        one_line_error(self, fit("--set", "dim=abc"), needle="dim expects")
        one_line_error(self, fit("--preset", "huge"), needle="unknown preset")
        one_line_error(self, fit("--bogus-flag"), needle="unrecognized")
        for rate in ("inf", "nan", "1e12", "0"):
            one_line_error(self, fit("--learning-rate", rate), needle="learning_rate")
        one_line_error(self, fit("--set", "learning_rate=inf"), needle="learning_rate")
        open(os.path.join(tmp, "file"), "w").close()
        for bad in ("file", os.path.join("file", "sub")):
            run = call_main(main, "--preset", "tiny", "--workdir", os.path.join(tmp, bad))
            one_line_error(self, run, needle="is not a directory")
        # A batch larger than the training split is refused before the workdir is written,
        # so the corrected command is not refused as "a run with a different config".
        small = ("--data-dir", mnist_dir(), "--set", "train_size=10")
        one_line_error(self, fit(*small), needle="exceeds 10 training examples")
        self.assertFalse(os.path.exists(workdir))  # nothing was created

    def test_evaluate_refuses_bad_arguments_before_any_work(self):
        from training.evaluate import main

        tmp = self.get_temp_dir()
        plain = plain_keras_model(os.path.join(tmp, "plain.keras"))
        missing = ("--model", "/no/model.keras", "--data-dir", "/no/data")

        def evaluate(*args):
            return call_main(main, *args)

        # Each check names its flag, not the missing model or data: it ran first.
        one_line_error(self, evaluate(*missing, "--batch-size", "0"), needle="--batch-size")
        one_line_error(self, evaluate(*missing, "--limit", "-5"), needle="--limit")
        out = os.path.join(tmp, "no_dir", "eval.json")
        one_line_error(self, evaluate(*missing, "--out", out), needle="no directory")
        one_line_error(self, evaluate(*missing, "--out", tmp), needle="is a directory")
        existing = os.path.join(tmp, "eval.json")
        with open(existing, "w") as f:
            f.write("keep me")
        one_line_error(self, evaluate(*missing, "--out", existing), needle="--overwrite")
        self.assertEqual(open(existing).read(), "keep me")
        one_line_error(self, evaluate(*missing), needle="/no/model.keras")
        one_line_error(self, evaluate("--model", plain, "--data-dir", "/no/data"), needle="not a GLOM model")
        readme = os.path.join(REPO, "README.md")
        one_line_error(self, evaluate("--model", readme), needle="not a .keras file")
        # --overwrite replaces an earlier result, never the model being evaluated.
        source = os.path.join(tmp, "source.keras")
        shutil.copy(plain, source)
        kept = open(source, "rb").read()
        run = evaluate("--model", source, "--data-dir", "/no/data", "--out", source, "--overwrite")
        one_line_error(self, run, needle="is the source model")
        self.assertEqual(open(source, "rb").read(), kept)

    def test_fit_never_replaces_a_model_it_cannot_continue(self):
        from glom_tf.presets import get_preset
        from training.fit import main

        tmp = self.get_temp_dir()

        def folder(name, files):
            path = os.path.join(tmp, name)
            os.makedirs(path, exist_ok=True)
            for file, content in files.items():
                with open(os.path.join(path, file), "w") as f:
                    f.write(content)
            return path

        def fit(workdir):  # --data-dir /no/data: a refusal must come before the data is read
            return call_main(
                main, "--preset", "tiny", "--epochs", "1", "--workdir", workdir, "--data-dir", "/no/data"
            )

        config = get_preset("tiny").with_overrides(epochs=1).to_json()
        finished = json.dumps(
            {"epochs": 1, "accuracy_vote": 0.5, "accuracy_mean": 0.5, "agreement": 0.9, "images": 9}
        )
        # A pretrained model's folder: its run's config and model, no checkpoint, no metrics.
        shipped = folder("shipped", {"config.json": config, "model.keras": "the shipped model"})
        # A finished run of 1 epoch whose checkpoint was removed, asked for 2: it cannot continue.
        done = folder("done", {"config.json": config, "model.keras": "trained", "metrics.json": finished})
        # A folder of someone else's files: no config.json.
        other = folder("other", {"model.keras": "mine", "metrics.json": '{"mine": 1}'})
        before = {d: sorted(os.listdir(d)) for d in (shipped, done, other)}
        one_line_error(self, fit(shipped), needle="no checkpoint to continue from")
        run = call_main(
            main, "--preset", "tiny", "--epochs", "2", "--workdir", done, "--data-dir", "/no/data"
        )
        one_line_error(self, run, needle="no checkpoint to continue from")
        one_line_error(self, fit(other), needle="but no config.json")
        self.assertEqual({d: sorted(os.listdir(d)) for d in before}, before)
        self.assertEqual(open(os.path.join(shipped, "model.keras")).read(), "the shipped model")
        self.assertEqual(open(os.path.join(other, "metrics.json")).read(), '{"mine": 1}')
        # The same finished run asked for its own epochs: nothing to do, nothing touched.
        self.assertEqual(fit(done).returncode, 0)
        self.assertEqual(sorted(os.listdir(done)), before[done])
        empty = call_main(main, "--preset", "tiny", "--workdir", "", "--data-dir", "/no/data")
        one_line_error(self, empty, needle="--workdir is empty")
        # A finished run whose model was moved away (no checkpoint either): nothing to continue,
        # and its metrics are not replaced by a new run's.
        moved = folder("moved", {"config.json": config, "metrics.json": finished})
        one_line_error(self, fit(moved), needle="model and checkpoint are gone")
        self.assertEqual(open(os.path.join(moved, "metrics.json")).read(), finished)
        # A 0-epoch run (its model is its start) continues: the refusal is past, the data is next.
        start = folder(
            "start", {"config.json": config, "model.keras": "start", "metrics.json": '{"epochs": 0}'}
        )
        one_line_error(self, fit(start), needle="/no/data")

    def test_checkpointer_stops_on_an_exploding_loss(self):
        from training.callbacks import Checkpointer

        model = types.SimpleNamespace(stop_training=False)
        checkpointer = Checkpointer(os.path.join(self.get_temp_dir(), "never.keras"))
        checkpointer.set_model(model)
        checkpointer.on_epoch_begin(0)
        for batch, loss in enumerate([2.3, 2.0, 1.5, 900.0]):  # 900 < 1e3 x 2.3: still fine
            checkpointer.on_train_batch_end(batch, {"loss": loss})
        self.assertIsNone(checkpointer.diverged)
        self.assertFalse(model.stop_training)
        checkpointer.on_train_batch_end(4, {"loss": 5e24})  # what --learning-rate 1e12 gave
        self.assertIn("first batch", checkpointer.diverged)
        self.assertTrue(model.stop_training)
        checkpointer.on_epoch_end(0, {"loss": 5e24})
        self.assertFalse(os.path.exists(checkpointer.path))  # the diverged epoch is never saved

    def test_a_run_saved_before_a_field_existed_still_resumes(self):
        from glom_tf.cli import UserError
        from glom_tf.presets import get_preset
        from training.train import Paths, _check_workdir

        config = get_preset("tiny")
        paths = Paths(self.get_temp_dir())
        saved = json.loads(config.to_json())
        del saved["island_sharpness"], saved["augment_flip"]  # fields added later, at their defaults
        with open(paths.config, "w") as f:
            json.dump(saved, f)
        self.assertIsNone(_check_workdir(paths, config))  # no finished run: resume
        with self.assertRaisesRegex(UserError, "different config \\(augment_flip\\)"):
            _check_workdir(paths, config.with_overrides(augment_flip=True))

    def test_atomic_writes_leave_the_usual_file_mode(self):
        # mkstemp makes 0600 files: model.keras and metrics.json were unreadable to others.
        from glom_tf.cli import write_atomic

        umask = os.umask(0o022)
        os.umask(umask)
        path = os.path.join(self.get_temp_dir(), "figures.json")
        write_atomic(path, "{}\n")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o666 & ~umask)
        self.assertEqual(os.listdir(os.path.dirname(path)), ["figures.json"])

    def test_schedule_decays_over_decay_epochs(self):
        import glom_tf
        from training.recipe import learning_rate

        steps = 18
        config = glom_tf.get_preset("tiny").with_overrides(cosine_decay=True, warmup_steps=5, epochs=2)
        planned = config.with_overrides(decay_epochs=4)
        for step in (0, 3, 5, 20, 36, 54, 72, 100):
            for c, epochs in ((config, 2), (planned, 4)):
                expected = cosine(step, 0.01, 5, epochs * steps)
                self.assertAllClose(float(learning_rate(c, steps)(step)), expected, atol=1e-7)
        self.assertGreater(float(learning_rate(planned, steps)(36)), 0.004)  # half-way, not 0

    def test_constant_rate_is_a_settable_value_not_the_schedule(self):
        import glom_tf
        from training.recipe import make_optimizer

        config = glom_tf.get_preset("mnist").with_overrides(learning_rate=0.004)
        scheduled = make_optimizer(config, 10)
        constant = make_optimizer(config, 10, constant_rate=True)
        self.assertAllClose(float(scheduled._get_current_learning_rate()), 0.0)  # warm-up starts at 0
        self.assertAllClose(float(constant.learning_rate), 0.004)
        constant.learning_rate = 0.001  # what experiments/gpu_fit.py does between chunks
        self.assertAllClose(float(constant.learning_rate), 0.001)
        self.assertEqual((constant.weight_decay, constant.clipnorm), (0.05, 1.0))


class FitEndToEndTest(GlomTestCase):
    def test_fit_then_evaluate_and_tensorboard(self):
        workdir = os.path.join(self.get_temp_dir(), "run")
        run = cli("training.fit", *TINY, "--epochs", "2", "--data-dir", mnist_dir(), "--workdir", workdir)
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        for name in ("config.json", "data.json", "metrics.json", "model.keras", "checkpoints/last.keras"):
            self.assertTrue(os.path.exists(os.path.join(workdir, name)), name)
        metrics = json.load(open(os.path.join(workdir, "metrics.json")))
        self.assertEqual((metrics["images"], metrics["train_examples"], metrics["epochs"]), (200, 300, 2))
        self.assertTrue(metrics["source"].startswith("idx:"))
        config = json.load(open(os.path.join(workdir, "config.json")))
        self.assertEqual((config["dim"], config["epochs"], config["train_size"]), (8, 2, 300))

        # TensorBoard (tests/tensorboard_test.py checks the rest): a loss and a rate per epoch.
        train, _ = scalars(os.path.join(workdir, "tensorboard", "train"))
        val, _ = scalars(os.path.join(workdir, "tensorboard", "validation"))
        self.assertEqual([s for s, _ in train["epoch_loss"]], [0, 1])
        self.assertIn("epoch_loss", val)
        self.assertAlmostEqual(train["epoch_learning_rate"][0][1], 0.01, places=6)  # tiny: constant

        # Evaluate on the official test split: JSON on stdout; nothing written beside the model.
        model_path = os.path.join(workdir, "model.keras")
        before = sorted(os.listdir(workdir))
        ev = cli(
            "training.evaluate", "--model", model_path, "--dataset", "mnist", "--split", "test",
            "--data-dir", mnist_dir(), "--limit", "300",
        )  # fmt: skip
        self.assertEqual(ev.returncode, 0, ev.stderr[-3000:])
        self.assertEqual(sorted(os.listdir(workdir)), before)
        figures = json.loads(ev.stdout)
        self.assertIn("agreement by time step", ev.stderr)
        # --out writes the same JSON (here through main in this process, on 50 images).
        from training.evaluate import main as evaluate_main

        out = os.path.join(self.get_temp_dir(), "eval50.json")
        small = call_main(
            evaluate_main, "--model", model_path, "--split", "test", "--data-dir", mnist_dir(),
            "--limit", "50", "--out", out,
        )  # fmt: skip
        self.assertEqual(small.returncode, 0, small.stderr)
        self.assertEqual(json.load(open(out)), json.loads(small.stdout))
        self.assertEqual(json.load(open(out))["images"], 50)
        self.assertEqual(figures["images"], 300)
        for key in ("accuracy_vote", "accuracy_mean", "agreement", "agreement_digit", "per_class_accuracy"):
            self.assertIn(key, figures)
        curves = figures["islands"]  # per time step, per level
        self.assertEqual(len(curves["agreement"]), config["steps"] + 1)
        self.assertEqual(len(curves["similarity"][0]), config["levels"])

        # The confusion matrix and accuracies against an independent count: the model's scores
        # from Keras, the readouts in numpy, the matrix by a loop.
        from training.data import load_idx

        images, labels = load_idx(mnist_dir(), "test")
        model = load_checkpoint(model_path)
        self.assertEqual(model.readout, "mean")
        scores = np.asarray(model(images[:300].astype("float32") / 255.0, training=False))
        mean_class = scores.mean((1, 2)).argmax(-1)  # the tiny preset's readout: mean
        votes = scores.argmax(-1).reshape(300, -1)
        vote_class = np.array([np.bincount(v, minlength=10).argmax() for v in votes])
        expected = np.zeros((10, 10), int)
        for truth, answer in zip(labels[:300], mean_class):
            expected[truth, answer] += 1
        confusion = np.array(figures["confusion_matrix"])
        # One near-tie may flip between the XLA and eager forward passes: at most one image.
        self.assertLessEqual(np.abs(confusion - expected).sum(), 2, (confusion, expected))
        self.assertAlmostEqual(figures["accuracy_mean"], np.mean(mean_class == labels[:300]), delta=1 / 300)
        self.assertAlmostEqual(figures["accuracy_vote"], np.mean(vote_class == labels[:300]), delta=1 / 300)
        digit = labels[:300] == 1
        self.assertAlmostEqual(
            figures["per_class_accuracy"]["1"], np.mean(mean_class[digit] == 1), delta=1 / digit.sum()
        )

        # --split validation: the images the run held out, chosen here as the split is
        # documented (the first validation_size of a seed-`seed` permutation of the training
        # split), answers in numpy.
        train_images, train_labels = load_idx(mnist_dir(), "train")
        held = np.random.default_rng(config["seed"]).permutation(len(train_labels))[
            : config["validation_size"]
        ]
        val = call_main(
            evaluate_main, "--model", model_path, "--split", "validation", "--data-dir", mnist_dir()
        )
        self.assertEqual(val.returncode, 0, val.stderr)
        val_figures = json.loads(val.stdout)
        self.assertEqual((val_figures["split"], val_figures["dataset"]), ("validation", "mnist"))
        self.assertEqual(val_figures["images"], len(held))
        scores = np.asarray(model(train_images[held].astype("float32") / 255.0, training=False))
        held_accuracy = np.mean(scores.mean((1, 2)).argmax(-1) == train_labels[held])
        self.assertAlmostEqual(val_figures["accuracy_mean"], held_accuracy, delta=1 / len(held))
        self.assertAlmostEqual(val_figures["accuracy_mean"], metrics["accuracy_mean"], delta=1 / len(held))
        # Refused: --run without --split validation; a directory with no run; a run whose data
        # fingerprint is not the data read (its held-out images would be others); another dataset.
        other_run = os.path.join(self.get_temp_dir(), "other_run")
        os.makedirs(other_run, exist_ok=True)
        shutil.copy(os.path.join(workdir, "config.json"), other_run)
        with open(os.path.join(other_run, "data.json"), "w") as f:
            json.dump({"source": "elsewhere", "fingerprint": "0123456789abcdef"}, f)
        for argv, needle in (
            (("--split", "test", "--run", other_run), "--run names"),
            (("--split", "validation", "--run", self.get_temp_dir()), "no config.json"),
            (("--split", "validation", "--run", other_run), "held-out images would be others"),
            (("--split", "validation", "--dataset", "fashion_mnist"), "a run on mnist"),
        ):
            with self.subTest(argv=argv):
                run = call_main(evaluate_main, "--model", model_path, "--data-dir", mnist_dir(), *argv)
                one_line_error(self, run, needle=needle)

        # A finished run, run again, says so and does not retrain.
        again = cli("training.fit", *TINY, "--epochs", "2", "--data-dir", mnist_dir(), "--workdir", workdir)
        self.assertEqual(again.returncode, 0, again.stderr[-2000:])
        self.assertIn("already trained", again.stdout)
        # A different config in the same workdir is refused.
        other = cli("training.fit", *TINY, "--set", "dim=12", "--data-dir", mnist_dir(), "--workdir", workdir)
        one_line_error(self, other, needle="different config")

    def test_continuation_trains_on_the_config_schedule_and_the_workdir_is_guarded(self):
        from training.fit import main as fit_main

        tmp = self.get_temp_dir()
        workdir = os.path.join(tmp, "continued")
        shutil.rmtree(workdir, ignore_errors=True)
        args = [
            "--preset", "tiny", "--set", "cosine_decay=true", "--set", "warmup_steps=5",
            "--set", "train_size=600", "--set", "validation_size=100", "--quiet",
            "--data-dir", mnist_dir(), "--workdir", workdir,
        ]  # fmt: skip
        steps = 600 // 32
        first = cli("training.fit", *args, "--epochs", "2")
        self.assertEqual(first.returncode, 0, first.stderr[-3000:])
        last = os.path.join(workdir, "checkpoints", "last.keras")
        after_two = load_checkpoint(last)
        self.assertEqual(int(after_two.optimizer.iterations.numpy()), 2 * steps)

        more = cli("training.fit", *args, "--epochs", "4")
        self.assertEqual(more.returncode, 0, more.stderr[-3000:])
        self.assertIn("from epoch 2", more.stdout)
        after_four = load_checkpoint(last)
        self.assertEqual(int(after_four.optimizer.iterations.numpy()), 4 * steps)
        # Epochs 3 and 4 trained: the weights moved.
        pairs = zip(after_two.get_weights(), after_four.get_weights())
        moved = max(float(np.abs(a - b).max()) for a, b in pairs)
        self.assertGreater(moved, 1e-3)
        # The rate Keras logged at the end of each epoch is the config's schedule: warm-up,
        # then cosine to 0 over the 4 epochs the config now states (not the first run's 2).
        logged = dict(scalars(os.path.join(workdir, "tensorboard", "train"))[0]["epoch_learning_rate"])
        self.assertAllClose(logged[2], cosine(3 * steps, 0.01, 5, 4 * steps), atol=1e-6)
        self.assertGreater(logged[2], 1e-3)
        self.assertAllClose(logged[3], 0.0, atol=1e-7)
        # The schedule the optimizer trained with, at the resumed step.
        schedule = after_four.optimizer._learning_rate
        self.assertAllClose(float(schedule(2 * steps)), cosine(2 * steps, 0.01, 5, 4 * steps), atol=1e-7)

        files = ("config.json", "metrics.json", "data.json", "model.keras", "checkpoints/last.keras")

        def contents():
            return {name: open(os.path.join(workdir, name), "rb").read() for name in files}

        done = contents()
        # Fewer epochs than the run holds: refused, nothing rewritten.
        one_line_error(self, call_main(fit_main, *args, "--epochs", "3"), needle="fewer")
        self.assertEqual(contents(), done)
        # The same files in another directory are the same data: accepted (nothing to do).
        same = os.path.join(tmp, "same_mnist")
        os.makedirs(same, exist_ok=True)
        for name in os.listdir(mnist_dir()):
            if not os.path.exists(os.path.join(same, name)):
                os.symlink(os.path.join(os.path.realpath(mnist_dir()), name), os.path.join(same, name))
        same_args = [a if a != mnist_dir() else same for a in args]
        self.assertEqual(call_main(fit_main, *same_args, "--epochs", "4").returncode, 0)
        self.assertEqual(contents(), done)
        # Other training data (the first 2,000 official digits only): refused, nothing rewritten.
        other = os.path.join(tmp, "other_mnist")
        os.makedirs(other, exist_ok=True)
        from training import data

        images, labels = data.load_idx(mnist_dir(), "train")
        for split, n in (("train", 2000), ("test", 10)):
            image_name, label_name = data.IDX_FILES[split]
            x, y = data.load_idx(mnist_dir(), split) if split == "test" else (images, labels)
            with open(os.path.join(other, image_name), "wb") as f:
                f.write(struct.pack(">HBBIII", 0, 8, 3, n, 28, 28) + x[:n].astype(np.uint8).tobytes())
            with open(os.path.join(other, label_name), "wb") as f:
                f.write(struct.pack(">HBBI", 0, 8, 1, n) + y[:n].astype(np.uint8).tobytes())
        moved_args = [a if a != mnist_dir() else other for a in args]
        one_line_error(self, call_main(fit_main, *moved_args, "--epochs", "5"), needle="was trained on")
        self.assertEqual(contents(), done)
        # A workdir held by another training.fit (here: this process holds its lock).
        with open(os.path.join(workdir, ".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            one_line_error(self, cli("training.fit", *args, "--epochs", "5"), needle="in use")
            fcntl.flock(lock, fcntl.LOCK_UN)
        self.assertEqual(contents(), done)

        # Temporary files of killed writers are removed; a deleted model.keras is re-created
        # from the finished checkpoint without training.
        stale = [
            os.path.join(workdir, ".metrics.json.x1y2.tmp"),
            os.path.join(workdir, "checkpoints", ".last.keras.a1b2.tmp.keras"),
            os.path.join(workdir, "checkpoints", "last.tmp12345.keras"),  # the previous naming
        ]
        for path in stale:
            with open(path, "wb") as f:
                f.write(b"half a file")
        os.remove(os.path.join(workdir, "model.keras"))
        again = cli("training.fit", *args, "--epochs", "4")
        self.assertEqual(again.returncode, 0, again.stderr[-3000:])
        self.assertIn("written from the checkpoint", again.stdout)
        self.assertEqual([p for p in stale if os.path.exists(p)], [])
        recreated = load_checkpoint(os.path.join(workdir, "model.keras"))
        for a, b in zip(recreated.get_weights(), after_four.get_weights()):
            self.assertAllEqual(a, b)
        metrics = json.load(open(os.path.join(workdir, "metrics.json")))
        self.assertEqual(metrics["epochs"], 4)
        self.assertIsNotNone(metrics["train_loss"])

        # A truncated checkpoint: one line that names it.
        raw = open(last, "rb").read()
        with open(last, "wb") as f:
            f.write(raw[: len(raw) // 2])
        run = call_main(fit_main, *args, "--epochs", "5")
        one_line_error(self, run, needle=os.path.join("checkpoints", "last.keras"))
        self.assertIn("truncated or corrupt", run.stderr)

    def test_another_image_size_trains_evaluates_and_measures_islands(self):
        # The dataset's 28x28 digits are resized to the model's 35x35 in training, in the
        # TensorBoard pictures, in evaluate's island curves and in experiments/islands.py.
        from training import data

        tmp = self.get_temp_dir()
        workdir = os.path.join(tmp, "size35")
        shutil.rmtree(workdir, ignore_errors=True)
        args = [
            *TINY,
            "--epochs",
            "1",
            "--set",
            "image_size=35",
            "--data-dir",
            mnist_dir(),
            "--workdir",
            workdir,
        ]
        run = cli("training.fit", *args)
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        model = os.path.join(workdir, "model.keras")
        run = cli("training.evaluate", "--model", model, "--data-dir", mnist_dir(), "--limit", "40")
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        self.assertEqual(json.loads(run.stdout)["islands"]["images"], 40)
        script = os.path.join(REPO, "experiments", "islands.py")

        def islands(*argv):
            command = [sys.executable, script, "--data-dir", mnist_dir(), "--images", "20", *argv]
            return subprocess.run(command, cwd=REPO, env=user_env(), capture_output=True, text=True)

        run = islands("--workdir", workdir)
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        figures = json.loads(run.stdout)
        self.assertEqual((figures["split"], figures["images"]), ("validation", 20))
        self.assertEqual(len(figures["count"]), 3)  # the tiny preset's levels, input included
        # The run's held-out images come from its own training data: other files are refused.
        other = os.path.join(tmp, "other_digits")
        os.makedirs(other, exist_ok=True)
        images, labels = data.load_idx(mnist_dir(), "train")
        image_name, label_name = data.IDX_FILES["train"]
        with open(os.path.join(other, image_name), "wb") as f:
            f.write(struct.pack(">HBBIII", 0, 8, 3, 1000, 28, 28) + images[-1000:].astype(np.uint8).tobytes())
        with open(os.path.join(other, label_name), "wb") as f:
            f.write(struct.pack(">HBBI", 0, 8, 1, 1000) + labels[-1000:].astype(np.uint8).tobytes())
        one_line_error(
            self, islands("--workdir", workdir, "--data-dir", other), needle="was trained on other data"
        )
        # A run whose config.json is unreadable or mistyped: one line naming what is wrong.
        config = json.load(open(os.path.join(workdir, "config.json")))
        for name, text, needle in (
            ("unreadable", "{bad", "cannot be read"),
            ("mistyped", json.dumps({**config, "levels": "3"}), "levels expects an integer"),
        ):
            copy = os.path.join(tmp, name)
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(workdir, copy)
            with open(os.path.join(copy, "config.json"), "w") as f:
                f.write(text)
            one_line_error(self, islands("--workdir", copy), needle=needle)

    def test_resume_after_kill_9(self):
        workdir = os.path.join(self.get_temp_dir(), "killed")
        shutil.rmtree(workdir, ignore_errors=True)
        epochs = 4
        args = [*TINY, "--epochs", str(epochs), "--data-dir", mnist_dir(), "--workdir", workdir]
        proc = subprocess.Popen(
            [sys.executable, "-m", "training.fit", *args], cwd=REPO, env=user_env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        last = os.path.join(workdir, "checkpoints", "last.keras")
        deadline = time.time() + 300
        while time.time() < deadline and not os.path.exists(last):
            time.sleep(0.2)
        time.sleep(1.5)  # somewhere inside a later epoch (or a checkpoint write)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # What the killed run left, read with Keras alone: a whole checkpoint of whole epochs.
        killed = load_checkpoint(last)
        self.assertEqual(killed.count_params(), 4274)
        iterations = int(killed.optimizer.iterations.numpy())
        self.assertEqual(iterations % TINY_STEPS, 0)
        done = iterations // TINY_STEPS
        self.assertGreaterEqual(done, 1)
        self.assertFalse(os.path.exists(os.path.join(workdir, "model.keras")))

        rerun = cli("training.fit", *args)
        self.assertEqual(rerun.returncode, 0, rerun.stderr[-3000:])
        self.assertIn(f"from epoch {done}", rerun.stdout)
        # Exactly the epochs asked for, in all: not one more.
        final = load_checkpoint(last)
        self.assertEqual(int(final.optimizer.iterations.numpy()), epochs * TINY_STEPS)
        self.assertEqual(json.load(open(os.path.join(workdir, "metrics.json")))["epochs"], epochs)
        leftovers = [glob.glob(os.path.join(workdir, "**", p), recursive=True) for p in ("*.tmp*", ".*.tmp*")]
        self.assertEqual(leftovers, [[], []])

    def test_a_resumed_sitting_does_not_replay_the_first_sittings_images(self):
        """The first batch each sitting trains on, recorded as the model receives it: a sitting
        that resumes at epoch 1 must not start on the images (order and augmentation) of
        epoch 1. With the shuffle and augmentations seeded from the seed alone, it did."""
        import tensorflow as tf

        from training import data
        from training.fit import main as fit_main

        make_dataset, streams = data.make_dataset, []

        def recording(*args, **kwargs):
            ds = make_dataset(*args, **kwargs)
            if not (args[3] if len(args) > 3 else kwargs.get("training", False)):
                return ds
            seen = []
            streams.append(seen)

            def note(images, labels):
                seen.append(images.numpy())
                return labels

            def tap(images, labels):
                noted = tf.py_function(note, [images, labels], tf.int32)
                noted.set_shape(labels.shape)
                return images, noted

            return ds.map(tap)

        workdir = os.path.join(self.get_temp_dir(), "sittings")
        shutil.rmtree(workdir, ignore_errors=True)
        args = [*TINY, "--data-dir", mnist_dir(), "--workdir", workdir]
        firsts = []
        data.make_dataset = recording
        try:
            for epochs in ("1", "2"):
                streams.clear()
                run = call_main(fit_main, *args, "--epochs", epochs)
                self.assertEqual(run.returncode, 0, run.stderr[-3000:])
                trained = [seen for seen in streams if seen]  # the stream fit iterated
                self.assertEqual(len(trained), 1)
                firsts.append(trained[0][0])
        finally:
            data.make_dataset = make_dataset
        self.assertIn("from epoch 1", run.stdout)
        images_1, images_2 = firsts
        self.assertEqual(images_1.shape, images_2.shape)
        self.assertFalse(np.array_equal(images_1, images_2))

    def test_same_seed_same_metrics(self):
        results = []
        for i in range(2):
            workdir = os.path.join(self.get_temp_dir(), f"det{i}")
            run = cli(
                "training.fit", *TINY, "--epochs", "1", "--seed", "3", "--data-dir", mnist_dir(),
                "--workdir", workdir,
            )  # fmt: skip
            self.assertEqual(run.returncode, 0, run.stderr[-2000:])
            metrics = json.load(open(os.path.join(workdir, "metrics.json")))
            loss, _ = scalars(os.path.join(workdir, "tensorboard", "train"))
            results.append(
                (metrics["accuracy_vote"], metrics["accuracy_mean"], metrics["agreement"], loss["epoch_loss"])
            )
        self.assertEqual(results[0], results[1])

    def test_init_from_starts_the_run_from_a_trained_models_weights(self):
        import keras

        from glom_tf.model import build_model
        from glom_tf.presets import get_preset
        from training.fit import main

        tmp = self.get_temp_dir()
        tiny = get_preset("tiny")
        source = build_model(tiny.with_overrides(seed=5))  # weights unlike a seed-0 initialisation
        source_path = os.path.join(tmp, "source.keras")
        source.save(source_path)
        wider = os.path.join(tmp, "wider.keras")
        build_model(tiny.with_overrides(dim=12)).save(wider)

        def fit(workdir, *args):
            return call_main(main, *TINY, "--data-dir", mnist_dir(), "--workdir", workdir, *args)

        # Bad init_from: one line, exit 2, and the workdir is not created.
        for bad, needle in (
            (os.path.join(tmp, "missing.keras"), "no such file"),
            (wider, "fields that differ: dim"),
            (os.path.join(REPO, "README.md"), "init_from must name a .keras file"),
        ):
            workdir = os.path.join(tmp, "bad")
            one_line_error(self, fit(workdir, "--epochs", "1", "--set", f"init_from={bad}"), needle=needle)
            self.assertFalse(os.path.exists(workdir))

        # With 0 epochs the run's model is the source's weights exactly (read back with Keras).
        workdir = os.path.join(tmp, "init")
        run = fit(workdir, "--epochs", "0", "--set", f"init_from={source_path}")
        self.assertEqual(run.returncode, 0, run.stderr[-2000:])
        self.assertIn("starting from the weights of", run.stdout)
        saved = keras.saving.load_model(os.path.join(workdir, "model.keras"))
        fresh = build_model(tiny)
        self.assertEqual(len(saved.weights), len(source.weights))
        self.assertFalse(all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), source.get_weights())))
        for got, want in zip(saved.get_weights(), source.get_weights()):
            np.testing.assert_array_equal(got, want)

        # Weights are matched by path: a location the source lacks starts fresh, the rest is copied;
        # and back again, the location the new config lacks is left out. Both are named.
        located = build_model(tiny.with_overrides(seed=7, position="top_down"))
        located_path = os.path.join(tmp, "located.keras")
        located.save(located_path)
        for name, source_model, path, position in (
            ("add", source, source_path, "top_down"),
            ("drop", located, located_path, "none"),
        ):
            workdir = os.path.join(tmp, name)
            run = fit(workdir, "--epochs", "0", "--set", f"position={position}", "--set", f"init_from={path}")
            self.assertEqual(run.returncode, 0, run.stderr[-2000:])
            label = "initialised fresh" if name == "add" else "not used"
            self.assertIn(f"{label}: glom/step/location", run.stdout)
            trained = keras.saving.load_model(os.path.join(workdir, "model.keras"))
            saved = {v.path: np.asarray(v) for v in trained.weights}
            given = {v.path: np.asarray(v) for v in source_model.weights}
            self.assertEqual(set(saved) ^ set(given), {"glom/step/location"})
            for key in set(saved) & set(given):
                np.testing.assert_array_equal(saved[key], given[key], err_msg=key)
            if name == "add":  # the new location is a fresh draw, not zeros
                self.assertEqual(saved["glom/step/location"].shape, (4, 4, tiny.dim))
                self.assertGreater(np.abs(saved["glom/step/location"]).max(), 0.0)

    def test_nan_stops_and_keeps_nothing_bad(self):
        workdir = os.path.join(self.get_temp_dir(), "nan")
        run = cli(
            "training.fit",
            *TINY,
            "--set",
            "hidden_scale=1e30",
            "--data-dir",
            mnist_dir(),
            "--workdir",
            workdir,
        )
        one_line_error(self, run, code=3, needle="loss became")
        self.assertIn("no checkpoint was written", run.stderr)
        self.assertNotIn("last good checkpoint", run.stderr)
        self.assertFalse(os.path.exists(os.path.join(workdir, "model.keras")))
        self.assertFalse(os.path.exists(os.path.join(workdir, "checkpoints", "last.keras")))

    def test_checkpointer_keeps_the_last_good_checkpoint(self):
        import glom_tf
        from tests.test_case import mnist_digits
        from training.callbacks import Checkpointer
        from training.recipe import compile_model

        path = os.path.join(self.get_temp_dir(), "last.keras")
        config = glom_tf.get_preset("tiny")
        model = compile_model(glom_tf.build_model(config), config)
        x, y = mnist_digits(64)
        good = Checkpointer(path)
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[good])
        before = open(path, "rb").read()
        bad = Checkpointer(path)
        x_nan = x.copy()
        x_nan[:] = np.nan
        model.fit(x_nan, y, batch_size=32, epochs=2, verbose=0, callbacks=[bad])
        self.assertEqual(bad.diverged, "nan")
        self.assertEqual(open(path, "rb").read(), before)
        self.assertEqual(int(load_checkpoint(path).optimizer.iterations.numpy()), 2)  # one epoch


class BadDataTest(GlomTestCase):
    def setUp(self):
        super().setUp()
        self.bad_dir = os.path.join(self.get_temp_dir(), "bad")
        shutil.rmtree(self.bad_dir, ignore_errors=True)
        os.makedirs(self.bad_dir)
        for name in os.listdir(mnist_dir()):
            if name.endswith(".gz"):
                shutil.copy(os.path.join(mnist_dir(), name), self.bad_dir)

    def fit(self, *args):
        return cli(
            "training.fit", "--preset", "tiny", "--workdir", os.path.join(self.get_temp_dir(), "w"), *args
        )

    def test_bad_data(self):
        one_line_error(self, self.fit("--data-dir", "/no/such/dir"), needle="/no/such/dir")
        images = os.path.join(self.bad_dir, "train-images-idx3-ubyte.gz")
        raw = open(images, "rb").read()
        with open(images, "wb") as f:
            f.write(raw[: len(raw) // 2])  # truncated gzip
        one_line_error(self, self.fit("--data-dir", self.bad_dir), needle="train-images-idx3-ubyte.gz")
        garbled = bytearray(raw)
        garbled[100:200] = b"\xff" * 100  # a whole gzip header, corrupt compressed data (zlib.error)
        with open(images, "wb") as f:
            f.write(bytes(garbled))
        one_line_error(self, self.fit("--data-dir", self.bad_dir), needle="corrupt or truncated gzip")
        with open(images, "wb") as f:
            f.write(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 100))  # a labels magic in the images file
        one_line_error(self, self.fit("--data-dir", self.bad_dir), needle="wrong IDX magic")
        data = bytearray(gzip.decompress(raw))
        with open(images, "wb") as f:
            f.write(bytes(data[:-784]))  # uncompressed and one image short
        os.rename(images, images[:-3])
        one_line_error(self, self.fit("--data-dir", self.bad_dir), needle="truncated")
