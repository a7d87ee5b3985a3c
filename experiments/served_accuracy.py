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


def idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(d, stem):
    names = [n for n in sorted(os.listdir(d)) if n.startswith(stem)]
    return os.path.join(d, names[0]) if names else None


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        return fail("usage: python experiments/served_accuracy.py SAVED_MODEL_VERSION_DIR DATA_DIR")
    sm, data_dir = argv
    if not os.path.isfile(os.path.join(sm, "saved_model.pb")):
        return fail(f"{sm}: no saved_model.pb (pass the version folder, e.g. DIR/1)")
    if not os.path.isdir(data_dir):
        return fail(f"{data_dir}: not a directory")
    paths = [find(data_dir, "t10k-images"), find(data_dir, "t10k-labels")]
    if None in paths:
        return fail(f"{data_dir}: no t10k-images / t10k-labels IDX files")
    images, labels = (idx(path) for path in paths)
    serve = tf.saved_model.load(sm).signatures["serving_default"]
    pred = np.concatenate(
        [
            serve(images=tf.constant(images[i : i + 500], tf.float32))["classes"].numpy()
            for i in range(0, len(images), 500)
        ]
    )
    print(f"{sm}: {int((pred == labels).sum())}/{len(labels)} = {(pred == labels).mean():.4f}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported
    import numpy as np
    import tensorflow as tf

    sys.exit(main(sys.argv[1:]))
