import numpy as np
import tensorflow as tf

from tests.test_case import GlomTestCase
from training.metrics import readout_figures


class ReadoutFiguresTest(GlomTestCase):
    def test_agreement_over_all_cells_and_over_digit_cells(self):
        # Two 4x4 images on a 2x2 grid (2x2 patches); the digit covers the top-left patch of
        # image 0 and the two top patches of image 1.
        images = np.zeros((2, 4, 4, 1), "float32")
        images[0, 0, 0] = 1.0
        images[1, :2, :] = 1.0
        labels = np.array([3, 1], "int32")
        scores = np.zeros((2, 2, 2, 5), "float32")
        scores[0, ..., 3] = 1.0  # image 0: every cell votes 3...
        scores[0, 0, 0] = [0, 0, 0, 0, 0.5]  # ...except the digit cell, which votes 4 (weakly)
        scores[1, :, :, 1] = [[1, 1], [1, 0]]  # image 1: three cells vote 1, the last one 0
        model = lambda x, training=False: tf.constant(scores)  # noqa: E731
        ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
        figures = readout_figures(model, ds, 5, jit=False)
        self.assertEqual(figures["accuracy_vote"], 1.0)  # majority: 3 and 1
        self.assertAllClose(figures["agreement"], (3 / 4 + 3 / 4) / 2)
        self.assertAllClose(figures["agreement_digit"], (0 / 1 + 2 / 2) / 2)
        self.assertEqual(figures["confusion_matrix"][3][3], 1)
