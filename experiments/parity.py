"""Parity of a trained model's exports with the Keras model on real test images.

    python experiments/parity.py --model pretrained/mnist/model.keras --data-dir ../shared/data/mnist

Exports a SavedModel and three TFLite files (float, dynamic-range, float16) to a temporary
directory, runs the first --limit test images through each and prints one JSON line per
artifact: the fraction of images whose class equals the Keras model's, the largest absolute
probability difference, accuracy against the labels, and the file size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--limit", type=int, default=1000)
    args = p.parse_args()
    from export.predict import Predictor
    from export.saved_model import export_saved_model
    from export.tflite import convert
    from glom_tf.cli import load_glom_model
    from training import data

    images, labels = data.load_idx(args.data_dir, "test")
    images, labels = images[: args.limit], labels[: args.limit]  # uint8 (N, 28, 28, 1)
    model = load_glom_model(args.model)
    reference = Predictor(args.model)(images)
    with tempfile.TemporaryDirectory() as tmp:
        artifacts = {"saved_model": export_saved_model(model, os.path.join(tmp, "served"))}
        for quantize in ("none", "dynamic", "float16"):
            path = os.path.join(tmp, f"{quantize}.tflite")
            with open(path, "wb") as f:
                f.write(convert(model, quantize))
            artifacts[f"tflite_{quantize}"] = path
        print(json.dumps({"artifact": "keras", "accuracy": float(np.mean(reference["classes"] == labels))}))
        for name, path in artifacts.items():
            feed = images[..., 0] if name == "saved_model" else images  # the SavedModel takes (N, 28, 28)
            out = Predictor(path)(feed)
            size = os.path.getsize(path) if os.path.isfile(path) else None
            diff = float(np.abs(out["probabilities"] - reference["probabilities"]).max())
            print(json.dumps({
                "artifact": name,
                "same_class": float(np.mean(out["classes"] == reference["classes"])),
                "max_probability_diff": diff,
                "accuracy": float(np.mean(out["classes"] == labels)),
                "bytes": size,
            }))  # fmt: skip


if __name__ == "__main__":
    main()
