"""Reading class scores off the top level: the per-cell loss, the two readouts, agreement."""

from __future__ import annotations

import keras
from keras import ops

from glom_tf.config import LOSSES


def argmax(x):
    """Index of the largest entry on the last axis, int32; the lowest index wins ties.

    On TensorFlow this calls tf.argmax: keras.ops.argmax adds a sign-bit bitcast that has
    no TFLite builtin op.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.argmax(x, axis=-1, output_type=tf.int32)
    return ops.cast(ops.argmax(x, axis=-1), "int32")


def cell_votes(scores):
    """Each cell's vote as a one-hot vector: (B, H, W, C) -> (B, H, W, C)."""
    classes = ops.arange(scores.shape[-1], dtype="int32")
    winner = argmax(scores)[..., None]  # (B, H, W, 1)
    return ops.cast(winner == classes, scores.dtype)  # a comparison, not one_hot: TFLite builtins only


def class_probabilities(scores, readout: str = "vote"):
    """Per-image class probabilities (B, C) from per-cell scores (B, H, W, C).

    "vote": the fraction of cells whose argmax is each class (the original's majority vote).
    "mean": softmax of the cells' mean score.
    """
    if readout == "vote":
        return ops.mean(cell_votes(scores), axis=(1, 2))
    if readout == "mean":
        return ops.softmax(ops.mean(scores, axis=(1, 2)), axis=-1)
    raise ValueError(f"readout must be 'vote' or 'mean', got {readout!r}")


def agreement(scores, classes, mask=None):
    """Fraction of cells whose own vote (argmax of the cell's scores) is the image's predicted
    class `classes` (B,): (B, H, W, C) -> (B,). With `mask` (B, H, W) bool, the fraction of
    the masked cells (the object's cells; 0 where an image has none). The one definition of
    agreement."""
    hits = ops.cast(argmax(scores) == ops.cast(classes, "int32")[:, None, None], "float32")  # (B, H, W)
    if mask is None:
        return ops.mean(hits, axis=(1, 2))
    mask = ops.cast(mask, "float32")
    return ops.sum(hits * mask, axis=(1, 2)) / ops.maximum(ops.sum(mask, axis=(1, 2)), 1.0)


def readout(scores, kind: str):
    """The model's answer from per-cell scores (B, H, W, C): (probabilities (B, C) float32,
    classes (B,) int32, agreement (B,) float32 with the predicted class). Used by the model,
    the exports and the evaluation alike."""
    probabilities = ops.cast(class_probabilities(scores, kind), "float32")
    classes = argmax(probabilities)
    return probabilities, classes, agreement(scores, classes)


@keras.saving.register_keras_serializable(package="glom_tf")
class CellLoss(keras.losses.Loss):
    """The target label at every cell: MSE to one-hot (the original), cross-entropy, or "none"
    (zero: pretraining on the island and denoising objectives alone); or "mean_crossentropy",
    the cross-entropy of the image's mean readout (softmax of the cells' mean score), which
    asks the cells together, not each cell, for the label.

    y_true: integer labels (B,) or (B, 1); y_pred: per-cell scores (B, H, W, C).
    Returns a per-image loss (B,): the mean over cells (and classes for MSE), or for
    "mean_crossentropy" the cross-entropy of the cells' mean score.
    """

    def __init__(self, kind: str = "mse", name: str = "cell_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if kind not in LOSSES:
            raise ValueError(f"CellLoss kind must be one of {', '.join(LOSSES)}, got {kind!r}")
        self.kind = kind

    def call(self, y_true, y_pred):
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))  # (B,)
        y_pred = ops.cast(y_pred, "float32")  # the loss in float32 under mixed precision
        classes = y_pred.shape[-1]
        if self.kind == "none":  # self-supervised training: only the model's own objectives
            return ops.mean(y_pred * 0.0, axis=(1, 2, 3))
        if self.kind == "mse":
            target = ops.one_hot(labels, classes, dtype=y_pred.dtype)[:, None, None, :]
            return ops.mean(ops.square(y_pred - target), axis=(1, 2, 3))
        if self.kind == "mean_crossentropy":
            pooled = ops.mean(y_pred, axis=(1, 2))  # (B, C): the mean readout's scores
            return keras.losses.sparse_categorical_crossentropy(labels, pooled, from_logits=True)
        labels = ops.broadcast_to(labels[:, None, None], ops.shape(y_pred)[:3])  # (B, H, W)
        ce = keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
        return ops.mean(ce, axis=(1, 2))

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


@keras.saving.register_keras_serializable(package="glom_tf")
class ReadoutMetric(keras.metrics.Mean):
    """Mean over images of one readout figure.

    kind: "vote_accuracy" (majority vote), "mean_accuracy" (mean score) or
    "agreement" (fraction of cells voting for the class that the `readout` predicts).
    """

    def __init__(self, kind: str = "vote_accuracy", readout: str = "vote", name: str | None = None, **kwargs):
        super().__init__(name=name or kind, **kwargs)
        self.kind = kind
        self.readout = readout

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        kind = {"vote_accuracy": "vote", "mean_accuracy": "mean"}.get(self.kind, self.readout)
        predicted = argmax(class_probabilities(y_pred, kind))
        if self.kind == "agreement":
            values = agreement(y_pred, predicted)
        else:
            values = ops.cast(predicted == labels, "float32")
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "readout": self.readout}
