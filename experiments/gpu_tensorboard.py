"""TensorBoard runs from experiments/gpu_fit.py's summaries, to compare them beside training.fit's.

gpu_fit runs where TensorFlow is missing, so it logs JSON; this writes, for each NAME.json,
LOGDIR/NAME/train and LOGDIR/NAME/validation in the layout of training.fit's TensorBoardLogger
(epoch_<metric> at step = epoch - 1, epoch_learning_rate, the HParams session with every config
field, the trial named NAME):

    python experiments/gpu_tensorboard.py --logdir experiments/gpu_logs/tensorboard \
        experiments/gpu_logs/stage*/*.json pretrained/mnist/stage*.json
    tensorboard --logdir experiments/gpu_logs/tensorboard
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from glom_tf.cli import ArgumentParser, UserError, run  # noqa: E402


def run_name(path: str) -> str:
    """pretrained/mnist/stage1.json -> mnist_stage1; experiments/gpu_logs/stage1/x.json -> stage1_x."""
    parent, stem = os.path.basename(os.path.dirname(path)), os.path.splitext(os.path.basename(path))[0]
    return f"{parent}_{stem}"


def write_run(summary: dict, logdir: str, name: str) -> None:
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    from glom_tf.config import Config
    from training.callbacks import LOG_DESCRIPTIONS, SPLITS, hparam_values

    config = Config.from_dict(summary["config"])
    writers = {split: tf.summary.create_file_writer(os.path.join(logdir, name, split)) for split in SPLITS}
    described = set()
    for row in summary["history"]:
        step = row["epoch"] - 1
        for key, value in row.items():
            split, _, metric = key.partition("_")
            if split not in ("train", "val") or metric not in LOG_DESCRIPTIONS:
                continue
            run_split = "train" if split == "train" else "validation"
            tag = f"epoch_{metric}"
            first = (run_split, tag) not in described
            described.add((run_split, tag))
            text = f"{LOG_DESCRIPTIONS[metric]} {SPLITS[run_split]}" if first else None
            with writers[run_split].as_default():
                tf.summary.scalar(tag, value, step=step, description=text)
        with writers["train"].as_default():
            first = ("train", "epoch_learning_rate") not in described
            described.add(("train", "epoch_learning_rate"))
            text = "Learning rate of the epoch's last chunk (gpu_fit: a cosine over wall-clock time)."
            tf.summary.scalar(
                "epoch_learning_rate", row["lr"], step=step, description=text if first else None
            )
    with writers["validation"].as_default():
        hp.hparams(hparam_values(config), trial_id=name)
    for writer in writers.values():
        writer.flush()


def main(argv=None) -> int:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logdir", required=True)
    p.add_argument("summaries", nargs="+", help="NAME.json files written by gpu_fit.py")
    args = p.parse_args(argv)
    loaded = []
    for path in args.summaries:  # all read and checked before anything is written
        try:
            with open(path) as f:
                summary = json.load(f)
        except ValueError:
            raise UserError(f"{path}: not JSON") from None
        if not isinstance(summary, dict) or not {"config", "history"} <= set(summary):
            raise UserError(f"{path}: not a gpu_fit summary (needs config and history)")
        target = os.path.join(args.logdir, run_name(path))
        if os.path.exists(target):
            raise UserError(f"{target}: exists; remove it or use another --logdir")
        loaded.append((path, summary))
    for path, summary in loaded:
        name = run_name(path)
        write_run(summary, args.logdir, name)
        print(f"{path} -> {os.path.join(args.logdir, name)}")
    return 0


if __name__ == "__main__":
    run(main)
