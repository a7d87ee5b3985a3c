"""Fine-tune a trained model with config changes (e.g. the island objective) for a few steps and
print its held-out accuracy and island figures, before (`--steps 0`) or after.

`python experiments/finetune_islands.py --model pretrained/mnist/model.keras --steps 300
--set island_weight=3.0 --set island_scales=3,3,0 --set island_sharpness=1.0
--set learning_rate=0.001 --data-dir ../shared/data/mnist [--out M.keras [--overwrite]]`

The run's config (`config.json` beside the model) with the changes applied builds a new model
of the same weights (the island and denoising terms add none), which trains from the trained
weights with a fresh optimizer on the config's schedule stretched over `--steps` steps, on the
run's own training split. Figures on the run's held-out validation digits (never the test
split): accuracy (mean readout) on all of them, islands (glom_tf/islands.py) on the first 500
at the final step. One JSON line per figure set.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def figures(model, config, validation, tag: str) -> None:
    """One JSON line: held-out accuracy (mean readout) and the final step's island figures."""
    from experiments.islands import final_island_figures
    from training import data
    from training.metrics import readout_figures

    dataset = data.make_dataset(validation, 100, config.image_size)
    accuracy = readout_figures(model, dataset, config.num_classes)["accuracy_mean"]
    islands = final_island_figures(model, data.model_images(validation, 500, config.image_size))
    print(json.dumps({"tag": tag, "val_acc": accuracy, **islands}), flush=True)


def main() -> int:
    from glom_tf.cli import (
        ArgumentParser,
        UserError,
        check_out_file,
        load_glom_model,
        parse_assignments,
        save_model_atomic,
    )
    from glom_tf.config import Config
    from glom_tf.model import build_model
    from training import data
    from training.recipe import compile_model
    from training.train import load_data

    p = ArgumentParser(prog="python experiments/finetune_islands.py", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a .keras file with its run's config.json beside it")
    p.add_argument("--steps", type=int, default=300, help="0: the figures of the model as it is")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data-dir", required=True, help="the IDX files of the model's dataset")
    p.add_argument("--out", help="save the fine-tuned model here (a new .keras file)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = p.parse_args()
    if args.steps < 0:
        p.error(f"--steps must be >= 0, got {args.steps}")
    if args.out:
        if not args.out.endswith(".keras"):
            raise UserError(f"--out {args.out}: name a .keras file")
        check_out_file(args.out, args.overwrite, ".keras", source=args.model)
    config_path = os.path.join(os.path.dirname(args.model), "config.json")
    if not os.path.isfile(config_path):
        raise UserError(f"--model {args.model}: no config.json beside it (the run's config)")
    with open(config_path) as f:
        config = Config.from_dict(json.load(f))
    tuned = parse_assignments(config.with_overrides(epochs=1), args.set)  # bad --set: before any work
    trained = load_glom_model(args.model)
    train, validation = load_data(config, args.data_dir)
    if args.steps == 0:
        figures(trained, config, validation, "as trained")
        return 0
    model = build_model(tuned)
    old, new = trained.get_weights(), model.get_weights()
    if [w.shape for w in old] != [w.shape for w in new]:
        raise UserError("the changes alter the model's weights; only weightless terms can be added")
    model.set_weights(old)
    compile_model(model, tuned, args.steps, True)  # the schedule spans the --steps steps
    dataset = data.make_dataset(train, tuned.batch_size, tuned.image_size, True, tuned, tuned.seed)
    start = time.time()
    history = model.fit(dataset.take(args.steps), epochs=1, verbose=0)
    logs = {k: round(float(v[-1]), 4) for k, v in history.history.items()}
    print(json.dumps({"train": logs, "seconds": round(time.time() - start)}), flush=True)
    figures(model, tuned, validation, " ".join(args.set))
    if args.out:
        save_model_atomic(model, args.out)
    return 0


if __name__ == "__main__":
    from glom_tf.cli import run

    run(main)
