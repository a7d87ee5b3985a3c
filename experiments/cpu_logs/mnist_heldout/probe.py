"""Held-out checks on pretrained/mnist: weight averages of its continuations, and more time steps.

The held-out digits are the `mnist` preset's 5,000 (training.fit's seeded split, load_data),
scored by training.metrics.readout_figures (as training.evaluate does). The models:
pretrained/mnist, its three stage-5 continuations on the lent GPU (experiments/gpu_run.sh
STAGE=5; copied to runs/soup/, not committed) and the CPU continuation runs/mnist_meance_ft
(docs/results.md, "The mean readout's cross-entropy did not raise the MNIST model either"). A soup is
the element-wise mean of the models' weights: one model of the same size. "steps=T" runs
pretrained/mnist's weights for T time steps at inference instead of its trained 8.
Run from the repository root: python experiments/cpu_logs/mnist_heldout/probe.py
(writes heldout.json beside this file).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from glom_tf.config import Config  # noqa: E402
from glom_tf.model import build_model  # noqa: E402
from training import data  # noqa: E402
from training.metrics import readout_figures  # noqa: E402
from training.train import load_data  # noqa: E402

NAMES = {
    "shipped": "pretrained/mnist/model.keras",
    "ce": "runs/soup/mnist_ft_ce.keras",
    "ce2": "runs/soup/mnist_ft_ce2.keras",
    "meance_gpu": "runs/soup/mnist_ft_meance.keras",
    "meance_cpu": "runs/mnist_meance_ft/model.keras",
}
SOUPS = [
    ("ce", "ce2", "meance_gpu"),
    ("ce", "ce2", "meance_gpu", "meance_cpu"),
    ("shipped", "ce", "ce2", "meance_gpu", "meance_cpu"),
    ("ce", "meance_gpu"),
]
STEPS = (9, 10, 12)


def main() -> None:
    config = Config.from_dict(json.load(open("pretrained/mnist/config.json")))
    _, held_out = load_data(config, "../shared/data/mnist")
    dataset = data.make_dataset(held_out, 500, config.image_size)
    weights = {k: keras.saving.load_model(p).get_weights() for k, p in NAMES.items()}
    out = {}

    def record(name, model):
        figures = readout_figures(model, dataset, held_out.num_classes)
        out[name] = {"vote": figures["accuracy_vote"], "mean": figures["accuracy_mean"]}
        print(name, out[name], flush=True)

    model = build_model(config)
    for combo in [(k,) for k in NAMES] + SOUPS:
        members = [weights[k] for k in combo]
        model.set_weights([np.mean(layer, axis=0) for layer in zip(*members)])  # element-wise mean
        record("+".join(combo), model)
    for steps in STEPS:
        model = build_model(config.with_overrides(steps=steps))
        model.set_weights(weights["shipped"])
        record(f"shipped steps={steps}", model)
    with open(os.path.join(HERE, "heldout.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
