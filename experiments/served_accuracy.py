"""Accuracy of an exported SavedModel on an official IDX test split, in a plain TensorFlow
process: nothing of this project is imported (the IDX reader is written out here on purpose),
so the figure is what a TensorFlow Serving client gets.

Usage: python experiments/served_accuracy.py SAVED_MODEL_VERSION_DIR DATA_DIR
  e.g. python -m export.saved_model --model pretrained/fashion_mnist/model.keras --out /tmp/fm
       python experiments/served_accuracy.py /tmp/fm/1 /usr/share/datasets/fashion-mnist
"""

import gzip
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402  (after the log level is set)


def idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(d, stem):
    for name in os.listdir(d):
        if name.startswith(stem):
            return os.path.join(d, name)
    raise SystemExit(f"no {stem} in {d}")


sm, data_dir = sys.argv[1], sys.argv[2]
images = idx(find(data_dir, "t10k-images"))
labels = idx(find(data_dir, "t10k-labels"))
serve = tf.saved_model.load(sm).signatures["serving_default"]
pred = np.concatenate(
    [
        serve(images=tf.constant(images[i : i + 500], tf.float32))["classes"].numpy()
        for i in range(0, len(images), 500)
    ]
)
print(f"{sm}: {int((pred == labels).sum())}/{len(labels)} = {(pred == labels).mean():.4f}")
