"""Classify image files: `python -m export.predict MODEL IMAGE [IMAGE ...] [--json]`.

MODEL is a .keras file, a SavedModel directory (a version directory or a base path
holding numbered versions) or a .tflite file. Each image (PNG/JPEG, any size or colour
mode) is prepared the way MNIST digits were: greyscale, inverted when its border is
bright (a dark digit on white paper), the digit's bounding box scaled so its longer side
is 20 px, then placed in a 28x28 frame centred on its centre of mass.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

import numpy as np

from training.cli import EXIT_BAD_INPUT, ArgumentParser, UserError, run

DIGIT_BOX = 20  # MNIST: digits fit a 20x20 box inside the 28x28 frame


def prepare_image(path: str, size: int = 28) -> np.ndarray:
    """A file -> (size, size) uint8, white digit on black, MNIST-style. Raises UserError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                white = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(white, image)
            grey = np.asarray(image.convert("L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable image ({type(e).__name__})") from None
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 127:  # a dark digit on a bright background
        grey = 255.0 - grey
    if grey.shape == (size, size):
        return grey.astype(np.uint8)
    mask = grey > 0.2 * grey.max() if grey.max() > 0 else np.zeros_like(grey, bool)
    if not mask.any():
        return np.zeros((size, size), np.uint8)
    rows, cols = np.where(mask)
    crop = grey[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    box = DIGIT_BOX * size // 28
    scale = box / max(crop.shape)
    new_h, new_w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    resized = np.asarray(Image.fromarray(crop).resize((new_w, new_h), Image.BILINEAR), np.float32)
    canvas = np.zeros((size, size), np.float32)
    total = max(float(resized.sum()), 1e-6)
    ys, xs = np.mgrid[:new_h, :new_w]
    cy, cx = (ys * resized).sum() / total, (xs * resized).sum() / total  # centre of mass
    top = int(round(size / 2 - cy))
    left = int(round(size / 2 - cx))
    top, left = min(max(top, 0), size - new_h), min(max(left, 0), size - new_w)
    canvas[top : top + new_h, left : left + new_w] = resized
    return np.clip(canvas, 0, 255).astype(np.uint8)


@contextlib.contextmanager
def quiet_stderr():
    """Silences the C-level stderr (file descriptor 2) inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class Predictor:
    """Runs one of the three artifact kinds on uint8 images (N, H, W, C)."""

    def __init__(self, path: str):
        self.path = path
        if path.endswith(".tflite") and os.path.isfile(path):
            from ai_edge_litert.interpreter import Interpreter

            with quiet_stderr():  # LiteRT prints an INFO line about its CPU delegate
                interpreter = Interpreter(model_path=path)
                self.runner = interpreter.get_signature_runner("serving_default")
                shape = interpreter.get_input_details()[0]["shape"]
                self.runner(images=np.zeros((1, *shape[1:]), np.uint8))  # the delegate starts here
            self.size, self.channels, self.kind = int(shape[1]), int(shape[3]), "tflite"
        elif path.endswith(".keras") and os.path.isfile(path):
            from export.saved_model import load_keras_model

            self.model = load_keras_model(path)
            self.size, self.channels, self.kind = self.model.image_size, self.model.channels, "keras"
        elif os.path.isdir(path):
            import tensorflow as tf

            version = path
            if not os.path.exists(os.path.join(path, "saved_model.pb")):
                versions = sorted((int(d) for d in os.listdir(path) if d.isdigit()), reverse=True)
                if not versions:
                    raise UserError(f"{path}: no saved_model.pb and no numbered versions")
                version = os.path.join(path, str(versions[0]))
            self.signature = tf.saved_model.load(version).signatures["serving_default"]
            self.size, self.channels, self.kind = None, None, "saved_model"
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
    size = predictor.size or 28
    results, failed = [], False
    for path in args.images:
        try:
            image = prepare_image(path, size)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            failed = True
            continue
        out = predictor(image[None, :, :, None])
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
