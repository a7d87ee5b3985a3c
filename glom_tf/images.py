"""Image files prepared the MNIST way, for prediction and pictures."""

from __future__ import annotations

import warnings

import numpy as np

from glom_tf.cli import UserError

DIGIT_BOX = 20  # MNIST: digits fit a 20x20 box inside the 28x28 frame
MIN_CONTRAST = 32.0  # grey levels between the ink and the background; less is "no digit found"
PIXEL_MAX = 255.0  # raw pixel values are whole numbers 0..PIXEL_MAX; the model reads [0, 1]


def unit_pixels(pixels) -> np.ndarray:
    """Raw pixel values 0..255 (any shape, any numeric dtype) -> float32 in [0, 1]: what the
    model reads. The one scaling of NumPy images (tf.data: `convert_image_dtype`)."""
    return np.asarray(pixels, dtype=np.float32) / PIXEL_MAX


def _greyscale(image) -> np.ndarray:
    """A PIL image -> (H, W) float32 grey levels. Transparent pixels become the background:
    the colour that contrasts with the opaque pixels (black behind light ink, white behind
    dark ink), so white ink on a transparent background stays readable."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), np.float32)
        ink = np.asarray(rgba.convert("L"), np.float32)
        opaque = alpha > 127
        light_ink = opaque.any() and ink[opaque].mean() > 127
        background = (0, 0, 0, 255) if light_ink else (255, 255, 255, 255)
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, background), rgba)
    return np.asarray(image.convert("L"), dtype=np.float32)


def prepare_image(path: str, size: int = 28) -> np.ndarray:
    """A file -> (size, size) uint8, white digit on black, MNIST-style: greyscale (transparent
    pixels filled with the colour that contrasts with the ink), inverted when the border is
    bright, the digit's bounding box scaled so its longer side is 20/28 of `size`, placed in
    the frame centred on its centre of mass; an image already (size, size) is used as it is.

    Raises UserError for a file that is not a readable image, and for an image without a
    digit (blank, or too little contrast): the model would still answer with a class.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # PIL only warns below twice its pixel limit; past it, it refuses (DecompressionBombError).
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                grey = _greyscale(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{path}: too large an image (over {Image.MAX_IMAGE_PIXELS:,} pixels)") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable image ({type(e).__name__})") from None
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 127:  # a dark digit on a bright background
        grey = 255.0 - grey
    if float(grey.max() - grey.min()) < MIN_CONTRAST:
        raise UserError(
            f"{path}: no digit found (a blank image: grey levels {grey.min():.0f}..{grey.max():.0f})"
        )
    if grey.shape == (size, size):
        return grey.astype(np.uint8)
    grey = grey - grey.min()
    mask = grey > 0.2 * grey.max()
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
