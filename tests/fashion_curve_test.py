"""experiments/fashion_curve.py: the log-linear fit behind Fashion-MNIST's learning-curve figure."""

import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

from tests.test_case import REPO

SCRIPT = os.path.join(REPO, "experiments", "fashion_curve.py")


def load_script():
    spec = importlib.util.spec_from_file_location("fashion_curve", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FashionCurveTest(unittest.TestCase):
    def test_fit_recovers_a_known_line_and_inverts_it(self):
        curve = load_script()
        # 0.80 at 1 epoch, +0.02 for every doubling: 0.82 at 2, 0.86 at 8, 0.90 at 32 epochs
        a, b = curve.log_linear_fit([2.0, 8.0, 32.0], [0.82, 0.86, 0.90])
        self.assertAlmostEqual(a, 0.80, places=9)
        self.assertAlmostEqual(b, 0.02, places=9)
        self.assertAlmostEqual(curve.epochs_for(0.92, a, b), 64.0, places=6)
        self.assertEqual(curve.epochs_for(0.92, 0.9, 0.0), math.inf)
        with self.assertRaises(ValueError):
            curve.log_linear_fit([4.0, 4.0], [0.8, 0.9])

    def test_saturating_fit_recovers_a_known_curve_and_refuses_a_straight_line(self):
        curve = load_script()
        # 0.93 - 0.2 / e: 0.83 at 2 epochs, 0.905 at 8, 0.92 at 20
        big, b, c = curve.saturating_fit([2.0, 8.0, 20.0], [0.83, 0.905, 0.92])
        self.assertAlmostEqual(big, 0.93, places=6)
        self.assertAlmostEqual(b, 0.2, places=6)
        self.assertAlmostEqual(c, 1.0, places=6)
        with self.assertRaises(ValueError):  # the same gain per doubling: a straight line, no ceiling
            curve.saturating_fit([2.0, 8.0, 32.0], [0.82, 0.86, 0.90])
        with self.assertRaises(ValueError):  # gains that rise
            curve.saturating_fit([2.0, 8.0, 32.0], [0.82, 0.83, 0.90])

    def test_prints_the_committed_runs_their_line_and_their_saturating_curve(self):
        out = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, check=True).stdout
        result = json.loads(out)
        logs = os.path.join(REPO, "experiments")
        expected = {}
        for path in ("gpu_logs/stage1/fashion64.json", "gpu_logs/stage2/fashion64_lr0.005.json"):
            with open(os.path.join(logs, path)) as f:
                run = json.load(f)
            expected[float(run["epochs"])] = run["validation"]["mean_accuracy"]
        with open(os.path.join(logs, "cpu_logs", "fashion64_e2", "metrics.json")) as f:
            cpu = json.load(f)
        expected[float(cpu["epochs"])] = cpu["accuracy_mean"]
        points = [(p["epochs"], p["heldout_mean"]) for p in result["points"]]
        self.assertEqual(points, sorted(expected.items()))
        (e1, y1), (e2, y2), (e3, y3) = points
        gains = [(y2 - y1) / math.log2(e2 / e1), (y3 - y2) / math.log2(e3 / e2)]
        np.testing.assert_allclose(result["gain_per_doubling"], gains, atol=1e-4)
        sat = result["saturating"]
        for e, y in points:  # the curve passes through all three points
            self.assertAlmostEqual(sat["ceiling"] - sat["b"] * e ** -sat["c"], y, delta=5e-4)
        for p in result["predicted"].values():
            self.assertAlmostEqual(p["line"], y3 + gains[1] * math.log2(p["epochs"] / e3), places=3)
            self.assertAlmostEqual(
                p["saturating"], sat["ceiling"] - sat["b"] * p["epochs"] ** -sat["c"], places=3
            )
        self.assertAlmostEqual(result["line_epochs_for_92"], e3 * 2 ** ((0.92 - y3) / gains[1]), delta=0.1)
        # the GELU recipe at 2 epochs (its gain over the tanh run of 2 epochs) and 20 (its gain
        # over the tanh curve's saturating fit at 20 epochs)
        gelu = {}
        for name in ("fashion64_gelu_e2", "fashion64_gelu"):
            with open(os.path.join(logs, "cpu_logs", name, "config.json")) as f:
                self.assertEqual(json.load(f)["activation"], "gelu")
            with open(os.path.join(logs, "cpu_logs", name, "metrics.json")) as f:
                gelu[name] = json.load(f)
        short, long = gelu["fashion64_gelu_e2"], gelu["fashion64_gelu"]
        self.assertEqual((short["epochs"], long["epochs"]), (2, 20))
        (g2, g20) = result["gelu"]
        self.assertEqual((g2["epochs"], g2["heldout_mean"]), (2.0, short["accuracy_mean"]))
        self.assertAlmostEqual(g2["gain_over_tanh"], short["accuracy_mean"] - cpu["accuracy_mean"], places=4)
        self.assertEqual((g20["epochs"], g20["heldout_mean"]), (20.0, long["accuracy_mean"]))
        tanh_at_20 = sat["ceiling"] - sat["b"] * 20.0 ** -sat["c"]
        self.assertAlmostEqual(g20["gain_over_tanh_curve"], long["accuracy_mean"] - tanh_at_20, delta=5e-4)
        # what the 20-epoch run plus eight CPU hours (at its last sitting's seconds per epoch) buys
        pred = result["gelu_predicted"]
        epoch_s = long["train_examples"] / long["train_images_per_second"]
        self.assertAlmostEqual(pred["epochs"], 20 + 8 * 3600 / epoch_s, delta=0.1)
        y2, y20, v = short["accuracy_mean"], long["accuracy_mean"], pred["epochs"]
        slope = (y20 - y2) / math.log2(10)  # per doubling from 2 to 20 epochs
        self.assertAlmostEqual(pred["line"]["b_per_doubling"], slope, delta=1e-4)
        at = pred["at_epochs"]
        self.assertAlmostEqual(at["gelu line"], y20 + slope * math.log2(v / 20), delta=5e-4)
        self.assertAlmostEqual(
            at["tanh's last gain per doubling"], y20 + gains[1] * math.log2(v / 20), delta=5e-4
        )
        moved = lambda e: sat["ceiling"] - sat["b"] * e ** -sat["c"] + (y20 - tanh_at_20)  # noqa: E731
        self.assertAlmostEqual(at["tanh's saturating curve moved up"], moved(v), delta=1e-3)
        need = pred["epochs_for_92"]
        self.assertAlmostEqual(need["gelu line"], 20 * 2 ** ((0.92 - y20) / slope), delta=0.5)
        self.assertAlmostEqual(
            need["tanh's last gain per doubling"], 20 * 2 ** ((0.92 - y20) / gains[1]), delta=0.5
        )
        if math.isfinite(need["tanh's saturating curve moved up"]):
            self.assertAlmostEqual(moved(need["tanh's saturating curve moved up"]), 0.92, delta=1e-3)
        else:
            self.assertLessEqual(pred["moved_up_ceiling"], 0.92)
        # the 20-epoch run warm-restarted to 40 epochs, that one to 72, against the three
        # predictions for their budgets
        start_epochs, start = 20.0, y20
        got = result["gelu_warm_restarts"]
        self.assertEqual(len(got), 2)
        for restart, (name, budget) in zip(got, (("fashion64_gelu40", 40), ("fashion64_gelu72", 72))):
            with open(os.path.join(logs, "cpu_logs", name, "config.json")) as f:
                config = json.load(f)
            self.assertEqual((config["activation"], config["epochs"]), ("gelu", budget))
            with open(os.path.join(logs, "cpu_logs", name, "metrics.json")) as f:
                warm = json.load(f)
            self.assertEqual(warm["epochs"], budget)
            self.assertEqual((restart["from_epochs"], restart["epochs"]), (start_epochs, float(budget)))
            self.assertEqual(restart["heldout_mean"], warm["accuracy_mean"])
            self.assertAlmostEqual(restart["gain_over_start"], warm["accuracy_mean"] - start, places=4)
            w = float(budget)
            predicted = restart["predicted"]
            self.assertAlmostEqual(predicted["gelu line"], y20 + slope * math.log2(w / 20), delta=5e-4)
            self.assertAlmostEqual(
                predicted["tanh's last gain per doubling"], y20 + gains[1] * math.log2(w / 20), delta=5e-4
            )
            self.assertAlmostEqual(predicted["tanh's saturating curve moved up"], moved(w), delta=1e-3)
            start_epochs, start = w, warm["accuracy_mean"]

    def test_configs_are_compared_without_their_budget(self):
        curve = load_script()
        gpu = {"dim": 64, "epochs": 8}
        self.assertEqual(curve.budget_free(gpu), curve.budget_free({"dim": 64, "epochs": 2}))
        self.assertNotEqual(curve.budget_free(gpu), curve.budget_free({"dim": 48, "epochs": 8}))
        self.assertEqual(curve.budget_free({"dim": 64})["position"], "none")  # a field added later: default

    def test_draws_the_figure_and_keeps_an_existing_one_without_overwrite(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "curve.png")
            subprocess.run([sys.executable, SCRIPT, "--out", out], capture_output=True, check=True)
            with open(out, "rb") as f:
                drawn = f.read()
            self.assertEqual(drawn[:8], b"\x89PNG\r\n\x1a\n")
            again = subprocess.run([sys.executable, SCRIPT, "--out", out], capture_output=True, text=True)
            self.assertEqual(again.returncode, 2)
            self.assertEqual(len(again.stderr.strip().splitlines()), 1, again.stderr)
            with open(out, "rb") as f:
                self.assertEqual(f.read(), drawn)


if __name__ == "__main__":
    unittest.main()
