"""Evaluate a trained model: `python -m training.evaluate --model M.keras --dataset mnist --split test`.

`--split validation` reads the images the model's run held out of the training split (for
choosing between models without the test split): the run's workdir (the model's directory, or
`--run DIR`) names the dataset, the number held out and the seed of the split.

Prints JSON on stdout: accuracy for both readouts, per-class accuracy, the confusion matrix,
mean agreement, number of images and seconds, and the islands curves; a summary goes to
stderr. Writes a file only with `--out FILE` (an existing file only with --overwrite).
"""

from __future__ import annotations

import json
import os
import sys

from glom_tf.cli import (
    ArgumentParser,
    UserError,
    check_out_file,
    load_glom_model,
    run,
    write_atomic,
)

ISLAND_IMAGES = 100  # images for the per-step island and agreement curves


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m training.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a .keras file written by training.fit")
    p.add_argument("--dataset", help="mnist (the default), fashion_mnist, ...; --split validation: the run's")
    p.add_argument("--split", default="test", choices=["train", "test", "validation"])
    p.add_argument(
        "--run", help="--split validation: the model's training.fit workdir (default: its directory)"
    )
    p.add_argument("--data-dir", help="directory holding the four IDX files")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N images only (0: all)")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--out", help="also write the JSON to this file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p.parse_args(argv)


def check_args(args) -> None:
    """Refuses bad numbers and an --out that cannot be written, before any work."""
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.limit < 0:
        raise UserError(f"--limit must be >= 0 (0: every image), got {args.limit}")
    if args.run and args.split != "validation":
        raise UserError("--run names the run whose held-out images --split validation reads")
    if args.out:
        check_out_file(args.out, args.overwrite, ".json", source=args.model)


def evaluate(
    model_path: str,
    dataset: str | None,
    split: str,
    data_dir=None,
    limit: int = 0,
    batch_size: int = 250,
    run_dir: str | None = None,
):
    """Readout figures of the model at `model_path` on a dataset split (train, test, or the
    validation images its run held out: `run_dir`, or the model's directory).
    `dataset` None: mnist, or for the validation split the run's."""
    if batch_size < 1 or limit < 0:
        raise UserError(f"batch_size must be >= 1 and limit >= 0, got {batch_size} and {limit}")
    model = load_glom_model(model_path)  # a missing or foreign file fails before the data is read
    from training import data

    if split == "validation":
        from training.train import held_out

        run_dir = run_dir or os.path.dirname(model_path)
        config, arrays = held_out(run_dir, data_dir)
        if dataset and dataset != config.dataset:
            raise UserError(
                f"--split validation: {run_dir} is a run on {config.dataset}, not --dataset {dataset}"
            )
        dataset = config.dataset
    else:
        dataset = dataset or "mnist"
        arrays = data.load_arrays(dataset, split, data_dir)
    data.check_fits(arrays, model, dataset)
    if limit:
        arrays = data.Arrays(arrays.images[:limit], arrays.labels[:limit], arrays.source, arrays.num_classes)
    from glom_tf.islands import settling_curves
    from training.metrics import readout_figures

    ds = data.make_dataset(arrays, batch_size, model.image_size)
    figures = readout_figures(model, ds, arrays.num_classes)
    # Islands and settling over time steps, on the first images (the curves are per step).
    sample = data.model_images(arrays, ISLAND_IMAGES, model.image_size)  # (N, S, S, C) in [0, 1]
    figures["islands"] = settling_curves(model, sample)
    figures["islands"]["images"] = int(len(sample))
    figures.update({"model": model_path, "dataset": dataset, "split": split, "source": arrays.source})
    return figures


def main(argv=None) -> int:
    args = parse_args(argv)
    check_args(args)
    figures = evaluate(
        args.model, args.dataset, args.split, args.data_dir, args.limit, args.batch_size, args.run
    )
    text = json.dumps(figures, indent=2) + "\n"
    if args.out:
        write_atomic(args.out, text)
    sys.stdout.write(text)
    curves = figures["islands"]
    print(
        f"accuracy {figures['accuracy_vote']:.4f} (vote) {figures['accuracy_mean']:.4f} (mean) on "
        f"{figures['images']} images; agreement by time step (digit cells): "
        + " ".join(f"{a:.3f}" for a in curves["agreement_digit"])
        + "; top-level neighbour similarity: "
        + " ".join(f"{s[-1]:.2f}" for s in curves["similarity"])
        + (f"; wrote {args.out}" if args.out else ""),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    run(main)
