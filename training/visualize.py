"""Pictures of the part-whole hierarchy: `python -m training.visualize --model M.keras --out DIR`
with `--dataset mnist --index N [--data-dir DIR]` or `--image FILE.png`.

Writes PNG files: input.png; levels.png (each level's column vectors at chosen steps, coloured
by a 3-component PCA fitted per level: one colour = one vector, so islands are patches of one
colour); similarity.png (mean cosine similarity of each cell with its 8 neighbours, per level);
votes.png (each cell's top-level vote, one colour per class); attention.png (the same-level
attention weights of one cell over its (2 radius + 1)^2 neighbourhood, per level); islands.png
(each updated level's islands at chosen steps, one colour per island, the object outlined);
parse.png (the parse tree at the last step); curves.png (agreement, neighbour similarity, island
counts and the largest island's share over time steps); curves.json. Every picture's title
names the image, its true label and the model's answer (red when wrong).
"""

from __future__ import annotations

import io
import json
import os

import numpy as np

from glom_tf.cli import ArgumentParser, UserError, load_glom_model, run, write_atomic
from glom_tf.images import unit_pixels

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


WRONG = "#d62728"  # the colour that marks a wrong answer
# Text sizes for pictures about 500 px wide, readable when TensorBoard scales them to its cards.
FONT = {"font.size": 11, "axes.titlesize": 11, "figure.titlesize": 12, "legend.fontsize": 10.5}


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _class_legend(fig, num_classes: int, ncol: int | None = None, title: str = "cell's vote (class)"):
    """The class colours along the bottom of `fig` (in rows of `ncol`)."""
    from matplotlib.patches import Patch

    handles = [Patch(color=CLASS_COLOURS[c % 10] / 255, label=str(c)) for c in range(num_classes)]
    ncol = ncol or num_classes
    rows = -(-num_classes // ncol)  # matplotlib fills columns first: order the handles so rows read 0 1 2 ...
    handles = [handles[r * ncol + c] for c in range(ncol) for r in range(rows) if r * ncol + c < num_classes]
    fig.legend(
        handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=ncol, title=title,
        handlelength=1.2, columnspacing=0.8, frameon=False,
    )  # fmt: skip


def figure_array(fig) -> np.ndarray:
    """A matplotlib figure as (H, W, 3) uint8 (the figure is closed)."""
    plt = _matplotlib()
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return pixels


def vote_panel(
    model, images: np.ndarray, labels: np.ndarray, title: str = "validation images", columns: int = 2
) -> np.ndarray:
    """A titled panel of images (B, S, S, C) in [0, 1] with their true labels: for each image
    the input and each cell's top-level vote coloured by class, headed "#i  true T, answer A"
    (the model's readout); a wrong answer is headed in bold red with a cross and shaded red.
    A legend of the class colours runs along the bottom. Sized for a TensorBoard image card
    (about 500 px wide with 2 columns). Returns (H, W, 3) uint8."""
    from matplotlib.patches import Rectangle

    from glom_tf.readout import readout

    plt = _matplotlib()
    scores = np.asarray(model(images, training=False))  # (B, h, w, C)
    votes = scores.argmax(-1)  # (B, h, w)
    answers = np.asarray(readout(scores, model.readout)[1])  # (B,)
    b, classes = len(images), scores.shape[-1]
    rows = -(-b // columns)
    # Layout in inches: blocks of (heading, input | votes), the title above, the legend below.
    side, gap, block, margin, head, row_gap, top, bottom = 1.1, 0.06, 2.45, 0.12, 0.3, 0.14, 0.78, 0.75
    width, height = columns * block + 2 * margin, rows * (head + side + row_gap) + top + bottom
    right = 0
    with plt.rc_context(FONT):
        fig = plt.figure(figsize=(width, height))
        for i in range(b):
            x = margin + (i % columns) * block + (block - 2 * side - gap) / 2  # left edge of the pair
            y = height - top - (i // columns + 1) * (head + side + row_gap) + row_gap  # bottom edge
            ok = int(answers[i]) == int(labels[i])
            right += ok
            if not ok:  # shade the pair and its heading
                corner = ((x - 0.08) / width, (y - 0.07) / height)
                size = ((2 * side + gap + 0.16) / width, (side + head + 0.07) / height)
                fig.add_artist(
                    Rectangle(corner, *size, transform=fig.transFigure, color="#f4b6b6", zorder=-1)
                )
            for j, picture in enumerate((images[i][..., 0], CLASS_COLOURS[votes[i] % 10])):
                ax = fig.add_axes(((x + j * (side + gap)) / width, y / height, side / width, side / height))
                ax.imshow(picture, cmap="gray" if j == 0 else None, vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
            text = f"#{i}  true {int(labels[i])}, answer {int(answers[i])}" + ("" if ok else " \u2717")
            style = {"color": "black"} if ok else {"color": WRONG, "fontweight": "bold"}
            xy = ((x + side + gap / 2) / width, (y + side + 0.06) / height)
            fig.text(*xy, text, ha="center", va="bottom", fontsize=12, **style)
        fig.suptitle(
            f"{title}\n{right} of {b} right ({model.readout} readout), wrong shaded red\n"
            "left: input, right: each cell's vote",
            y=1 - 0.06 / height, va="top", fontsize=12.5,
        )  # fmt: skip
        _class_legend(fig, classes, ncol=5)
    return figure_array(fig)


def pca_colours(vectors: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, 3) in [0, 1]: the first three principal components, min-max scaled."""
    centred = vectors - vectors.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = centred @ vt[:3].T
    if comps.shape[1] < 3:
        comps = np.pad(comps, ((0, 0), (0, 3 - comps.shape[1])))
    lo, hi = comps.min(0), comps.max(0)
    return (comps - lo) / np.where(hi - lo > 1e-9, hi - lo, 1.0)


def figures(
    model,
    image: np.ndarray,
    cell: tuple[int, int] | None = None,
    label: int | None = None,
    name: str = "image",
) -> tuple[dict, dict]:
    """matplotlib figures for one image (S, S, C) in [0, 1] and its settling curves; the keys of
    the figures are file stems. Every figure's title names the image (`name`, e.g. "validation
    image #0"), its true `label` when known and the model's answer, in red when wrong."""
    from glom_tf.islands import neighbour_similarity, settling_curves
    from glom_tf.readout import readout

    plt = _matplotlib()
    from matplotlib.ticker import MaxNLocator

    batch = image[None].astype(np.float32)
    out = model.unroll(batch, training=False)
    states = np.asarray(out["states"])[:, 0]  # (T+1, h, w, L, D)
    attention = np.asarray(out["attention"])[:, 0]  # (T, h, w, L-1, K), K = (2 radius + 1)^2
    scores = np.asarray(out["scores"])[0]  # (h, w, C)
    answer = int(np.asarray(readout(out["scores"], model.readout)[1])[0])
    steps, g, levels = states.shape[0] - 1, states.shape[1], states.shape[3]
    shown = sorted({0, max(steps // 3, 1), max(2 * steps // 3, 1), steps})
    wrong = label is not None and int(label) != answer
    which = name + ("" if label is None else f", true {int(label)}") + f", answer {answer}"
    which += " (wrong)" if wrong else ""
    colour = WRONG if wrong else "black"
    figs = {}

    def title(fig, text: str):
        fig.suptitle(f"{which}\n{text}", color=colour)

    with plt.rc_context(FONT):
        fig, ax = plt.subplots(figsize=(3.2, 3.4))
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        ax.set_title(which.replace(", answer", "\nanswer"), color=colour)
        ax.axis("off")
        fig.tight_layout()
        figs["input"] = fig

        fig, axes = plt.subplots(
            levels,
            len(shown) + 1,
            figsize=(1.05 * (len(shown) + 1) + 0.4, 1.05 * levels + 0.9),
            squeeze=False,
        )
        for level in range(levels):
            colours = pca_colours(states[:, :, :, level].reshape(-1, states.shape[-1]))
            colours = colours.reshape(steps + 1, g, g, 3)
            row = levels - 1 - level
            for j, t in enumerate(shown):
                ax = axes[row, j]
                ax.imshow(colours[t], interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if j == 0:
                    ax.set_ylabel(f"level {level}" + (" (input)" if level == 0 else ""))
                if row == 0:
                    ax.set_title(f"step {t}")
            axes[row, -1].axis("off")
        axes[0, -1].imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        axes[0, -1].set_title("input")
        title(fig, "level vectors, PCA colours (one colour = one vector)")
        fig.tight_layout()
        figs["levels"] = fig

        sim = neighbour_similarity(states[-1])  # (h, w, L)
        fig, axes = plt.subplots(
            1,
            levels + 1,
            figsize=(max(1.05 * (levels + 1) + 0.9, 4.6), 2.3),
            squeeze=False,
            layout="constrained",
        )
        axes[0, 0].imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        axes[0, 0].set_title("input")
        axes[0, 0].axis("off")
        for level in range(levels):
            ax = axes[0, level + 1]
            im = ax.imshow(sim[:, :, level], vmin=-1, vmax=1, cmap="viridis", interpolation="nearest")
            ax.set_title(f"level {level}")
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="cosine")
        title(fig, f"cosine of each cell with its 8 neighbours, step {steps}")
        figs["similarity"] = fig

        votes = scores.argmax(-1)
        fig, axes = plt.subplots(1, 2, figsize=(4.6, 3.5))
        axes[0].imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        axes[0].set_title("input")
        axes[1].imshow(CLASS_COLOURS[votes % 10], interpolation="nearest")
        share = float(np.mean(votes == answer))
        axes[1].set_title(f"votes: {share:.0%} for {answer}")
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        title(fig, "each cell's top-level vote")
        fig.tight_layout(rect=(0, 0.2, 1, 1))
        _class_legend(fig, scores.shape[-1], ncol=5)
        figs["votes"] = fig

        cy, cx = cell if cell is not None else (g // 2, g // 2)
        side = int(round(attention.shape[-1] ** 0.5))  # 2 * radius + 1
        offsets = [f"{o:+d}" if o else "0" for o in range(-(side // 2), side // 2 + 1)]
        width = max(1.55 * (levels - 1) + 0.5, 4.8)
        fig, axes = plt.subplots(1, levels - 1, figsize=(width, 2.6), squeeze=False)
        for level in range(1, levels):
            ax = axes[0, level - 1]
            weights = attention[-1, cy, cx, level - 1].reshape(side, side)
            ax.imshow(weights, vmin=0, vmax=1, cmap="magma")
            for (i, j), w in np.ndenumerate(weights):
                ax.text(j, i, f"{w:.2f}", ha="center", va="center", color="black" if w > 0.6 else "white")
            ax.set_title(f"level {level}")
            ax.set_xticks(range(side), offsets)
            ax.set_yticks(range(side), offsets)
        title(fig, f"attention of cell ({cy}, {cx}) over its {side}x{side} neighbours, step {steps}")
        fig.tight_layout()
        figs["attention"] = fig

        figs.update(parse_figures(model, image, states, shown, title))

        curves = settling_curves(model, batch)
        t = np.arange(steps + 1)
        fig, axes = plt.subplots(2, 2, figsize=(5.0, 5.2), sharex=True)
        axes = axes.ravel()
        axes[0].plot(t, curves["agreement"], label="all cells", color="black")
        axes[0].plot(t, curves["agreement_digit"], label="object cells", color="black", linestyle="--")
        axes[0].set(title=f"cells voting for {answer}")
        axes[0].legend(fontsize=9)
        for key, ax, what in (
            ("similarity", axes[1], "8-neighbour cosine"),
            ("islands", axes[2], f"islands (cosine > {curves['threshold']:g})"),
            ("largest", axes[3], "largest island / object"),
        ):
            values = np.array(curves[key], dtype=float)  # (T+1, L)
            for level in range(1, levels):
                ax.plot(t, values[:, level], label=f"level {level}", color=f"C{level - 1}")
            ax.set(title=what)
        for ax in axes[2:]:
            ax.set_xlabel("time step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        title(fig, "settling over time steps")
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        fig.legend(*axes[1].get_legend_handles_labels(), loc="lower center", ncol=levels - 1, frameon=False)
        figs["curves"] = fig
    return figs, curves


def parse_figures(model, image: np.ndarray, states: np.ndarray, shown: list[int], title) -> dict:
    """`islands`: each updated level's islands (one colour per island, the object outlined) at
    the `shown` steps; `parse`: the part-whole tree at the last step, each island of a level
    joined to the island of the level above that covers most of it (glom_tf.islands.parse_tree).
    states (T+1, h, w, L, D)."""
    from glom_tf.islands import island_labels, object_mask, parse_tree

    plt = _matplotlib()
    palette = plt.get_cmap("tab20")
    mask = object_mask(image[None], model.grid)[0]  # (h, w)
    levels = states.shape[3]
    labels = {
        (t, level): island_labels(states[t, :, :, level], mask, model.island_threshold)
        for t in shown
        for level in range(1, levels)
    }

    def paint(lab):
        rgb = np.full(lab.shape + (3,), 0.92)
        for island in range(int(lab.max()) + 1):
            rgb[lab == island] = palette(island % 20)[:3]
        return rgb

    figs = {}
    size = (1.15 * len(shown) + 0.6, 1.2 * (levels - 1) + 0.9)
    fig, axes = plt.subplots(levels - 1, len(shown), figsize=size, squeeze=False)
    for level in range(1, levels):
        row = levels - 1 - level
        for j, t in enumerate(shown):
            ax = axes[row, j]
            lab = labels[(t, level)]
            ax.imshow(paint(lab), interpolation="nearest")
            g = mask.shape[0]  # the outline follows the cells' edges
            fine = np.kron(mask.astype(float), np.ones((8, 8)))
            ax.contour(fine, levels=[0.5], colors="black", linewidths=1.2, origin="upper",
                       extent=(-0.5, g - 0.5, g - 0.5, -0.5))  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"level {level}")
            ax.set_title(
                f"step {t}: {int(lab.max()) + 1}" if row == 0 else f"{int(lab.max()) + 1}", fontsize=9
            )
    title(fig, f"islands (cosine > {model.island_threshold:g}) over the object; count per panel")
    fig.tight_layout()
    figs["islands"] = fig

    final = [labels[(shown[-1], level)] for level in range(1, levels)]
    tree = parse_tree(final)
    fig, ax = plt.subplots(figsize=(5.0, 1.1 * (levels - 1) + 1.0))
    positions = {}
    for row, lab in enumerate(final):  # level row + 1, bottom first
        count = int(lab.max()) + 1
        for island in range(count):
            x = (island + 0.5) / max(count, 1)
            positions[(row, island)] = (x, row)
            size = int((lab == island).sum())
            ax.scatter([x], [row], s=80 + 40 * size, color=palette(island % 20), edgecolor="black", zorder=3)
            ax.text(x, row, str(size), ha="center", va="center", fontsize=8, zorder=4)
    for row, parents in enumerate(tree[:-1]):
        for island, parent in parents.items():
            (x0, y0), (x1, y1) = positions[(row, island)], positions[(row + 1, parent)]
            ax.plot([x0, x1], [y0, y1], color="grey", zorder=1)
    ax.set_yticks(range(levels - 1), [f"level {level}" for level in range(1, levels)])
    ax.set_xticks([])
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, levels - 1.4)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    title(
        fig,
        f"parse tree at step {shown[-1]}: islands (size in cells),\n"
        "each under the island above that covers most of it",
    )
    fig.tight_layout()
    figs["parse"] = fig
    return figs


def render(fig) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def load_image(args, model) -> tuple[np.ndarray, int | None, str]:
    """(image (S, S, C) in [0, 1], its label or None, its name for the figures' titles): an
    image file prepared as by export.predict (grey, repeated over the model's channels), or a
    dataset image as training reads it (`data.make_dataset`); a dataset the model cannot read
    (other classes or channels) is refused."""
    if args.image:
        from glom_tf.images import prepare_image  # PIL, imported when an image file is given

        image = unit_pixels(prepare_image(args.image, model.image_size)[..., None])  # (S, S, 1)
        return np.repeat(image, model.channels, axis=-1), None, os.path.basename(args.image)
    from training import data

    arrays = data.load_arrays(args.dataset, args.split, args.data_dir)
    data.check_fits(arrays, model, args.dataset)
    if not 0 <= args.index < len(arrays.labels):
        raise UserError(f"--index {args.index} out of range 0..{len(arrays.labels) - 1}")
    pick = slice(args.index, args.index + 1)
    one = data.Arrays(arrays.images[pick], arrays.labels[pick], arrays.source, arrays.num_classes)
    image = data.model_images(one, 1, model.image_size)[0]  # (S, S, C) in [0, 1], as in training
    return image, int(arrays.labels[args.index]), f"{args.dataset} {args.split} #{args.index}"


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
    p.add_argument("--overwrite", action="store_true", help="replace figures already in --out")
    args = p.parse_args(argv)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out}: exists and is not a directory")
    model = load_glom_model(args.model)
    image, label, name = load_image(args, model)
    if args.cell and not all(0 <= c < model.grid for c in args.cell):
        raise UserError(f"--cell must be in 0..{model.grid - 1}")
    figs, curves = figures(model, image, tuple(args.cell) if args.cell else None, label, name)
    files = {f"{name}.png": render(fig) for name, fig in figs.items()}
    files["curves.json"] = json.dumps(curves, indent=1) + "\n"
    existing = sorted(n for n in files if os.path.exists(os.path.join(args.out, n)))
    if existing and not args.overwrite:
        raise UserError(f"--out {args.out}: holds {', '.join(existing)}; pass --overwrite to replace them")
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {args.out}: cannot be created ({e.strerror})") from None
    for file_name, content in files.items():
        write_atomic(os.path.join(args.out, file_name), content)
    print(f"wrote {', '.join(sorted(figs))} (.png) and curves.json to {args.out}")
    return 0


if __name__ == "__main__":
    run(main)
