"""Parity of a trained model's exports with the Keras model on real test images.

    python experiments/parity.py --model pretrained/mnist/model.keras --data-dir ../shared/data/mnist

Exports a SavedModel and three TFLite files (float, dynamic-range, float16) to a temporary
directory, runs the first --limit test images through each and prints one JSON line per
artifact: the fraction of images whose class equals the Keras model's, the largest absolute
probability difference, accuracy against the labels, and the file size.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    from export.predict import Predictor
    from export.saved_model import export_saved_model
    from export.tflite import convert
    from glom_tf.cli import ArgumentParser, load_glom_model
    from training import data

    p = ArgumentParser(prog="python experiments/parity.py", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data-dir", required=True, help="the IDX files of the model's dataset")
    p.add_argument("--limit", type=int, default=1000)
    args = p.parse_args()
    if args.limit < 1:
        p.error(f"--limit must be >= 1, got {args.limit}")
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
    return 0


if __name__ == "__main__":
    from glom_tf.cli import run

    run(main)
