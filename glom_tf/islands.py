"""Islands of agreement: the metrics of the islands that each level forms.

Definitions (NumPy, on the states that `GlomModel.unroll` returns):
- object cells: the cells whose patch holds a pixel above 0.5 (`object_mask`);
- an island of a level: a connected group of 4-neighbouring object cells (no wrap-around)
  whose level vectors have cosine similarity above a threshold (0.9 by default);
- per image and level: the number of islands, the largest island's share of the object's
  cells, the mean cosine of 4-neighbouring object cells, and the mean cosine between the
  island means (over pairs of islands; distinctness = 1 - that, 0 for a single island);
- per image and level below the top: the nesting, the share of the object's cells that lie in
  the island of the level above covering most of their own island (1 = every island lies within
  one island of the level above, as the parts of a parse tree do; `island_parents`).
"""

from __future__ import annotations

import numpy as np

from glom_tf.config import ModelConfig
from glom_tf.neighbourhood import neighbour_shifts

ISLAND_THRESHOLD = ModelConfig.island_threshold  # the config's default
OBJECT_THRESHOLD = 0.5  # a cell is on the object when a pixel of its patch exceeds this (in [0, 1])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-8)


def neighbour_similarity(states: np.ndarray) -> np.ndarray:
    """Mean cosine similarity of each cell with its 8 torus neighbours, per level.

    states (..., H, W, L, D) -> (..., H, W, L); the grid axes are -4 and -3.
    """
    unit = _unit(states)
    sims = [
        np.sum(unit * np.roll(unit, (dy, dx), axis=(-4, -3)), axis=-1)
        for dy, dx in neighbour_shifts(1)
        if (dy, dx) != (0, 0)
    ]
    return np.mean(sims, axis=0)


def object_mask(images, grid: int):
    """Cells whose patch holds an object pixel: images (B, S, S[, C]) in [0, 1] -> (B, grid, grid)
    bool. The one definition, in keras.ops: a tensor for tensors (the model's island loss), a
    NumPy array for NumPy input."""
    from keras import ops

    numpy_in = isinstance(images, np.ndarray)
    if len(images.shape) == 3:
        images = images[..., None]
    p = images.shape[1] // grid
    x = ops.max(ops.cast(images, "float32"), axis=-1)  # (B, S, S)
    x = ops.reshape(x, (-1, grid, p, grid, p))  # (B, h, p, w, p)
    mask = ops.max(x, axis=(2, 4)) > OBJECT_THRESHOLD  # (B, h, w)
    return ops.convert_to_numpy(mask) if numpy_in else mask


def island_labels(vectors: np.ndarray, mask: np.ndarray, threshold: float = ISLAND_THRESHOLD) -> np.ndarray:
    """vectors (H, W, D), mask (H, W) -> labels (H, W): island 0, 1, ... on object cells, -1 elsewhere."""
    h, w = mask.shape
    unit = _unit(vectors)
    parent = np.arange(h * w)

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for y in range(h):
        for x in range(w):
            if not mask[y, x]:
                continue
            for ny, nx in ((y + 1, x), (y, x + 1)):
                if ny < h and nx < w and mask[ny, nx] and unit[y, x] @ unit[ny, nx] > threshold:
                    parent[root(y * w + x)] = root(ny * w + nx)
    labels = -np.ones(h * w, int)
    roots = {}
    for i in np.flatnonzero(mask.ravel()):
        labels[i] = roots.setdefault(root(i), len(roots))
    return labels.reshape(h, w)


def island_figures(
    vectors: np.ndarray,
    mask: np.ndarray,
    threshold: float = ISLAND_THRESHOLD,
    labels: np.ndarray | None = None,
) -> dict:
    """One image and level: vectors (H, W, D), mask (H, W) -> count, largest share, neighbour
    cosine, mean cosine between island means (None for fewer than two islands), distinctness.
    `labels`: the islands when already found (`island_labels` of the same arguments)."""
    labels = island_labels(vectors, mask, threshold) if labels is None else labels
    count = int(labels.max() + 1)
    if count == 0:
        return {"count": 0, "largest": 0.0, "neighbour_cosine": None, "mean_cosine": None, "distinct": 0.0}
    unit = _unit(vectors)
    sizes = np.bincount(labels[mask], minlength=count)
    pairs = [
        unit[y, x] @ unit[y + dy, x + dx]
        for y, x in zip(*np.nonzero(mask))
        for dy, dx in ((1, 0), (0, 1))
        if y + dy < mask.shape[0] and x + dx < mask.shape[1] and mask[y + dy, x + dx]
    ]
    means = _unit(np.stack([vectors[labels == i].mean(0) for i in range(count)]))
    between = (means @ means.T)[np.triu_indices(count, 1)]
    mean_cosine = float(between.mean()) if count > 1 else None
    return {
        "count": count,
        "largest": float(sizes.max() / sizes.sum()),
        "neighbour_cosine": float(np.mean(pairs)) if pairs else None,
        "mean_cosine": mean_cosine,
        "distinct": 0.0 if mean_cosine is None else 1.0 - mean_cosine,
    }


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def level_figures(states: np.ndarray, mask: np.ndarray, threshold: float = ISLAND_THRESHOLD) -> dict:
    """states (B, H, W, L, D), mask (B, H, W) -> per level lists (length L) of the means over
    images of count, largest, neighbour_cosine, mean_cosine (images with >= 2 islands), distinct,
    and nesting (in the level above; None at the top level)."""
    keys = ("count", "largest", "neighbour_cosine", "mean_cosine", "distinct")
    out = {k: [] for k in keys}
    images, levels = range(len(mask)), range(states.shape[-2])
    labels = [[island_labels(states[b, :, :, level], mask[b], threshold) for b in images] for level in levels]
    for level in levels:
        per_image = [island_figures(states[b, :, :, level], mask[b], labels=labels[level][b]) for b in images]
        for k in keys:
            out[k].append(_mean(f[k] for f in per_image))
    pairs = zip(labels[:-1], labels[1:])  # per pair of neighbouring levels: the images' labels
    out["nesting"] = [_mean(nesting(lo, up) for lo, up in zip(*pair)) for pair in pairs] + [None]
    return out


def settling_curves(model, images: np.ndarray, threshold: float | None = None) -> dict:
    """Per time step t = 0..T, per level: the island figures over the object's cells
    (`islands`, `largest`, `neighbour_cosine`, `mean_cosine`, `distinct`, `nesting`), the mean
    8-neighbour cosine over all cells (`similarity`), and top-level agreement (the fraction
    of cells voting for the model's final answer; all cells and object cells).
    """
    from glom_tf.readout import agreement, readout

    threshold = model.island_threshold if threshold is None else threshold
    out = model.unroll(images, training=False)
    states = np.asarray(out["states"])  # (T+1, B, h, w, L, D)
    _, predicted, _ = readout(out["scores"], model.readout)
    predicted = np.asarray(predicted)  # (B,)
    mask = object_mask(images, model.grid)  # (B, h, w)
    top = states[..., -1, :]  # (T+1, B, h, w, D)
    if model.classifier is not None:
        top = np.asarray(model.classifier(top.reshape((-1,) + top.shape[2:]))).reshape(top.shape[:-1] + (-1,))
    # top: (T+1, B, h, w, C) each step's per-cell scores
    per_step = [level_figures(s, mask, threshold) for s in states]
    curves = {k: [f[k] for f in per_step] for k in per_step[0]}  # [T+1][L]
    curves["islands"] = curves.pop("count")
    return {
        **curves,
        "similarity": neighbour_similarity(states).mean((1, 2, 3)).tolist(),  # [T+1][L]
        "agreement": [float(np.mean(agreement(s, predicted))) for s in top],  # [T+1]
        "agreement_digit": [float(np.mean(agreement(s, predicted, mask))) for s in top],  # [T+1]
        "threshold": threshold,
    }


def island_parents(below: np.ndarray, above: np.ndarray) -> dict[int, tuple[int, int]]:
    """Each island of `below` and the island of `above` covering most of its cells.

    below, above: (H, W) island labels of two levels of one image (-1 off the object).
    Returns {island of below: (its parent in above, the cells they share)}
    for the islands that meet above's object; a tie goes to the lower label.
    """
    parents = {}
    for island in range(int(below.max()) + 1):
        covering = above[below == island]
        covering = covering[covering >= 0]
        if covering.size:
            counts = np.bincount(covering)
            parents[island] = (int(counts.argmax()), int(counts.max()))
    return parents


def nesting(below: np.ndarray, above: np.ndarray) -> float | None:
    """The share of below's object cells inside the parent of their own island
    (`island_parents`): 1 when every island of below lies within one island of above; None
    without object cells."""
    total = int((below >= 0).sum())
    if total == 0:
        return None
    return sum(shared for _, shared in island_parents(below, above).values()) / total


def parse_tree(labels: list[np.ndarray]) -> list[dict[int, int]]:
    """The part-whole tree read off the islands of one image.

    labels: per level (bottom first) an (H, W) array of island labels (-1 off the object).
    Returns, per level l, {island at l: its parent island at level l+1} (`island_parents`; the
    top level's dict is empty).
    """
    tree = [
        {island: parent for island, (parent, _) in island_parents(below, above).items()}
        for below, above in zip(labels[:-1], labels[1:])
    ]
    return tree + [{}]
