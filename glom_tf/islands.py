"""Islands of agreement: neighbour similarity, island counts and agreement over time steps.

Analysis functions on NumPy arrays of the states that `GlomModel.unroll` returns.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from glom_tf.neighbourhood import neighbour_shifts

ISLAND_THRESHOLD = 0.9  # cosine similarity above which a cell agrees with its neighbourhood
DIGIT_THRESHOLD = 0.5  # a cell covers the digit when a pixel of its patch exceeds this (in [0, 1])


def neighbour_similarity(states: np.ndarray) -> np.ndarray:
    """Mean cosine similarity of each cell with its 8 torus neighbours, per level.

    states (..., H, W, L, D) -> (..., H, W, L); the grid axes are -4 and -3.
    """
    unit = states / (np.linalg.norm(states, axis=-1, keepdims=True) + 1e-8)
    sims = [
        np.sum(unit * np.roll(unit, (dy, dx), axis=(-4, -3)), axis=-1)
        for dy, dx in neighbour_shifts(1)
        if (dy, dx) != (0, 0)
    ]
    return np.mean(sims, axis=0)


def digit_mask(images: np.ndarray, grid: int) -> np.ndarray:
    """Cells whose patch holds a digit pixel: images (B, S, S[, C]) in [0, 1] -> (B, grid, grid)."""
    if images.ndim == 4:
        images = images.max(-1)
    b, s = images.shape[0], images.shape[1]
    p = s // grid
    patches = images.reshape(b, grid, p, grid, p).max(axis=(2, 4))  # (B, grid, grid)
    return patches > DIGIT_THRESHOLD


def count_islands(agree: np.ndarray, mask: np.ndarray | None = None) -> int:
    """Connected components (4-neighbour, torus) of True cells in `agree` (H, W), within `mask`."""
    cells = agree if mask is None else agree & mask
    h, w = cells.shape
    seen = np.zeros_like(cells, dtype=bool)
    islands = 0
    for i, j in zip(*np.nonzero(cells)):
        if seen[i, j]:
            continue
        islands += 1
        queue = deque([(i, j)])
        seen[i, j] = True
        while queue:
            y, x = queue.popleft()
            for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                ny, nx = (y + dy) % h, (x + dx) % w
                if cells[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
    return islands


def settling_curves(model, images: np.ndarray, threshold: float = ISLAND_THRESHOLD) -> dict:
    """Per time step t = 0..T: mean neighbour similarity per level (all cells and digit cells),
    mean island count per level (whole grid and digit cells), and top-level agreement (the
    fraction of cells voting for the final predicted class; all cells and digit cells).
    """
    from glom_tf.readout import class_probabilities

    out = model.unroll(images, training=False)
    states = np.asarray(out["states"])  # (T+1, B, h, w, L, D)
    final = np.asarray(out["scores"])  # (B, h, w, C)
    predicted = np.asarray(class_probabilities(final, model.readout)).argmax(-1)  # (B,)
    mask = digit_mask(np.asarray(images, np.float32), model.grid)  # (B, h, w)
    top = states[..., -1, :]  # (T+1, B, h, w, D)
    if model.classifier is not None:
        top = np.asarray(model.classifier(top.reshape((-1,) + top.shape[2:]))).reshape(top.shape[:-1] + (-1,))
    votes = top.argmax(-1) == predicted[None, :, None, None]  # (T+1, B, h, w)
    sim = neighbour_similarity(states)  # (T+1, B, h, w, L)
    steps, batch, levels = sim.shape[0], sim.shape[1], sim.shape[-1]
    islands = np.zeros((steps, batch, levels, 2))
    for t in range(steps):
        for b in range(batch):
            for level in range(levels):
                agree = sim[t, b, :, :, level] > threshold
                islands[t, b, level] = (count_islands(agree), count_islands(agree, mask[b]))
    masked = mask[None, ..., None]  # (1, B, h, w, 1)
    digit_sim = (sim * masked).sum((1, 2, 3)) / np.maximum(masked.sum((1, 2, 3)), 1)
    return {
        "similarity": sim.mean((1, 2, 3)).tolist(),  # [T+1][L]
        "similarity_digit": digit_sim.tolist(),  # [T+1][L]
        "islands": islands[..., 0].mean(1).tolist(),  # [T+1][L]
        "islands_digit": islands[..., 1].mean(1).tolist(),  # [T+1][L]
        "agreement": votes.mean((1, 2, 3)).tolist(),  # [T+1]
        "agreement_digit": ((votes * mask[None]).sum((2, 3)) / np.maximum(mask.sum((1, 2)), 1))
        .mean(1)
        .tolist(),
        "threshold": threshold,
    }
