"""The serving function shared by the SavedModel and TFLite exports.

Input `images`: uint8 raw pixels 0..255, (N, H, W) or (N, H, W, C). Outputs:
`probabilities` (N, classes) float32, `classes` (N,) int64 and `agreement` (N,) float32
(the fraction of cells that vote for the predicted class).
"""

from __future__ import annotations

import tensorflow as tf

from glom_tf.readout import readout


def outputs(model, images):
    """uint8 images (N, H, W, C) -> the three named outputs."""
    x = tf.cast(images, tf.float32) / 255.0
    probabilities, classes, agreement = readout(model(x, training=False), model.readout)
    return {
        "probabilities": tf.identity(probabilities, name="probabilities"),
        "classes": tf.identity(tf.cast(classes, tf.int64), name="classes"),
        "agreement": tf.identity(agreement, name="agreement"),
    }


def checked_images(model, images):
    """Validates rank, size and dtype in the graph; returns (N, H, W, C) uint8."""
    size, channels = model.image_size, model.channels
    rank = tf.rank(images)
    tf.debugging.assert_equal(
        tf.logical_or(tf.equal(rank, 3), tf.equal(rank, 4)),
        True,
        message=f"images must have shape (N, {size}, {size}) or (N, {size}, {size}, {channels})",
    )
    images = tf.cond(tf.equal(rank, 3), lambda: tf.expand_dims(images, -1), lambda: images)
    images = tf.ensure_shape(images, [None, None, None, None])
    tf.debugging.assert_equal(
        tf.shape(images)[1:],
        tf.constant([size, size, channels]),
        message=f"images must be {size}x{size} with {channels} channel(s)",
    )
    return tf.ensure_shape(images, [None, size, size, channels])


class ServingModule(tf.Module):
    """A tf.Module with `serve` (any-rank checked input) for TensorFlow Serving."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec(None, tf.uint8, name="images")])
    def serve(self, images):
        return outputs(self.model, checked_images(self.model, images))

    def fixed_rank_function(self):
        """A concrete function on (N, H, W, C) uint8 (for TFLite)."""
        m = self.model
        spec = tf.TensorSpec([None, m.image_size, m.image_size, m.channels], tf.uint8, name="images")

        def serve(images):
            return outputs(m, images)

        return tf.function(serve).get_concrete_function(spec)
