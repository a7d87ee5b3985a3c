"""Train a GLOM model: `python -m training.fit [--preset default] [--workdir runs/default]`.

Flags override the preset; `--set key=value` (repeatable) sets any config field.
Rerunning with the same workdir resumes from the last finished epoch.
"""

from __future__ import annotations

import sys

from glom_tf.cli import EXIT_DIVERGED, ArgumentParser, parse_assignments, run
from glom_tf.presets import presets
from training.train import STRATEGIES


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m training.fit", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="default", help=", ".join(presets()))
    p.add_argument("--dataset", help="mnist, fashion_mnist, or a tensorflow-datasets name")
    p.add_argument("--data-dir", help="directory holding the four IDX files (mnist, fashion_mnist)")
    p.add_argument("--workdir", help="output directory (default runs/<preset>)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--strategy", default="default", choices=STRATEGIES)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config field")
    p.add_argument(
        "--deterministic", action="store_true", help="TF op determinism (Keras then runs without XLA)"
    )
    p.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    return p.parse_args(argv)


def resolve_config(args):
    from glom_tf.presets import get_preset

    config = get_preset(args.preset)
    flags = {
        "dataset": args.dataset,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
    }
    config = config.with_overrides(**{k: v for k, v in flags.items() if v is not None})
    return parse_assignments(config, args.set)


def main(argv=None) -> int:
    args = parse_args(argv)
    config = resolve_config(args)
    from training.train import Diverged, fit

    workdir = f"runs/{args.preset}" if args.workdir is None else args.workdir
    try:
        metrics = fit(
            config,
            workdir,
            args.data_dir,
            args.strategy,
            verbose=2 if args.quiet else "auto",
            deterministic=args.deterministic,
        )
    except Diverged as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    print(
        f"validation accuracy {metrics['accuracy_vote']:.4f} (vote) {metrics['accuracy_mean']:.4f} (mean), "
        f"agreement {metrics['agreement']:.3f}, {metrics['images']} images; "
        f"model: {workdir}/model.keras; TensorBoard: tensorboard --logdir {workdir}/tensorboard"
    )
    return 0


if __name__ == "__main__":
    run(main)
