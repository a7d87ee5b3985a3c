"""The serving functions of the SavedModel and TFLite exports.

SavedModel `serving_default`: input `images`, float32 raw pixel values (whole numbers 0..255),
(N, H, W) or (N, H, W, C); a uint8 array converts to it exactly. The signature is float32 so
that a wrong input is refused in the graph: a uint8 signature cannot see a float array, since
TensorFlow's Python binding casts a numpy array to the signature's dtype before the graph runs
(pixels in [0, 1] became 0, 300 became 44). Fractional, negative, non-finite or > 255 values,
and images whose pixels are all at most 1 (a [0, 1] float image) are an InvalidArgumentError.

TFLite `serving_default`: input `images`, uint8 (N, H, W, C) (the interpreter refuses any
other dtype); an image of another size or channel count fails in the interpreter (a GATHER
index out of bounds) instead of being read as more, smaller images.

Outputs: `probabilities` (N, classes) float32, `classes` (N,) int64 and `agreement` (N,)
float32 (the fraction of cells that vote for the predicted class).
"""

from __future__ import annotations

import tensorflow as tf

from glom_tf.images import PIXEL_MAX
from glom_tf.readout import readout


def outputs(model, images):
    """Pixel values 0..255 (N, H, W, C), any numeric dtype -> the three named outputs."""
    x = tf.cast(images, tf.float32) / PIXEL_MAX
    probabilities, classes, agreement = readout(model(x, training=False), model.readout)
    return {
        "probabilities": tf.identity(probabilities, name="probabilities"),
        "classes": tf.identity(tf.cast(classes, tf.int64), name="classes"),
        "agreement": tf.identity(agreement, name="agreement"),
    }


def checked_images(model, images):
    """Validates rank, size and pixel values in the graph; returns (N, H, W, C) float32.

    Each check runs before the ops that depend on it, so the error names what is wrong.
    """
    size, channels = model.image_size, model.channels
    rank = tf.rank(images)
    rank_ok = tf.debugging.assert_equal(
        tf.logical_or(tf.equal(rank, 3), tf.equal(rank, 4)),
        True,
        message=f"images must have shape (N, {size}, {size}) or (N, {size}, {size}, {channels})",
    )
    with tf.control_dependencies([rank_ok]):
        images = tf.cond(tf.equal(rank, 3), lambda: tf.expand_dims(images, -1), lambda: tf.identity(images))
    shape_ok = tf.debugging.assert_equal(
        tf.shape(images)[1:],
        tf.constant([size, size, channels]),
        message=f"images must be {size}x{size} with {channels} channel(s)",
    )
    with tf.control_dependencies([shape_ok]):
        images = tf.ensure_shape(images, [None, size, size, channels])
    whole = tf.reduce_all(
        tf.logical_and(tf.logical_and(images >= 0.0, images <= PIXEL_MAX), tf.equal(images, tf.round(images)))
    )
    values_ok = tf.debugging.assert_equal(
        whole, True, message="images must be raw pixel values: whole numbers 0..255"
    )
    peak = tf.reduce_max(images, axis=[1, 2, 3])
    scale_ok = tf.debugging.assert_equal(
        tf.reduce_any(tf.logical_and(peak > 0.0, peak <= 1.0)),
        False,
        message="an image's pixels are all at most 1: send raw values 0..255, not [0, 1] floats",
    )
    with tf.control_dependencies([values_ok, scale_ok]):
        return tf.identity(images)


def shape_guard(images, size: int, channels: int):
    """0.0, or a TFLite run-time error when `images` is not (N, size, size, channels).

    The converter folds the static dimensions of the input, so `tf.shape` cannot check them;
    the sizes of 1-D slices along each axis are computed at run time. A wrong size makes the
    index of a one-element GATHER 1, which the interpreter refuses. (TFLite has no Assert.)
    """
    n = tf.shape(images)[0]
    sizes = tf.stack([tf.size(images[:, :, 0, 0]), tf.size(images[:, 0, :, 0]), tf.size(images[:, 0, 0, :])])
    wrong = tf.reduce_any(tf.not_equal(sizes, n * tf.constant([size, size, channels])))
    return tf.gather(tf.zeros([1]), tf.cast(wrong, tf.int32))


class ServingModule(tf.Module):
    """A tf.Module with `serve` (any-rank checked input) for TensorFlow Serving."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        # Saved with the module: what `serve` accepts, for clients (export.predict) to read.
        self.image_shape = tf.Variable(
            [model.image_size, model.image_size, model.channels], trainable=False, dtype=tf.int32
        )

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32, name="images")])
    def serve(self, images):
        return outputs(self.model, checked_images(self.model, images))

    def fixed_rank_function(self):
        """A concrete function on (N, H, W, C) uint8 with the shape guard (for TFLite)."""
        m = self.model
        spec = tf.TensorSpec([None, m.image_size, m.image_size, m.channels], tf.uint8, name="images")

        def serve(images):
            guard = shape_guard(images, m.image_size, m.channels)
            return outputs(m, tf.cast(images, tf.float32) + guard)

        return tf.function(serve).get_concrete_function(spec)
