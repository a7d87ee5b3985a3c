"""Classify image files: `python -m export.predict MODEL IMAGE [IMAGE ...] [--json]`.

MODEL is a .keras file, a SavedModel directory (a version directory or a base path
holding numbered versions) or a .tflite file. Each image (PNG/JPEG, any size or colour
mode) is prepared as `glom_tf.images.prepare_image` says (the MNIST way, in a frame of the
model's image size), then repeated over the model's channels. A file that is not an image, or an image with
no digit (blank: too little contrast), is a one-line error naming it (exit code 2); the
other images are still classified.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from glom_tf.cli import EXIT_BAD_INPUT, ArgumentParser, UserError, load_glom_model, run, stderr_silenced
from glom_tf.images import prepare_image


class Predictor:
    """Runs one of the three artifact kinds on uint8 images (N, H, W, C)."""

    def __init__(self, path: str):
        self.path = path
        if path.endswith(".tflite") and os.path.isfile(path):
            from ai_edge_litert.interpreter import Interpreter

            try:
                with stderr_silenced():  # LiteRT prints an INFO line about its CPU delegate
                    interpreter = Interpreter(model_path=path)
                    self.runner = interpreter.get_signature_runner("serving_default")
                    shape = interpreter.get_input_details()[0]["shape"]
                    self.runner(images=np.zeros((1, *shape[1:]), np.uint8))  # the delegate starts here
            except Exception as e:  # a corrupt file, or a model without this project's signature
                raise UserError(f"{path}: not a readable GLOM TFLite model ({type(e).__name__})") from None
            self.size, self.channels, self.kind = int(shape[1]), int(shape[3]), "tflite"
        elif path.endswith(".keras") and os.path.isfile(path):
            try:
                self.model = load_glom_model(path)
            except UserError as e:  # its message names the path as --model; here it is positional
                raise UserError(str(e).removeprefix("--model ")) from None
            self.size, self.channels, self.kind = self.model.image_size, self.model.channels, "keras"
        elif os.path.isdir(path):
            import tensorflow as tf

            version = path
            if not os.path.exists(os.path.join(path, "saved_model.pb")):
                versions = sorted((int(d) for d in os.listdir(path) if d.isdigit()), reverse=True)
                if not versions:
                    raise UserError(f"{path}: no saved_model.pb and no numbered versions")
                version = os.path.join(path, str(versions[0]))
            try:
                loaded = tf.saved_model.load(version)
                self.signature = loaded.signatures["serving_default"]
            except Exception as e:  # not a SavedModel, corrupt, or no serving_default signature
                raise UserError(f"{version}: not a readable GLOM SavedModel ({type(e).__name__})") from None
            takes = sorted(self.signature.structured_input_signature[1])
            gives = sorted(self.signature.structured_outputs)
            if takes != ["images"] or not {"probabilities", "classes", "agreement"} <= set(gives):
                raise UserError(
                    f"{version}: not a GLOM SavedModel (serving_default: {', '.join(takes) or 'no input'} -> "
                    f"{', '.join(gives)}; expected images -> probabilities, classes, agreement)"
                )
            # (S, S, C) as exported; SavedModels exported before it was saved are 28x28 grey.
            shape = loaded.image_shape.numpy() if hasattr(loaded, "image_shape") else (28, 28, 1)
            self.size, self.channels, self.kind = int(shape[0]), int(shape[2]), "saved_model"
        else:
            raise UserError(f"{path}: not a .keras file, a SavedModel directory or a .tflite file")

    def __call__(self, images: np.ndarray) -> dict:
        if self.kind == "tflite":
            out = self.runner(images=images)
        elif self.kind == "keras":
            import tensorflow as tf

            from export.serving import outputs

            out = outputs(self.model, tf.constant(images))
        else:
            out = self.signature(images=images)
        return {k: np.asarray(v) for k, v in out.items()}


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m export.predict", description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("images", nargs="+")
    p.add_argument("--json", action="store_true", help="one JSON list on stdout")
    args = p.parse_args(argv)
    predictor = Predictor(args.model)
    size, channels = predictor.size, predictor.channels
    results, failed = [], False
    for path in args.images:
        try:
            image = prepare_image(path, size)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            failed = True
            continue
        out = predictor(np.repeat(image[None, :, :, None], channels, axis=-1))  # (1, S, S, C), grey
        cls = int(out["classes"][0])
        results.append(
            {
                "image": path,
                "class": cls,
                "probability": float(out["probabilities"][0, cls]),
                "agreement": float(out["agreement"][0]),
            }
        )
        if not args.json:
            r = results[-1]
            print(
                f"{path}: {r['class']} (probability {r['probability']:.3f}, agreement {r['agreement']:.3f})"
            )
    if args.json:
        print(json.dumps(results, indent=2))
    return EXIT_BAD_INPUT if failed else 0


if __name__ == "__main__":
    run(main)
