"""Island figures of a trained run on its held-out validation digits (for selection) or, for a
final figure only, on the first official test digits.

`python experiments/islands.py --workdir runs/x [--data-dir ../shared/data/mnist] [--images 500]
[--split validation|test]` (or `--model M.keras --split test`; `--workdir` with `--model`: that
model on the run's split, e.g. the run's model after it was moved) prints one JSON line: the run's
validation accuracy and, per level (0 = the input) at the final time step,
the island count over the object's cells, the largest island's share, the neighbour cosine,
the mean cosine between island means, the distinctness and the nesting in the level above
(glom_tf/islands.py). The validation split is rebuilt from `--data-dir` as training split it,
and refused unless it is the run's own (the fingerprint in its data.json).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def final_island_figures(model, images) -> dict:
    """Per-level island figures (glom_tf/islands.py) of `images` (N, S, S, C) in [0, 1], as the
    model reads them (`training.data.model_images`), at the final step and the model's island
    threshold, rounded to 3 decimals."""
    import numpy as np

    from glom_tf.islands import level_figures, object_mask

    states = []
    for start in range(0, len(images), 100):
        out = model.unroll(images[start : start + 100], training=False, record=False)
        states.append(np.asarray(out["state"]))  # (100, h, w, L, D)
    figures = level_figures(np.concatenate(states), object_mask(images, model.grid), model.island_threshold)
    return {k: [None if v is None else round(v, 3) for v in vs] for k, vs in figures.items()}


def main() -> int:
    from glom_tf.cli import ArgumentParser, UserError, load_glom_model
    from glom_tf.config import Config
    from training import data
    from training.train import Paths, held_out, read_json

    p = ArgumentParser(prog="python experiments/islands.py", description=__doc__.splitlines()[0])
    p.add_argument("--workdir")
    p.add_argument(
        "--model", help="a .keras file: with --split test alone, or with --workdir instead of its model.keras"
    )
    p.add_argument("--data-dir")
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--split", default="validation", choices=["validation", "test"])
    args = p.parse_args()
    if not args.workdir and not args.model:
        p.error("pass --workdir (a training.fit run) or --model M.keras with --split test")
    if not args.workdir and args.split != "test":
        p.error("--model without --workdir needs --split test (the validation split is the run's)")
    if args.images < 1:
        p.error(f"--images must be >= 1, got {args.images}")
    metrics = {}
    if args.workdir:
        for name in ("config.json", "metrics.json"):
            if not os.path.isfile(os.path.join(args.workdir, name)):
                raise UserError(f"--workdir {args.workdir}: no {name} (not a finished training.fit run)")
        paths = Paths(args.workdir)
        config = Config.from_dict(read_json(paths.config))
        metrics = read_json(paths.metrics)
    model = load_glom_model(args.model or os.path.join(args.workdir, "model.keras"))
    if args.split == "test":
        dataset = config.dataset if args.workdir else "mnist"  # a model alone: MNIST (docs/figures)
        arrays = data.load_arrays(dataset, "test", args.data_dir)
        data.check_fits(arrays, model, dataset)
    else:
        _, arrays = held_out(args.workdir, args.data_dir)  # the run's own held-out images
    rounded = final_island_figures(model, data.model_images(arrays, args.images, model.image_size))
    print(
        json.dumps(
            {
                "workdir": args.workdir,
                "model": args.model,
                "split": args.split,
                "images": len(arrays.images[: args.images]),
                "val_accuracy": metrics.get("accuracy", metrics.get("accuracy_mean")),
                "train_seconds": metrics.get("train_seconds"),
                "parameters": metrics.get("parameters"),
                **rounded,
            }
        )
    )
    return 0


if __name__ == "__main__":
    from glom_tf.cli import run

    run(main)
