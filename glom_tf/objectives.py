"""Training objectives beside the classification loss: islands and denoising.

`island_loss` teaches every updated level to form islands of agreeing vectors over the
object's cells, as a contrastive (InfoNCE) loss with a spatial scale per level:

- scale s > 0 (part levels): for each object cell i, the positives are its 4-neighbouring
  object cells and the negatives the object cells at Chebyshev distance >= s. Neighbours
  are pulled together, distant parts of the same object pushed apart, so a level settles
  into a few distinct islands whose size grows with s (a hierarchy when s grows with l).
- scale 0 (the object level): each object cell's vector is pulled to its own image's
  object mean and pushed from the other images' means in the batch: one island per object,
  no collapse to one vector for every image.

Vectors are compared by cosine similarity over `temperature`. The contrastive part term is
content with a smooth gradient of vectors along a stroke (every neighbour pair similar, distant
cells different) that has no islands at a cosine threshold; `sharpness_loss` (weight
`sharpness`, part levels) asks every pair of 4-neighbouring object cells to either share an
island (cosine >= `high`) or be distinct (cosine <= `DISTINCT_COSINE`): piecewise-constant
islands. `nesting_loss` (weight `nesting`) asks each part of a level to lie within one island of
the level above, as a parse tree's parts lie within their wholes, by asking two neighbouring
object cells to agree at a level no more than they do at the level above (stronger than
nesting: it orders every neighbouring pair's cosines by level). `denoise_loss` is the mean squared
error of reconstructed patch pixels on the masked patches.
"""

from __future__ import annotations

import numpy as np
from keras import ops

NEG_INF = -1e9
DISTINCT_COSINE = 0.5  # sharpness_loss: neighbouring cells of different islands at most this similar


def grid_relations(grid: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(positives, negatives) float32 (n, n), n = grid^2 cells in row-major order.

    positives: 4-neighbours (no wrap-around); negatives: Chebyshev distance >= scale.
    """
    rows, cols = np.divmod(np.arange(grid * grid), grid)
    dy = np.abs(rows[:, None] - rows[None, :])
    dx = np.abs(cols[:, None] - cols[None, :])
    positives = (dy + dx) == 1
    negatives = np.maximum(dy, dx) >= scale
    return positives.astype("float32"), negatives.astype("float32")


def _normalise(x):
    return x * ops.rsqrt(ops.sum(ops.square(x), axis=-1, keepdims=True) + 1e-12)


def _masked_logsumexp(logits, mask):
    """log sum_j mask_j exp(logits_j) over the last axis; -1e9 where the mask is empty."""
    masked = ops.where(mask > 0, logits, NEG_INF)
    return ops.logsumexp(masked, axis=-1)


def part_island_loss(vectors, mask, scale: int, temperature: float):
    """vectors (B, n, D), mask (B, n) in {0, 1} -> scalar (mean over anchors with positives)."""
    grid = int(round(vectors.shape[1] ** 0.5))
    positives, negatives = (ops.convert_to_tensor(a) for a in grid_relations(grid, scale))
    unit = _normalise(vectors)
    logits = ops.einsum("bnd,bmd->bnm", unit, unit) / temperature  # (B, n, n)
    pair = mask[:, :, None] * mask[:, None, :]  # (B, n, n): both cells on the object
    pos = positives[None] * pair
    both = ops.maximum(pos, negatives[None] * pair)
    has = ops.cast(ops.sum(pos, axis=-1) > 0, vectors.dtype)  # (B, n) anchors with a positive
    per_anchor = _masked_logsumexp(logits, both) - _masked_logsumexp(logits, pos)  # (B, n) >= 0
    return ops.sum(per_anchor * has) / ops.maximum(ops.sum(has), 1.0)


def object_island_loss(vectors, mask, temperature: float):
    """vectors (B, n, D), mask (B, n) -> scalar: each object cell against the batch's object means."""
    unit = _normalise(vectors)
    means = _normalise(ops.sum(unit * mask[..., None], axis=1))  # (B, D)
    logits = ops.einsum("bnd,cd->bnc", unit, means) / temperature  # (B, n, B)
    own = ops.eye(ops.shape(means)[0], dtype=vectors.dtype)[:, None, :]  # (B, 1, B)
    per_cell = ops.logsumexp(logits, axis=-1) - ops.sum(logits * own, axis=-1)  # (B, n)
    return ops.sum(per_cell * mask) / ops.maximum(ops.sum(mask), 1.0)


def sharpness_loss(vectors, mask, high: float, low: float = DISTINCT_COSINE):
    """vectors (B, n, D), mask (B, n) -> scalar: the mean over pairs of 4-neighbouring object
    cells of 4 relu(c - low) relu(high - c) / (high - low)^2, c their cosine: 0 outside
    (low, high), 1 midway; its gradient pushes c to the nearer end."""
    cosine, pairs = _neighbour_cosines(vectors, mask)
    penalty = ops.relu(cosine - low) * ops.relu(high - cosine) * (4.0 / (high - low) ** 2)
    return ops.sum(penalty * pairs) / ops.maximum(ops.sum(pairs), 1.0)


def _neighbour_cosines(vectors, mask):
    """vectors (B, n, D), mask (B, n) -> (cosines (B, n, n), pairs (B, n, n) in {0, 1}: the
    4-neighbouring pairs of object cells)."""
    grid = int(round(vectors.shape[1] ** 0.5))
    positives, _ = grid_relations(grid, 1)
    unit = _normalise(vectors)
    cosine = ops.einsum("bnd,bmd->bnm", unit, unit)  # (B, n, n)
    pairs = ops.convert_to_tensor(positives)[None] * mask[:, :, None] * mask[:, None, :]  # (B, n, n)
    return cosine, pairs


def nesting_loss(lower, upper, mask):
    """lower, upper (B, n, D) (a level and the level above), mask (B, n) -> scalar: the mean over
    pairs of 4-neighbouring object cells of relu(c_lower - c_upper), c their cosine at each
    level. It is largest where a part straddles two wholes (c_lower near 1, c_upper low), whose
    gradient splits the part or joins the wholes; it asks for more than nesting, as it orders
    the cosines of every pair by level (a border between two parts under two wholes also pays
    when the parts agree more than the wholes, and so do small differences inside islands)."""
    lower_cosine, pairs = _neighbour_cosines(lower, mask)
    upper_cosine, _ = _neighbour_cosines(upper, mask)
    penalty = ops.relu(lower_cosine - upper_cosine)
    return ops.sum(penalty * pairs) / ops.maximum(ops.sum(pairs), 1.0)


def island_loss(
    state,
    mask,
    scales: tuple[int, ...],
    temperature: float,
    sharpness: float = 0.0,
    high: float = 0.95,
    nesting: float = 0.0,
):
    """state (B, h, w, L, D), mask (B, h, w) -> scalar: the mean over updated levels 1..L-1 of
    each level's term (part levels: contrastive + sharpness x `sharpness_loss`), plus nesting x
    the mean of `nesting_loss` over the pairs of neighbouring updated levels.
    Computed in float32 (under mixed precision too)."""
    state = ops.cast(state, "float32")
    b, h, w, levels, d = ops.shape(state)[0], state.shape[1], state.shape[2], state.shape[3], state.shape[4]
    mask = ops.reshape(ops.cast(mask, state.dtype), (-1, h * w))  # (B, n)
    per_level = [ops.reshape(state[:, :, :, level], (b, h * w, d)) for level in range(1, levels)]  # (B, n, D)
    terms = []
    for vectors, scale in zip(per_level, scales):
        if scale > 0:
            term = part_island_loss(vectors, mask, scale, temperature)
            if sharpness:
                term = term + sharpness * sharpness_loss(vectors, mask, high)
            terms.append(term)
        else:
            terms.append(object_island_loss(vectors, mask, temperature))
    total = ops.mean(ops.stack(terms))
    if nesting and len(per_level) > 1:
        gaps = [nesting_loss(lower, upper, mask) for lower, upper in zip(per_level[:-1], per_level[1:])]
        total = total + nesting * ops.mean(ops.stack(gaps))
    return total


def denoise_loss(reconstruction, patches, masked):
    """reconstruction, patches (B, h, w, P), masked (B, h, w) -> MSE over the masked patches."""
    reconstruction, patches = ops.cast(reconstruction, "float32"), ops.cast(patches, "float32")
    error = ops.mean(ops.square(reconstruction - patches), axis=-1)  # (B, h, w)
    masked = ops.cast(masked, error.dtype)
    return ops.sum(error * masked) / ops.maximum(ops.sum(masked), 1.0)
