"""Fashion-MNIST's learning curve over training budgets, and what eight more CPU hours would buy.

`python experiments/fashion_curve.py [--out docs/figures/fashion_curve.png --overwrite]` reads the committed
logs of one recipe trained at three budgets (`fashion64`: the `fashion_mnist` preset's
networks with tanh, 64 dims, flips and 2-pixel shifts, batch 128, peak 0.005, cosine over the
budget; the same 5,000 held-out training images): 8 and 23.5 epochs on the lent GPU
(`experiments/gpu_logs/`, JAX) and 2 epochs on this CPU (`experiments/cpu_logs/fashion64_e2/`,
`training.fit`), and this CPU's measured seconds per epoch of the same network
(`pretrained/mnist`'s stage 3: 64 dims, 8 steps, batch 128, 55,000 images an epoch).
It prints one JSON line and draws the curve:

- the gain per doubling of the budget between neighbouring budgets (falling: the curve bends down
  in log(epochs));
- the straight line in log(epochs) through the two largest budgets: with falling gains, an upper
  estimate of what a larger budget buys (the epochs eight CPU hours buy, the accuracy there, and
  the epochs it needs for 92%);
- the saturating curve accuracy = A - B * epochs^(-c) through all three: its ceiling A and its
  accuracy at the same budgets.

It also reads the same recipe with GELU networks (`--set activation=gelu`: the config differs in
that field alone, checked) at the budgets measured (2 and 20 epochs, this CPU), prints the gain
over the tanh recipe at each (over the tanh run where one was trained for the same epochs, else
over the tanh curve's saturating fit there), and what the GELU recipe's longest run plus eight CPU
hours (at its last sitting's seconds per epoch) would buy, three ways:

- the straight line through the two GELU budgets (an upper estimate while gains fall);
- tanh's last gain per doubling (8 to 23.5 epochs) carried on from the longest GELU run;
- tanh's saturating curve moved up by GELU's gain at the longest GELU run (its ceiling too).

Last, the longest GELU run's warm restarts against what those three said for their budgets: the
20-epoch weights trained on to 40 epochs of a 40-epoch cosine (`resumable/fashion64_gelu40`), and
those 40-epoch weights trained on to 72 epochs of a 72-epoch cosine (`resumable/fashion64_gelu72`);
their configs and metrics are in `experiments/cpu_logs/`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# one config but the time budget (checked in main): a GPU summary (.json) or a training.fit workdir's files
RUNS = ("gpu_logs/stage2/fashion64_lr0.005.json", "gpu_logs/stage1/fashion64.json", "cpu_logs/fashion64_e2")
# the same recipe with activation=gelu (a workdir's config.json and metrics.json)
GELU_RUNS = ("cpu_logs/fashion64_gelu_e2", "cpu_logs/fashion64_gelu")
# the longest GELU run continued from its last checkpoint on a longer cosine, then that one again:
# warm restarts (the rate restarts mid-schedule), each from the one before, so not budgets of the
# curves above, whose cosines ran from scratch
WARM_RESTARTS = ("cpu_logs/fashion64_gelu40", "cpu_logs/fashion64_gelu72")
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


def saturating_fit(epochs: list[float], accuracy: list[float]) -> tuple[float, float, float]:
    """(A, B, c) of accuracy = A - B * epochs^(-c), c > 0, through three points (exactly).

    The three budgets must rise and the gain per doubling must fall between them (a curve that
    bends down in log(epochs)); otherwise no such curve exists and this raises ValueError."""
    (e1, e2, e3), (y1, y2, y3) = epochs, accuracy
    if not (e1 < e2 < e3 and y1 < y2 < y3):
        raise ValueError("a saturating fit needs three rising budgets with rising accuracy")
    want = (y2 - y1) / (y3 - y2)
    if want <= math.log(e2 / e1) / math.log(e3 / e2):  # the ratio as c -> 0: a straight line
        raise ValueError("the gains per doubling do not fall: no saturating curve through the points")

    def ratio(c: float) -> float:  # rises from the straight line's ratio (c -> 0) without bound
        return (e1**-c - e2**-c) / (e2**-c - e3**-c)

    lo, hi = 1e-9, 1.0
    while ratio(hi) < want:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ratio(mid) < want else (lo, mid)
    c = 0.5 * (lo + hi)
    b = (y2 - y1) / (e1**-c - e2**-c)
    return y1 + b * e1**-c, b, c


def epochs_for(accuracy: float, a: float, b: float) -> float:
    """The budget at which the fitted line reaches `accuracy` (inf when the line does not rise)."""
    return math.inf if b <= 0 else 2.0 ** ((accuracy - a) / b)


def load_run(path: str) -> tuple[dict, float, float]:
    """(config, epochs, held-out mean accuracy) of a GPU summary or a training.fit workdir's logs."""
    if path.endswith(".json"):
        with open(path) as f:
            run = json.load(f)
        return run["config"], float(run["epochs"]), float(run["validation"]["mean_accuracy"])
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(path, "metrics.json")) as f:
        metrics = json.load(f)
    return config, float(metrics["epochs"]), float(metrics["accuracy_mean"])


def seconds_per_epoch(path: str) -> float:
    """A training.fit workdir's seconds per epoch of its last sitting (metrics.json)."""
    with open(os.path.join(path, "metrics.json")) as f:
        metrics = json.load(f)
    return metrics["train_examples"] / metrics["train_images_per_second"]


def budget_free(config: dict) -> dict:
    """A config without its budget, a field it lacks (logged before the field existed) at its default."""
    from glom_tf.config import Config

    full = {**dataclasses.asdict(Config()), **config}
    return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in full.items() if k != "epochs"}


def main() -> int:
    from glom_tf.cli import ArgumentParser, check_out_file, write_atomic

    p = ArgumentParser(prog="python experiments/fashion_curve.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="", help="a .png for the figure (none by default)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = p.parse_args()
    if args.out:
        check_out_file(args.out, args.overwrite, ".png")
    runs = [load_run(os.path.join(ROOT, "experiments", name)) for name in RUNS]
    fixed = [budget_free(config) for config, _, _ in runs]
    if any(f != fixed[0] for f in fixed):
        raise RuntimeError("the committed runs' configs differ in more than their budget")
    gelu = sorted(
        (load_run(os.path.join(ROOT, "experiments", name)) for name in GELU_RUNS), key=lambda r: r[1]
    )
    warm = [load_run(os.path.join(ROOT, "experiments", name)) for name in WARM_RESTARTS]
    if any({**budget_free(config), "activation": "tanh"} != fixed[0] for config, _, _ in [*gelu, *warm]):
        raise RuntimeError("the GELU runs' configs differ from the tanh runs' in more than activation")
    order = sorted(range(len(runs)), key=lambda i: runs[i][1])
    names = [RUNS[i] for i in order]
    epochs = [runs[i][1] for i in order]
    accuracy = [runs[i][2] for i in order]
    gains = [
        (y2 - y1) / math.log2(e2 / e1) for e1, e2, y1, y2 in zip(epochs, epochs[1:], accuracy, accuracy[1:])
    ]
    a, b = log_linear_fit(epochs[-2:], accuracy[-2:])  # the line through the two largest budgets
    big, bb, c = saturating_fit(epochs, accuracy)
    cpu = json.load(open(os.path.join(ROOT, CPU_EPOCH_SOURCE)))
    cpu_epoch_s = cpu["train_seconds"] / cpu["epochs"]
    more = CPU_HOURS * 3600.0 / cpu_epoch_s
    budgets = {"8 CPU hours from scratch": more, "the longest run plus 8 CPU hours": max(epochs) + more}
    need = epochs_for(TARGET, a, b)
    result = {
        "points": [{"run": n, "epochs": e, "heldout_mean": y} for n, e, y in zip(names, epochs, accuracy)],
        "gain_per_doubling": [round(g, 4) for g in gains],
        "line": {"a": round(a, 4), "b_per_doubling": round(b, 4)},
        "saturating": {"ceiling": round(big, 4), "b": round(bb, 4), "c": round(c, 4)},
        "cpu_seconds_per_epoch": round(cpu_epoch_s, 1),
        "predicted": {
            k: {
                "epochs": round(v, 1),
                "line": round(a + b * math.log2(v), 4),
                "saturating": round(big - bb * v**-c, 4),
            }
            for k, v in budgets.items()
        },
        "line_epochs_for_92": round(need, 1),
        "line_cpu_hours_for_92": round(need * cpu_epoch_s / 3600.0, 1),
    }
    sat_at = lambda e: big - bb * e**-c  # noqa: E731  (the tanh curve's saturating fit)
    result["gelu"] = [
        {"epochs": e, "heldout_mean": y, "gain_over_tanh": round(y - dict(zip(epochs, accuracy))[e], 4)}
        if e in epochs
        else {"epochs": e, "heldout_mean": y, "gain_over_tanh_curve": round(y - sat_at(e), 4)}
        for _, e, y in gelu
    ]
    gelu_curves = {}
    if len(gelu) >= 2:
        (_, ge1, gy1), (_, ge2, gy2) = gelu[-2], gelu[-1]
        ga, gb = log_linear_fit([ge1, ge2], [gy1, gy2])
        shift = gy2 - sat_at(ge2)  # GELU's gain over the tanh curve at its longest run
        gelu_s = seconds_per_epoch(os.path.join(ROOT, "experiments", GELU_RUNS[-1]))
        v = ge2 + CPU_HOURS * 3600.0 / gelu_s
        gelu_curves = {
            "gelu line": lambda e: ga + gb * math.log2(e),
            "tanh's last gain per doubling": lambda e: gy2 + b * math.log2(e / ge2),
            "tanh's saturating curve moved up": lambda e: sat_at(e) + shift,
        }
        room = big + shift - TARGET  # how far the moved curve's ceiling is above the target
        result["gelu_predicted"] = {
            "cpu_seconds_per_epoch": round(gelu_s, 1),
            "line": {"a": round(ga, 4), "b_per_doubling": round(gb, 4)},
            "moved_up_ceiling": round(big + shift, 4),
            "epochs": round(v, 1),
            "at_epochs": {k: round(f(v), 4) for k, f in gelu_curves.items()},
            "epochs_for_92": {
                "gelu line": round(epochs_for(TARGET, ga, gb), 1),
                "tanh's last gain per doubling": round(ge2 * 2.0 ** ((TARGET - gy2) / b), 1),
                "tanh's saturating curve moved up": round((bb / room) ** (1.0 / c), 1)
                if room > 0
                else math.inf,
            },
        }
    if gelu_curves:  # each warm restart against what the GELU curves said for its budget
        starts = [gelu[-1], *warm[:-1]]  # each continues the run before it
        result["gelu_warm_restarts"] = [
            {
                "run": name,
                "from_epochs": se,
                "epochs": we,
                "heldout_mean": wy,
                "gain_over_start": round(wy - sy, 4),
                "predicted": {k: round(f(we), 4) for k, f in gelu_curves.items()},
            }
            for name, (_, se, sy), (_, we, wy) in zip(WARM_RESTARTS, starts, warm)
        ]
    print(json.dumps(result))
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9.6, 4.4))
        xs = [2.0 ** (i / 8) for i in range(0, 8 * 8 + 1)]
        ax.plot(
            xs,
            [100 * (a + b * math.log2(x)) for x in xs],
            "--",
            color="gray",
            label="tanh: line through the two largest",
        )
        sat = [100 * (big - bb * x**-c) for x in xs]
        ax.plot(
            xs,
            sat,
            ":",
            color="black",
            label=f"tanh: A - B epochs^-c through all three (ceiling {100 * big:.1f}%)",
        )
        for where, marker in (("gpu", "o"), ("cpu", "D")):
            mine = [(e, y) for n, e, y in zip(names, epochs, accuracy) if n.startswith(where)]
            label = f"fashion64 ({where.upper()}), held-out"
            ax.plot([e for e, _ in mine], [100 * y for _, y in mine], marker, color="C0", label=label)
        label = "fashion64 with GELU networks (CPU), held-out"
        ax.plot([e for _, e, _ in gelu], [100 * y for _, _, y in gelu], "^", color="C4", label=label)
        to = " then ".join(f"{we:.0f}" for _, we, _ in warm)
        label = f"GELU, the {gelu[-1][1]:.0f}-epoch run warm-restarted to {to} (CPU), held-out"
        ax.plot(
            [we for _, we, _ in warm], [100 * wy for _, _, wy in warm], "*", ms=11, color="C4", label=label
        )
        for style, (name, f) in zip(("--", ":", "-."), gelu_curves.items()):
            gx = [x for x in xs if x >= 2.0]
            ax.plot(gx, [100 * f(x) for x in gx], style, color="C4", lw=1, label=f"GELU: {name}")
        for color, (name, v) in zip(("C1", "C2"), budgets.items()):
            label = f"tanh line at {name}: {v:.0f} epochs"
            ax.plot([v], [100 * (a + b * math.log2(v))], "s", color=color, label=label)
        ax.axhline(100 * TARGET, color="C3", lw=1, label="target 92%")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("epochs of 55,000 images (cosine over the budget)")
        ax.set_ylabel("held-out accuracy, mean readout (%)")
        ax.set_title("Fashion-MNIST: accuracy against training budget")
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=110)
        write_atomic(args.out, png.getvalue())
    return 0


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    from glom_tf.cli import run

    run(main)
