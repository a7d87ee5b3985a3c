"""Accuracy of an exported SavedModel on an official IDX test split, in a plain TensorFlow
process: none of the model's code is imported (the IDX reader is written out here on purpose;
only `glom_tf.cli`, the commands' quiet TensorFlow import and one-line errors, is used), so the
figure is what a TensorFlow Serving client gets.

Usage: python experiments/served_accuracy.py SAVED_MODEL_VERSION_DIR DATA_DIR
  e.g. python -m export.saved_model --model pretrained/fashion_mnist/model.keras --out /tmp/fm
       python experiments/served_accuracy.py /tmp/fm/1 /usr/share/datasets/fashion-mnist
"""

import gzip
import os
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from glom_tf.cli import UserError, run  # noqa: E402  (stdlib only: no Keras, no model code)


def idx(path, ndim):
    """An IDX file of unsigned bytes with `ndim` dimensions (gzipped or not), checked."""
    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{path}: cannot be read ({type(e).__name__})") from None
    if len(data) < 4 + 4 * ndim or data[:3] != b"\0\0\x08" or data[3] != ndim:
        raise UserError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s)")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if len(data) - 4 - 4 * ndim != int(np.prod(dims)):
        raise UserError(f"{path}: holds {len(data) - 4 - 4 * ndim} bytes for shape {dims}")
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(d, stem):
    names = [n for n in sorted(os.listdir(d)) if n.startswith(stem)]
    return os.path.join(d, names[0]) if names else None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        raise UserError("usage: python experiments/served_accuracy.py SAVED_MODEL_VERSION_DIR DATA_DIR")
    sm, data_dir = argv
    if not os.path.isfile(os.path.join(sm, "saved_model.pb")):
        raise UserError(f"{sm}: no saved_model.pb (pass the version folder, e.g. DIR/1)")
    if not os.path.isdir(data_dir):
        raise UserError(f"{data_dir}: not a directory")
    paths = [find(data_dir, "t10k-images"), find(data_dir, "t10k-labels")]
    if None in paths:
        raise UserError(f"{data_dir}: no t10k-images / t10k-labels IDX files")
    images, labels = idx(paths[0], 3), idx(paths[1], 1)
    import tensorflow as tf  # imported quietly by `run` already

    if len(images) != len(labels):
        raise UserError(f"{data_dir}: {len(images)} test images but {len(labels)} labels")
    try:
        serve = tf.saved_model.load(sm).signatures["serving_default"]
        pred = np.concatenate(
            [
                serve(images=tf.constant(images[i : i + 500], tf.float32))["classes"].numpy()
                for i in range(0, len(images), 500)
            ]
        )
    except Exception as e:  # a foreign or corrupt SavedModel, or images it refuses
        raise UserError(f"{sm}: does not serve these images as GLOM does ({type(e).__name__})") from None
    print(f"{sm}: {int((pred == labels).sum())}/{len(labels)} = {(pred == labels).mean():.4f}")
    return 0


if __name__ == "__main__":
    run(lambda: main(sys.argv[1:]))  # imports TensorFlow quietly first
