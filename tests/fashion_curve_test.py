"""experiments/fashion_curve.py: the log-linear fit behind Fashion-MNIST's learning-curve figure."""

import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

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

    def test_prints_the_committed_runs_and_a_prediction_on_their_line(self):
        out = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, check=True).stdout
        result = json.loads(out)
        points = {p["epochs"]: p["heldout_mean"] for p in result["points"]}
        logs = os.path.join(REPO, "experiments", "gpu_logs")
        for path in ("stage1/fashion64.json", "stage2/fashion64_lr0.005.json"):
            with open(os.path.join(logs, path)) as f:
                run = json.load(f)
            self.assertEqual(points[float(run["epochs"])], run["validation"]["mean_accuracy"])
        (e1, y1), (e2, y2) = sorted(points.items())
        slope = (y2 - y1) / math.log2(e2 / e1)  # two points: the line through them
        for p in result["predicted"].values():
            self.assertAlmostEqual(p["heldout"], y2 + slope * math.log2(p["epochs"] / e2), places=3)
        self.assertAlmostEqual(result["epochs_for_92"], e2 * 2 ** ((0.92 - y2) / slope), delta=0.1)

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
