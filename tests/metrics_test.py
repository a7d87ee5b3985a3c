import numpy as np
import tensorflow as tf

from tests.test_case import GlomTestCase
from training.metrics import readout_figures


class FixedScores:
    """A stand-in model that returns fixed per-cell scores, with the mean readout."""

    readout = "mean"

    def __init__(self, scores):
        self.scores = tf.constant(scores)

    def __call__(self, images, training=False):
        return self.scores


class ReadoutFiguresTest(GlomTestCase):
    def test_figures_against_hand_counts(self):
        # Three 4x4 images on a 2x2 grid (2x2 patches). The digit covers the top-left patch of
        # images 0 and 2 and the two top patches of image 1.
        images = np.zeros((3, 4, 4, 1), "float32")
        images[0, 0, 0] = 1.0
        images[1, :2, :] = 1.0
        images[2, 0, 0] = 1.0
        labels = np.array([3, 1, 2], "int32")
        scores = np.zeros((3, 2, 2, 5), "float32")
        scores[0, ..., 3] = 1.0  # image 0: every cell votes 3...
        scores[0, 0, 0] = [0, 0, 0, 0, 0.5]  # ...except the digit cell, which votes 4 (weakly)
        scores[1, :, :, 1] = [[1, 1], [1, 0]]  # image 1: three cells vote 1, the last one 0
        scores[2, ..., 0] = 1.0  # image 2 (a 2): every cell votes 0, so the answer is wrong
        ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(3)
        figures = readout_figures(FixedScores(scores), ds, 5, jit=False)
        # Rows: the true class; columns: the answer. Written out by hand.
        expected = np.zeros((5, 5), int)
        expected[3, 3] = 1
        expected[1, 1] = 1
        expected[2, 0] = 1
        self.assertAllEqual(figures["confusion_matrix"], expected)
        self.assertEqual(figures["per_class_accuracy"], {"0": 0.0, "1": 1.0, "2": 0.0, "3": 1.0, "4": 0.0})
        self.assertAllClose(figures["accuracy_vote"], 2 / 3)  # majority: 3, 1, 0
        self.assertAllClose(figures["accuracy_mean"], 2 / 3)
        self.assertAllClose(figures["accuracy"], 2 / 3)
        self.assertAllClose(figures["agreement"], (3 / 4 + 3 / 4 + 1) / 3)
        self.assertAllClose(figures["agreement_digit"], (0 / 1 + 2 / 2 + 1 / 1) / 3)
        self.assertEqual(figures["images"], 3)
