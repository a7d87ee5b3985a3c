"""Pictures of a GLOM model's state as uint8 arrays (for TensorBoard and PNG files)."""

from __future__ import annotations

import numpy as np

# One colour per class (tab10).
CLASS_COLOURS = np.array(
    [
        [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
        [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
    ],
    np.uint8,
)  # fmt: skip


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    reps = max(size // grid.shape[0], 1)
    return np.repeat(np.repeat(grid, reps, axis=0), reps, axis=1)


def vote_panel(model, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Two rows: the input digits, and each cell's vote coloured by class. (H, W, 3) uint8."""
    scores = np.asarray(model(images, training=False))  # (B, h, w, C)
    votes = scores.argmax(-1) % len(CLASS_COLOURS)  # (B, h, w)
    size = images.shape[1]
    tiles_in, tiles_vote = [], []
    for image, vote in zip(images, votes):
        grey = (np.clip(image[..., :1], 0, 1) * 255).astype(np.uint8)
        tiles_in.append(np.repeat(grey, 3, axis=-1))
        coloured = _upsample(CLASS_COLOURS[vote], size)[:size, :size]
        pad = size - coloured.shape[0]
        tiles_vote.append(np.pad(coloured, ((0, pad), (0, pad), (0, 0))))
    return np.concatenate([np.concatenate(tiles_in, 1), np.concatenate(tiles_vote, 1)], 0)
