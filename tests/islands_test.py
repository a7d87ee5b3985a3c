import os
import subprocess
import sys

import numpy as np

import glom_tf
from glom_tf.islands import (
    island_figures,
    island_labels,
    level_figures,
    neighbour_similarity,
    nesting,
    object_mask,
    parse_tree,
    settling_curves,
)
from glom_tf.readout import readout
from tests.test_case import REPO, GlomTestCase, mnist_digits, mnist_dir, user_env

A = np.array([1.0, 0.0, 0.0])
B = np.array([0.6, 0.8, 0.0])  # cos(A, B) = 0.6: below the 0.9 threshold
C = np.array([0.0, 0.0, 1.0])


def two_islands():
    """A 6x6 grid: the object is the 4x4 block rows 1-4, cols 1-4; column 1 holds A (4 cells),
    columns 2-4 hold B (12 cells); off the object every cell holds C."""
    vectors = np.tile(C, (6, 6, 1))
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:5] = True
    vectors[1:5, 1] = A
    vectors[1:5, 2:5] = B
    return vectors, mask


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

    def test_two_designed_islands(self):
        vectors, mask = two_islands()
        labels = island_labels(vectors, mask)
        self.assertAllEqual(labels[~mask], -np.ones((~mask).sum(), int))
        self.assertEqual(len(np.unique(labels[1:5, 1])), 1)
        self.assertEqual(len(np.unique(labels[1:5, 2:5])), 1)
        self.assertNotEqual(labels[1, 1], labels[1, 2])
        figures = island_figures(vectors, mask)
        self.assertEqual(figures["count"], 2)
        self.assertAllClose(figures["largest"], 12 / 16)
        self.assertAllClose(figures["mean_cosine"], 0.6, atol=1e-6)  # cos(A, B)
        self.assertAllClose(figures["distinct"], 0.4, atol=1e-6)
        # 4-neighbour pairs inside the 4x4 object: 12 vertical + 12 horizontal; the 4 horizontal
        # pairs across columns 1|2 have cosine 0.6, the other 20 cosine 1.
        self.assertAllClose(figures["neighbour_cosine"], (20 * 1.0 + 4 * 0.6) / 24, atol=1e-6)
        # The scale of a vector does not matter (cosine), nor does a small perturbation.
        noisy = vectors * 3.0 + 0.01 * np.random.default_rng(0).normal(size=vectors.shape)
        self.assertEqual(island_figures(noisy, mask)["count"], 2)
        # A threshold below cos(A, B) merges them.
        merged = island_figures(vectors, mask, threshold=0.5)
        self.assertEqual((merged["count"], merged["largest"], merged["mean_cosine"]), (1, 1.0, None))

    def test_one_vector_everywhere_is_one_island(self):
        mask = np.zeros((5, 5), bool)
        mask[1:4, 0:3] = True
        figures = island_figures(np.tile(A, (5, 5, 1)), mask)
        self.assertEqual(figures["count"], 1)
        self.assertEqual(figures["largest"], 1.0)
        self.assertIsNone(figures["mean_cosine"])
        self.assertEqual(figures["distinct"], 0.0)
        self.assertAllClose(figures["neighbour_cosine"], 1.0, atol=1e-6)
        empty = island_figures(np.tile(A, (5, 5, 1)), np.zeros((5, 5), bool))
        self.assertEqual((empty["count"], empty["mean_cosine"], empty["distinct"]), (0, None, 0.0))

    def test_cells_off_the_object_are_ignored(self):
        # Two blocks of A joined only through a column of A that is off the object: 2 islands.
        vectors = np.tile(A, (5, 5, 1))
        mask = np.zeros((5, 5), bool)
        mask[:, 0:2] = mask[:, 3:5] = True  # column 2 is off the object
        figures = island_figures(vectors, mask)
        self.assertEqual(figures["count"], 2)
        self.assertEqual(figures["largest"], 0.5)
        self.assertAllClose(figures["mean_cosine"], 1.0, atol=1e-6)
        # Whatever the off-object cells hold changes nothing.
        vectors, mask = two_islands()
        scrambled = vectors.copy()
        scrambled[~mask] = np.random.default_rng(1).normal(size=((~mask).sum(), 3))
        self.assertEqual(island_figures(scrambled, mask), island_figures(vectors, mask))

    def test_no_wrap_around_across_the_grid_edge(self):
        vectors = np.tile(A, (4, 4, 1))
        mask = np.zeros((4, 4), bool)
        mask[:, 0] = mask[:, 3] = True  # neighbours on a torus, not on the grid
        self.assertEqual(island_figures(vectors, mask)["count"], 2)
        mask = np.zeros((4, 4), bool)
        mask[0, :] = mask[3, :] = True
        self.assertEqual(island_figures(vectors, mask)["count"], 2)
        mask = np.zeros((4, 4), bool)
        mask[0, 0] = mask[3, 3] = True
        figures = island_figures(vectors, mask)
        self.assertEqual(figures["count"], 2)
        self.assertIsNone(figures["neighbour_cosine"])  # no 4-neighbouring object cells

    def test_level_figures_average_over_images(self):
        vectors, mask = two_islands()
        states = np.zeros((2, 6, 6, 2, 3))
        states[0, :, :, 0] = vectors  # image 0: level 0 two islands, level 1 one
        states[0, :, :, 1] = A
        states[1, :, :, 0] = A  # image 1: one island on both levels
        states[1, :, :, 1] = A
        figures = level_figures(states, np.stack([mask, mask]))
        self.assertAllClose(figures["count"], [1.5, 1.0])
        self.assertAllClose(figures["largest"], [(0.75 + 1.0) / 2, 1.0])
        self.assertAllClose(figures["mean_cosine"][0], 0.6, atol=1e-6)  # images with >= 2 islands only
        self.assertIsNone(figures["mean_cosine"][1])
        self.assertAllClose(figures["distinct"], [0.2, 0.0], atol=1e-6)
        # Both images' level-0 islands lie within level 1's one island; the top has no level above.
        self.assertEqual(figures["nesting"], [1.0, None])

    def test_nesting_of_a_whole_under_parts(self):
        vectors, mask = two_islands()
        states = np.zeros((1, 6, 6, 3, 3))
        states[0, :, :, 0] = A  # level 0: one island over the object's 16 cells
        states[0, :, :, 1] = vectors  # level 1: A on 4 cells, B on 12: the whole split in two
        states[0, :, :, 2] = A
        figures = level_figures(states, mask[None])
        # Level 0's one island has its parent in level 1's larger island: 12 of 16 cells inside it.
        self.assertAllClose(figures["nesting"][:2], [12 / 16, 1.0])
        self.assertIsNone(figures["nesting"][2])

    def test_object_mask(self):
        images = np.zeros((2, 28, 28), "float32")
        images[0, 8, 15] = 0.6  # patch (1, 2) of a 7x7-patch grid: above 0.5
        images[0, 27, 27] = 0.4  # patch (3, 3): not above 0.5
        images[1, 0:7, 0:7] = 1.0  # patch (0, 0)
        expected = np.zeros((2, 4, 4), bool)
        expected[0, 1, 2] = expected[1, 0, 0] = True
        self.assertAllEqual(object_mask(images, 4), expected)
        self.assertAllEqual(object_mask(images[..., None], 4), expected)  # a channel axis
        model = glom_tf.build_model(glom_tf.get_preset("tiny"))
        self.assertAllEqual(np.asarray(model.object_mask(images)), expected)
        x, _ = mnist_digits(2)
        mask = object_mask(x, 4)
        self.assertTrue(mask.any() and not mask.all())
        self.assertAllEqual(np.asarray(model.object_mask(x)), mask)

    def test_settling_curves(self):
        model = glom_tf.build_model(glom_tf.get_preset("tiny").with_overrides(steps=3))
        x, _ = mnist_digits(3)
        curves = settling_curves(model, x)
        keys = {"islands", "largest", "neighbour_cosine", "mean_cosine", "distinct", "nesting"}
        keys |= {"similarity", "agreement", "agreement_digit", "threshold"}
        self.assertEqual(set(curves), keys)
        self.assertEqual(curves["threshold"], model.island_threshold)
        for key in ("similarity", "islands", "largest", "distinct"):
            self.assertEqual(np.array(curves[key], float).shape, (4, 3), key)  # [T+1][L]
        self.assertEqual(len(curves["agreement"]), 4)
        # Each step's figures are those of the recorded states, per level.
        out = model.unroll(x)
        states = np.asarray(out["states"])
        mask = object_mask(x, 4)
        for t in (0, 3):
            for level in range(3):
                counts = [island_figures(states[t, b, :, :, level], mask[b])["count"] for b in range(3)]
                self.assertAllClose(curves["islands"][t][level], np.mean(counts))
        # The final step's agreement is the model's own readout agreement (all cells), and on
        # the object's cells the fraction of object cells voting for the answer.
        _, classes, agreement = readout(out["scores"], model.readout)
        self.assertAllClose(curves["agreement"][-1], float(np.mean(agreement)), atol=1e-6)
        votes = np.asarray(out["scores"]).argmax(-1) == np.asarray(classes)[:, None, None]
        digit = [votes[b][mask[b]].mean() for b in range(3)]
        self.assertAllClose(curves["agreement_digit"][-1], float(np.mean(digit)), atol=1e-6)


class ParseTreeTest(GlomTestCase):
    def test_each_island_hangs_under_the_island_above_covering_most_of_it(self):
        off = -1
        level1 = np.array([[0, 0, 1, 1], [2, 2, 3, 3], [off, off, off, off], [4, 4, 4, off]])
        level2 = np.array([[0, 0, 0, 1], [1, 1, 1, 1], [off, off, off, off], [1, 1, 1, off]])
        level3 = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [off, off, off, off], [0, 0, 0, off]])
        tree = parse_tree([level1, level2, level3])
        # Level-1 island 1 covers cells (0,2) -> 0 and (0,3) -> 1: a tie goes to the lower label.
        self.assertEqual(tree[0], {0: 0, 1: 0, 2: 1, 3: 1, 4: 1})
        self.assertEqual(tree[1], {0: 0, 1: 0})
        self.assertEqual(tree[2], {})
        # An island whose cells lie off the level above's object has no parent.
        self.assertEqual(parse_tree([np.array([[0, off]]), np.array([[off, 0]])])[0], {})

    def test_nesting_counts_the_cells_inside_each_islands_parent(self):
        off = -1
        level1 = np.array([[0, 0, 1, 1], [2, 2, 3, 3], [off, off, off, off], [4, 4, 4, off]])
        level2 = np.array([[0, 0, 0, 1], [1, 1, 1, 1], [off, off, off, off], [1, 1, 1, off]])
        # Islands 0, 2, 3 and 4 (2 + 2 + 2 + 3 cells) lie within one island of level 2; island 1
        # has one of its two cells in its parent: 10 of the 11 object cells.
        self.assertAllClose(nesting(level1, level2), 10 / 11)
        self.assertEqual(nesting(level2, np.zeros_like(level2)), 1.0)
        self.assertIsNone(nesting(np.full((2, 2), off), np.zeros((2, 2), int)))


class VisualizeCliTest(GlomTestCase):
    def test_writes_the_pictures(self):
        tmp = self.get_temp_dir()
        config = glom_tf.get_preset("tiny").with_overrides(steps=3)
        model = glom_tf.build_model(config)
        path = os.path.join(tmp, "m.keras")
        model.save(path)
        out = os.path.join(tmp, "pictures")
        run = subprocess.run(
            [sys.executable, "-m", "training.visualize", "--model", path, "--out", out,
             "--dataset", "mnist", "--index", "7", "--data-dir", mnist_dir()],
            cwd=REPO, env=user_env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        for name in ("input", "levels", "similarity", "votes", "attention", "curves", "islands", "parse"):
            with open(os.path.join(out, f"{name}.png"), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n", name)
        bad = subprocess.run(
            [sys.executable, "-m", "training.visualize", "--model", path, "--out", out,
             "--index", "99999999", "--data-dir", mnist_dir()],
            cwd=REPO, env=user_env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        self.assertEqual(bad.returncode, 2)
        self.assertEqual(len(bad.stderr.strip().splitlines()), 1, bad.stderr)
        # The same --out again: the figures there are kept unless --overwrite says otherwise.
        levels = os.path.join(out, "levels.png")
        with open(levels, "wb") as f:
            f.write(b"keep me")
        again = subprocess.run(
            [sys.executable, "-m", "training.visualize", "--model", path, "--out", out,
             "--index", "7", "--data-dir", mnist_dir()],
            cwd=REPO, env=user_env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        self.assertEqual(again.returncode, 2, again.stderr[-3000:])
        self.assertIn("--overwrite", again.stderr)
        self.assertEqual(len(again.stderr.strip().splitlines()), 1, again.stderr)
        with open(levels, "rb") as f:
            self.assertEqual(f.read(), b"keep me")

    def test_models_of_another_size_and_channel_count(self):
        from PIL import Image

        tmp = self.get_temp_dir()
        tiny = glom_tf.get_preset("tiny").with_overrides(image_size=32, patch_size=8)
        paths = {}
        for name, channels in (("grey", 1), ("colour", 3)):
            paths[name] = os.path.join(tmp, f"{name}.keras")
            glom_tf.build_model(tiny.with_overrides(channels=channels)).save(paths[name])
        digit = np.zeros((28, 28), np.uint8)
        digit[6:22, 12:16] = 255  # a stroke: a "1"
        Image.fromarray(digit).save(os.path.join(tmp, "one.png"))

        def visualize(model, out, *source):
            return subprocess.run(
                [sys.executable, "-m", "training.visualize", "--model", model, "--out", out, *source],
                cwd=REPO, env=user_env(), capture_output=True, text=True, timeout=300,
            )  # fmt: skip

        # A 28x28 MNIST digit resized to the 32x32 model, as training does.
        run = visualize(paths["grey"], os.path.join(tmp, "a"), "--index", "3", "--data-dir", mnist_dir())
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        self.assertTrue(os.path.exists(os.path.join(tmp, "a", "islands.png")))
        # An image file, its grey repeated over the colour model's 3 channels.
        run = visualize(paths["colour"], os.path.join(tmp, "b"), "--image", os.path.join(tmp, "one.png"))
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        self.assertTrue(os.path.exists(os.path.join(tmp, "b", "islands.png")))
        # One-channel MNIST into the colour model: refused in one line, nothing written.
        run = visualize(paths["colour"], os.path.join(tmp, "c"), "--data-dir", mnist_dir())
        self.assertEqual(run.returncode, 2, run.stderr)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)
        self.assertIn("channel", run.stderr)
        self.assertFalse(os.path.exists(os.path.join(tmp, "c")))
        # training.evaluate refuses it with the same check, before any evaluation.
        run = subprocess.run(
            [sys.executable, "-m", "training.evaluate", "--model", paths["colour"], "--dataset", "mnist",
             "--split", "test", "--data-dir", mnist_dir()],
            cwd=REPO, env=user_env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        self.assertEqual(run.returncode, 2, run.stderr)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)
        self.assertIn("1 channel(s); the model has 10 and 3", run.stderr)
