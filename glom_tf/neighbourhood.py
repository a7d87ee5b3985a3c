"""The (2r+1)^2 torus neighbourhood of every cell (3x3 at radius 1), built from slice+concat shifts.

`keras.ops.roll` lowers to `tf.Roll`, which the TFLite converter maps only to a Flex op
that the LiteRT interpreter refuses; a shift written as two slices and a concat is a
builtin-only graph and equals `np.roll` exactly.
"""

from __future__ import annotations

import keras
from keras import ops


def torus_shift(x, shift: int, axis: int):
    """`np.roll(x, shift, axis)` as slice+concat: out[i] = x[(i - shift) mod n]."""
    n = x.shape[axis]
    k = shift % n
    if k == 0:
        return x
    head = [slice(None)] * axis + [slice(n - k, None)]
    tail = [slice(None)] * axis + [slice(0, n - k)]
    return ops.concatenate([x[tuple(head)], x[tuple(tail)]], axis=axis)


def neighbour_count(radius: int = 1) -> int:
    """K = (2r+1)^2: the cells of a radius-r neighbourhood, the centre included."""
    return (2 * radius + 1) ** 2


def neighbour_shifts(radius: int = 1) -> list[tuple[int, int]]:
    """(row, col) roll offsets in row-major order; the centre is at index len // 2."""
    span = range(-radius, radius + 1)
    return [(dy, dx) for dy in span for dx in span]


@keras.saving.register_keras_serializable(package="glom_tf")
class Neighbourhood(keras.layers.Layer):
    """Concatenates each cell's (2r+1)^2 torus neighbours on the last (vector) axis.

    With the grid on `axes` (rows, cols), e.g. (B, H, W, L, D) and axes (1, 2) ->
    (B, H, W, L, K*D); slot k holds the cell at (i - dy_k, j - dx_k) mod (H, W), i.e. the
    original notebook's `torch.roll(x, shifts=(dy, dx), dims=(1, 2))`, k in row-major
    order of (dy, dx) in [-r, r]^2 (as the original's concatenation of 9 rolls).
    """

    def __init__(self, radius: int = 1, axes: tuple[int, int] = (1, 2), **kwargs):
        super().__init__(**kwargs)
        self.radius = radius
        self.axes = tuple(axes)

    def call(self, x):
        rows, cols = self.axes
        shifted = [
            torus_shift(torus_shift(x, dy, axis=rows), dx, axis=cols)
            for dy, dx in neighbour_shifts(self.radius)
        ]
        return ops.concatenate(shifted, axis=-1)  # (..., K*D)

    def compute_output_shape(self, input_shape):
        k = neighbour_count(self.radius)
        return tuple(input_shape[:-1]) + (k * input_shape[-1],)

    def get_config(self):
        return {**super().get_config(), "radius": self.radius, "axes": list(self.axes)}
