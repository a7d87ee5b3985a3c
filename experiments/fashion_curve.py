"""Fashion-MNIST's learning curve over training budgets, and what eight more CPU hours would buy.

`python experiments/fashion_curve.py [--out docs/figures/fashion_curve.png --overwrite]` reads the committed
logs of one recipe trained at two budgets on the lent GPU (`fashion64`: the `fashion_mnist` preset
at 64 dims, flips and 2-pixel shifts, batch 128, peak 0.005, cosine over the budget; the same
5,000 held-out training images) and this CPU's measured seconds per epoch of the same network
(`pretrained/mnist`'s stage 3: 64 dims, 8 steps, batch 128, 55,000 images an epoch). It fits
held-out accuracy = a + b * log2(epochs) through the runs' final figures, prints one JSON line
(the points, the fit, the epochs eight CPU hours buy and the accuracy the fit predicts there, and
the epochs the fit needs for 92%) and draws the curve. A straight line in log(epochs) through
two points; learning curves usually bend down, so its prediction at a larger budget is an upper
estimate, not a bound.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = ("stage2/fashion64_lr0.005", "stage1/fashion64")  # one config but the time budget (checked in main)
CPU_EPOCH_SOURCE = "resumable/mnist_s3/metrics.json"
TARGET = 0.92
CPU_HOURS = 8.0


def log_linear_fit(epochs: list[float], accuracy: list[float]) -> tuple[float, float]:
    """Least squares (a, b) of accuracy = a + b * log2(epochs); needs two distinct budgets."""
    xs = [math.log2(e) for e in epochs]
    mx, my = sum(xs) / len(xs), sum(accuracy) / len(accuracy)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0.0:
        raise ValueError("a fit needs at least two distinct budgets")
    b = sum((x - mx) * (y - my) for x, y in zip(xs, accuracy)) / sxx
    return my - b * mx, b


def epochs_for(accuracy: float, a: float, b: float) -> float:
    """The budget at which the fitted line reaches `accuracy` (inf when the line does not rise)."""
    return math.inf if b <= 0 else 2.0 ** ((accuracy - a) / b)


def main() -> int:
    from glom_tf.cli import ArgumentParser, check_out_file, write_atomic

    p = ArgumentParser(prog="python experiments/fashion_curve.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="", help="a .png for the figure (none by default)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = p.parse_args()
    if args.out:
        check_out_file(args.out, args.overwrite, ".png")
    runs = [json.load(open(os.path.join(ROOT, "experiments/gpu_logs", f"{name}.json"))) for name in RUNS]
    fixed = [{k: v for k, v in r["config"].items() if k not in ("epochs",)} for r in runs]
    if any(f != fixed[0] for f in fixed):
        raise RuntimeError("the committed runs' configs differ in more than their budget")
    epochs = [float(r["epochs"]) for r in runs]
    accuracy = [float(r["validation"]["mean_accuracy"]) for r in runs]
    a, b = log_linear_fit(epochs, accuracy)
    cpu = json.load(open(os.path.join(ROOT, CPU_EPOCH_SOURCE)))
    cpu_epoch_s = cpu["train_seconds"] / cpu["epochs"]
    more = CPU_HOURS * 3600.0 / cpu_epoch_s
    budgets = {"8 CPU hours from scratch": more, "the GPU's 23.5 epochs plus 8 CPU hours": max(epochs) + more}
    need = epochs_for(TARGET, a, b)
    result = {
        "points": [{"run": n, "epochs": e, "heldout_mean": y} for n, e, y in zip(RUNS, epochs, accuracy)],
        "fit": {"a": round(a, 4), "b_per_doubling": round(b, 4)},
        "cpu_seconds_per_epoch": round(cpu_epoch_s, 1),
        "predicted": {
            k: {"epochs": round(v, 1), "heldout": round(a + b * math.log2(v), 4)} for k, v in budgets.items()
        },
        "epochs_for_92": round(need, 1),
        "cpu_hours_for_92": round(need * cpu_epoch_s / 3600.0, 1),
    }
    print(json.dumps(result))
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        xs = [2.0 ** (i / 8) for i in range(0, 8 * 8 + 1)]
        ax.plot(xs, [100 * (a + b * math.log2(x)) for x in xs], "--", color="gray", label="log-linear fit")
        ax.plot(epochs, [100 * y for y in accuracy], "o", color="C0", label="fashion64 (GPU), held-out")
        for color, (name, v) in zip(("C1", "C2"), budgets.items()):
            label = f"fit at {name}: {v:.0f} epochs"
            ax.plot([v], [100 * (a + b * math.log2(v))], "s", color=color, label=label)
        ax.axhline(100 * TARGET, color="C3", lw=1, label="target 92%")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("epochs of 55,000 images (cosine over the budget)")
        ax.set_ylabel("held-out accuracy, mean readout (%)")
        ax.set_title("Fashion-MNIST: accuracy against training budget")
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=110)
        write_atomic(args.out, png.getvalue())
    return 0


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    from glom_tf.cli import run

    run(main)
