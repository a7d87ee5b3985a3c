import os
import subprocess
import sys

import numpy as np

import glom_tf
from glom_tf.islands import count_islands, digit_mask, neighbour_similarity, settling_curves
from tests.test_case import MNIST_DIR, REPO, GlomTestCase, mnist_digits


class IslandsTest(GlomTestCase):
    def test_neighbour_similarity(self):
        states = np.ones((2, 4, 4, 3, 5), np.float32)  # every vector equal: similarity 1
        states[:, :, :, 2] = np.random.default_rng(0).normal(size=(2, 4, 4, 5))
        sim = neighbour_similarity(states)
        self.assertEqual(sim.shape, (2, 4, 4, 3))
        self.assertAllClose(sim[..., 0], np.ones((2, 4, 4)), atol=1e-6)
        self.assertLess(float(np.abs(sim[..., 2]).mean()), 0.6)
        # A checkerboard of opposite vectors: 4 edge neighbours at -1, 4 corners at +1.
        board = np.where((np.indices((4, 4)).sum(0) % 2)[..., None, None] == 0, 1.0, -1.0) * np.ones(
            (4, 4, 1, 2)
        )
        self.assertAllClose(neighbour_similarity(board)[..., 0], np.zeros((4, 4)), atol=1e-6)

    def test_count_islands_on_a_torus(self):
        agree = np.zeros((6, 6), bool)
        agree[0, 0] = agree[0, 5] = True  # joined across the wrap
        agree[3, 2:4] = True
        self.assertEqual(count_islands(agree), 2)
        mask = np.zeros((6, 6), bool)
        mask[3, 3] = True
        self.assertEqual(count_islands(agree, mask), 1)
        self.assertEqual(count_islands(np.ones((5, 5), bool)), 1)

    def test_digit_mask(self):
        x, _ = mnist_digits(2)
        mask = digit_mask(x, 4)
        self.assertEqual(mask.shape, (2, 4, 4))
        self.assertTrue(mask.any() and not mask.all())

    def test_settling_curves(self):
        model = glom_tf.build_model(glom_tf.get_preset("tiny").with_overrides(steps=3))
        x, _ = mnist_digits(3)
        curves = settling_curves(model, x)
        self.assertEqual(np.array(curves["similarity"]).shape, (4, 3))
        self.assertEqual(np.array(curves["islands_digit"]).shape, (4, 3))
        self.assertEqual(len(curves["agreement"]), 4)
        # The final step's agreement is the model's own readout agreement.
        _, _, agreement = model.predict_readout(x)
        self.assertAllClose(curves["agreement"][-1], float(np.mean(agreement)), atol=1e-6)


class VisualizeCliTest(GlomTestCase):
    def setUp(self):
        super().setUp()
        self.skip_without_mnist_files()

    def test_writes_the_pictures(self):
        tmp = self.get_temp_dir()
        config = glom_tf.get_preset("tiny").with_overrides(steps=3)
        model = glom_tf.build_model(config)
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        out = os.path.join(tmp, "pictures")
        run = subprocess.run(
            [sys.executable, "-m", "training.visualize", "--model", path, "--out", out,
             "--dataset", "mnist", "--index", "7", "--data-dir", MNIST_DIR],
            cwd=REPO, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        for name in ("input", "levels", "similarity", "votes", "attention", "curves"):
            with open(os.path.join(out, f"{name}.png"), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", name)
        bad = subprocess.run(
            [sys.executable, "-m", "training.visualize", "--model", path, "--out", out,
             "--index", "99999999", "--data-dir", MNIST_DIR],
            cwd=REPO, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        self.assertEqual(bad.returncode, 2)
        self.assertEqual(len(bad.stderr.strip().splitlines()), 1, bad.stderr)
