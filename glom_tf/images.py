"""Image files prepared the MNIST way, for prediction and pictures."""

from __future__ import annotations

import numpy as np

from glom_tf.cli import UserError

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
