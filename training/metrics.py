"""Readout figures of a model over a dataset: both readouts, per class, agreement, confusion."""

from __future__ import annotations

import time

import numpy as np


def readout_figures(model, dataset, num_classes: int, jit: bool = True) -> dict:
    """Runs `model` over a tf.data dataset of (images, labels); returns a JSON-able dict."""
    import tensorflow as tf

    from glom_tf.readout import agreement, class_probabilities

    forward = tf.function(lambda images: model(images, training=False), jit_compile=jit)

    start = time.perf_counter()
    labels, vote, mean, agree = [], [], [], []
    for images, batch_labels in dataset:
        scores = np.asarray(forward(images))  # (B, h, w, C)
        votes = np.asarray(class_probabilities(scores, "vote")).argmax(-1)
        vote.append(votes)
        mean.append(np.asarray(class_probabilities(scores, "mean")).argmax(-1))
        agree.append(np.asarray(agreement(scores, votes)))
        labels.append(np.asarray(batch_labels))
    seconds = time.perf_counter() - start
    labels, vote, mean, agree = (np.concatenate(a) for a in (labels, vote, mean, agree))
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, vote), 1)
    per_class = {str(c): float(confusion[c, c] / max(confusion[c].sum(), 1)) for c in range(num_classes)}
    return {
        "accuracy_vote": float(np.mean(vote == labels)),
        "accuracy_mean": float(np.mean(mean == labels)),
        "agreement": float(np.mean(agree)),
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion.tolist(),
        "images": int(len(labels)),
        "seconds": round(seconds, 3),
    }
