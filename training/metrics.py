"""Readout figures of a model over a dataset: both readouts, per class, agreement, confusion.

Agreement (`glom_tf.readout.agreement`): for each image, the fraction of its cells whose own
top-level vote (argmax of the cell's scores) is the class the model's readout predicts, averaged
over images; `agreement` counts every cell of the grid, `agreement_digit` only the cells the
object covers (a pixel of the cell's patch above 0.5, `glom_tf.islands.object_mask`).
"""

from __future__ import annotations

import time

import numpy as np


def readout_figures(model, dataset, num_classes: int, jit: bool = True) -> dict:
    """Runs `model` over a tf.data dataset of (images, labels); returns a JSON-able dict."""
    import tensorflow as tf

    from glom_tf.islands import object_mask
    from glom_tf.readout import agreement, class_probabilities, readout

    def scores_of(images):
        return model(images, training=False)

    forward = tf.function(scores_of, jit_compile=jit)

    start = time.perf_counter()
    labels, vote, mean, answer, agree, agree_digit = [], [], [], [], [], []
    for images, batch_labels in dataset:
        scores = np.asarray(forward(images))  # (B, h, w, C)
        vote.append(np.asarray(class_probabilities(scores, "vote")).argmax(-1))
        mean.append(np.asarray(class_probabilities(scores, "mean")).argmax(-1))
        _, predicted, agree_all = (np.asarray(a) for a in readout(scores, model.readout))
        mask = object_mask(np.asarray(images), scores.shape[1])  # (B, h, w): cells on the object
        answer.append(predicted)
        agree.append(agree_all)
        agree_digit.append(np.asarray(agreement(scores, predicted, mask)))
        labels.append(np.asarray(batch_labels))
    seconds = time.perf_counter() - start
    labels, vote, mean, answer, agree, agree_digit = (
        np.concatenate(a) for a in (labels, vote, mean, answer, agree, agree_digit)
    )
    confusion = np.zeros((num_classes, num_classes), np.int64)  # rows: true class; columns: the answer
    np.add.at(confusion, (labels, answer), 1)
    per_class = {str(c): float(confusion[c, c] / max(confusion[c].sum(), 1)) for c in range(num_classes)}
    return {
        "accuracy": float(np.mean(answer == labels)),  # the model's own readout
        "readout": model.readout,
        "accuracy_vote": float(np.mean(vote == labels)),
        "accuracy_mean": float(np.mean(mean == labels)),
        "agreement": float(np.mean(agree)),
        "agreement_digit": float(np.mean(agree_digit)),
        "per_class_accuracy": per_class,
        "confusion_matrix": confusion.tolist(),
        "images": int(len(labels)),
        "seconds": round(seconds, 3),
    }
