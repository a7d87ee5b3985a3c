"""Stateless random draws from an explicit seed tensor.

Rematerialised steps run their forward pass twice; a draw from a stateful generator
would differ between the two runs, so every random draw inside a GLOM step takes an
explicit seed (shape (2,)) and gives the same numbers when recomputed.
"""

from __future__ import annotations

import keras
from keras import ops


def offset_seed(seed, a: int, b: int = 0):
    """A distinct seed for stream (a, b) derived from `seed` (shape (2,))."""
    return ops.add(seed, ops.convert_to_tensor([a, b], dtype=seed.dtype))


def uniform(shape, seed, dtype: str = "float32"):
    """Uniform [0, 1) draws that depend only on `shape` and `seed`."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.random.stateless_uniform(shape, seed=ops.cast(seed, "int64"), dtype=dtype)
    if backend == "jax":
        import jax

        key = ops.cast(seed, "uint32")
        return jax.random.uniform(key, shape, dtype=dtype)
    raise NotImplementedError(f"stateless draws need the tensorflow or jax backend, not {backend}")


def dropout(x, rate: float, seed):
    """Inverted dropout with a stateless mask."""
    if rate <= 0.0 or seed is None:
        return x
    keep = ops.cast(uniform(ops.shape(x), seed, x.dtype) >= rate, x.dtype)
    return x * keep / (1.0 - rate)
