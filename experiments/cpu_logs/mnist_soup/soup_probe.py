"""Held-out accuracy of pretrained/mnist, its continuations and uniform averages of their weights.

The held-out digits are the `mnist` preset's 5,000 (training.fit's seeded split). The models:
pretrained/mnist, its three stage-5 continuations on the lent GPU (experiments/gpu_run.sh
STAGE=5; copied to runs/soup/, not committed) and the CPU continuation runs/mnist_meance_ft
(README, "The mean readout's cross-entropy did not raise the MNIST model either"). A soup is
the element-wise mean of the models' weights: one model of the same size. Run from the
repository root: python experiments/cpu_logs/mnist_soup/soup_probe.py (writes heldout.json here).
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


def main() -> None:
    config = Config.from_dict(json.load(open("pretrained/mnist/config.json")))
    _, held_out = load_data(config, "../shared/data/mnist")
    x, y = held_out.images.astype("float32") / 255.0, held_out.labels
    weights = {k: keras.saving.load_model(p).get_weights() for k, p in NAMES.items()}
    model = build_model(config)

    def accuracy(ws):
        model.set_weights(ws)
        scores = np.concatenate([np.asarray(model(x[i : i + 500])) for i in range(0, len(y), 500)])
        mean = scores.mean((1, 2)).argmax(-1)  # (N, h, w, C) -> (N,)
        votes = scores.argmax(-1).reshape(len(y), -1)  # (N, h*w)
        vote = np.array([np.bincount(v, minlength=10).argmax() for v in votes])
        return float((mean == y).mean()), float((vote == y).mean())

    out = {}
    for combo in [(k,) for k in NAMES] + SOUPS:
        ws = [np.mean([weights[k][i] for k in combo], axis=0) for i in range(len(weights[combo[0]]))]
        mean, vote = accuracy(ws)
        out["+".join(combo)] = {"mean": mean, "vote": vote}
        print("+".join(combo), "mean", mean, "vote", vote, flush=True)
    with open(os.path.join(HERE, "heldout.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
