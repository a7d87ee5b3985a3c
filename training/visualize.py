"""Pictures of the part-whole hierarchy: `python -m training.visualize --model M.keras --out DIR`
with `--dataset mnist --index N [--data-dir DIR]` or `--image FILE.png`.

Writes PNG files: input.png; levels.png (each level's column vectors at chosen steps, coloured
by a 3-component PCA fitted per level: one colour = one vector, so islands are patches of one
colour); similarity.png (mean cosine similarity of each cell with its 8 neighbours, per level);
votes.png (each cell's top-level vote, one colour per class); attention.png (the same-level
attention weights of one cell over its 3x3 neighbourhood, per level); curves.png (agreement,
neighbour similarity and island counts over time steps); curves.json.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np

from glom_tf.cli import ArgumentParser, UserError, load_glom_model, run, write_atomic

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


def pca_colours(vectors: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, 3) in [0, 1]: the first three principal components, min-max scaled."""
    centred = vectors - vectors.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = centred @ vt[:3].T
    if comps.shape[1] < 3:
        comps = np.pad(comps, ((0, 0), (0, 3 - comps.shape[1])))
    lo, hi = comps.min(0), comps.max(0)
    return (comps - lo) / np.where(hi - lo > 1e-9, hi - lo, 1.0)


def figures(model, image: np.ndarray, cell: tuple[int, int] | None = None) -> dict:
    """matplotlib figures for one image (S, S, C) in [0, 1]; keys are file stems."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from glom_tf.islands import neighbour_similarity, settling_curves

    batch = image[None].astype(np.float32)
    out = model.unroll(batch, training=False)
    states = np.asarray(out["states"])[:, 0]  # (T+1, h, w, L, D)
    attention = np.asarray(out["attention"])[:, 0]  # (T, h, w, L-1, 9)
    scores = np.asarray(out["scores"])[0]  # (h, w, C)
    steps, g, levels = states.shape[0] - 1, states.shape[1], states.shape[3]
    shown = sorted({0, max(steps // 3, 1), max(2 * steps // 3, 1), steps})
    figs = {}

    fig, ax = plt.subplots(figsize=(3, 3))
    ax.imshow(image[..., 0], cmap="gray")
    ax.set_title("input")
    ax.axis("off")
    figs["input"] = fig

    fig, axes = plt.subplots(levels, len(shown), figsize=(2.2 * len(shown), 2.2 * levels), squeeze=False)
    for level in range(levels):
        colours = pca_colours(states[:, :, :, level].reshape(-1, states.shape[-1]))
        colours = colours.reshape(steps + 1, g, g, 3)
        for j, t in enumerate(shown):
            ax = axes[levels - 1 - level, j]
            ax.imshow(colours[t], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"level {level}" + (" (input)" if level == 0 else ""))
            if level == levels - 1:
                ax.set_title(f"step {t}")
    fig.suptitle("column vectors, PCA colours per level (same colour = same vector)")
    fig.tight_layout()
    figs["levels"] = fig

    sim = neighbour_similarity(states[-1])  # (h, w, L)
    fig, axes = plt.subplots(1, levels, figsize=(2.6 * levels, 2.8), squeeze=False)
    for level in range(levels):
        ax = axes[0, level]
        im = ax.imshow(sim[:, :, level], vmin=-1, vmax=1, cmap="viridis", interpolation="nearest")
        ax.set_title(f"level {level}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="cosine similarity with 8 neighbours")
    fig.suptitle(f"neighbour similarity after step {steps}")
    figs["similarity"] = fig

    votes = scores.argmax(-1)
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    ax.imshow(CLASS_COLOURS[votes % 10], interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    counts = np.bincount(votes.ravel(), minlength=scores.shape[-1])
    ax.set_title(f"top-level votes: {counts.argmax()} ({counts.max() / votes.size:.0%} of cells)")
    handles = [Patch(color=CLASS_COLOURS[c % 10] / 255, label=str(c)) for c in range(scores.shape[-1])]
    ax.legend(handles=handles, bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7, title="class")
    fig.tight_layout()
    figs["votes"] = fig

    cy, cx = cell if cell is not None else (g // 2, g // 2)
    fig, axes = plt.subplots(1, levels - 1, figsize=(2.6 * (levels - 1), 2.8), squeeze=False)
    for level in range(1, levels):
        ax = axes[0, level - 1]
        weights = attention[-1, cy, cx, level - 1].reshape(3, 3)
        ax.imshow(weights, vmin=0, vmax=max(weights.max(), 1 / 9 + 1e-3), cmap="magma")
        for (i, j), w in np.ndenumerate(weights):
            ax.text(j, i, f"{w:.2f}", ha="center", va="center", color="cyan", fontsize=8)
        ax.set_title(f"level {level}")
        ax.set_xticks([0, 1, 2], ["-1", "0", "+1"])
        ax.set_yticks([0, 1, 2], ["-1", "0", "+1"])
    fig.suptitle(f"same-level attention of cell ({cy}, {cx}) over its 3x3 neighbours, step {steps}")
    fig.tight_layout()
    figs["attention"] = fig

    curves = settling_curves(model, batch)
    t = np.arange(steps + 1)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot(t, curves["agreement"], label="all cells")
    axes[0].plot(t, curves["agreement_digit"], label="digit cells")
    axes[0].set(title="top-level agreement", xlabel="time step", ylabel="fraction voting for the answer")
    sim_t, isl_t = np.array(curves["similarity"]), np.array(curves["islands"])
    for level in range(1, levels):
        axes[1].plot(t, sim_t[:, level], label=f"level {level}")
        axes[2].plot(t, isl_t[:, level], label=f"level {level}")
    axes[1].set(title="neighbour similarity", xlabel="time step", ylabel="mean cosine")
    axes[2].set(title=f"islands (similarity > {curves['threshold']})", xlabel="time step", ylabel="count")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    figs["curves"] = fig
    return figs, curves


def render(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def load_image(args, size: int) -> np.ndarray:
    if args.image:
        from glom_tf.images import prepare_image

        return prepare_image(args.image, size)[..., None].astype(np.float32) / 255.0
    from training import data

    arrays = data.load_arrays(args.dataset, args.split, args.data_dir)
    if not 0 <= args.index < len(arrays.labels):
        raise UserError(f"--index {args.index} out of range 0..{len(arrays.labels) - 1}")
    return arrays.images[args.index].astype(np.float32) / 255.0


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m training.visualize", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--image", help="a PNG/JPEG file (prepared as by export.predict)")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--data-dir")
    p.add_argument("--cell", type=int, nargs=2, metavar=("ROW", "COL"), help="cell for the attention plot")
    args = p.parse_args(argv)
    model = load_glom_model(args.model)
    image = load_image(args, model.image_size)
    if args.cell and not all(0 <= c < model.grid for c in args.cell):
        raise UserError(f"--cell must be in 0..{model.grid - 1}")
    figs, curves = figures(model, image, tuple(args.cell) if args.cell else None)
    os.makedirs(args.out, exist_ok=True)
    for name, fig in figs.items():
        path = os.path.join(args.out, f"{name}.png")
        with open(path + ".tmp", "wb") as f:
            f.write(render(fig))
        os.replace(path + ".tmp", path)
    write_atomic(os.path.join(args.out, "curves.json"), json.dumps(curves, indent=1) + "\n")
    print(f"wrote {', '.join(sorted(figs))} (.png) and curves.json to {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
