import json
import subprocess
import sys

import glom_tf
from tests.test_case import REPO, GlomTestCase, user_env
from training.benchmark import forward_flops


class BenchmarkTest(GlomTestCase):
    def test_seed_flops_match_the_reference_count(self):
        # The reference counts 3 x 8 networks x 784 cells x 2 x 1,100 MACs x 30 steps = 1.24 GFLOP.
        self.assertEqual(3 * forward_flops(glom_tf.get_preset("seed")), 3 * 8 * 784 * 2 * 1100 * 30)
        no_attention = glom_tf.get_preset("seed").with_overrides(attention="none")
        self.assertEqual(forward_flops(no_attention), 5 * 784 * 2 * 1100 * 30)

    def test_harness_prints_one_json_line(self):
        for mode in ("train", "infer"):
            run = subprocess.run(
                [sys.executable, "-m", "training.benchmark", "--preset", "tiny", "--batch-size", "4",
                 "--steps", "2", "--mode", mode],
                cwd=REPO, env=user_env(), capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            self.assertEqual(run.returncode, 0, run.stderr[-2000:])
            result = json.loads(run.stdout.strip().splitlines()[-1])
            for key in ("backend", "device", "compile_s", "step_s_median", "images_per_s", "peak_gib",
                        "peak_mib_per_image", "flops_per_image", "gflops_per_s"):  # fmt: skip
                self.assertIn(key, result)
            self.assertAlmostEqual(result["peak_mib_per_image"], 1024 * result["peak_gib"] / 4, delta=0.3)
            self.assertEqual((result["preset"], result["batch_size"], result["mode"]), ("tiny", 4, mode))
            self.assertGreater(result["images_per_s"], 0)
            self.assertEqual(result["backend"], "tensorflow")
