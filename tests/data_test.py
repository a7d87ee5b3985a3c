import numpy as np
import tensorflow as tf

from tests.test_case import GlomTestCase
from training.data import Arrays, affine, make_dataset


def pattern():
    image = np.zeros((28, 28, 1), np.float32)
    image[3:8, 5:20, 0] = 1.0
    image[10, 2, 0] = 0.5
    return image


class AugmentTest(GlomTestCase):
    def test_identity_shift_and_quarter_turn(self):
        image = pattern()
        self.assertAllClose(affine(image, 0.0, 1.0, [0.0, 0.0]), image)
        moved = np.zeros_like(image)  # 3 px right, 2 px up, zero-filled
        moved[1:6, 8:23, 0] = 1.0
        moved[8, 5, 0] = 0.5
        self.assertAllClose(affine(image, 0.0, 1.0, [3.0, -2.0]), moved)
        # 90 degrees about the centre (13.5, 13.5) maps the pixel grid onto itself.
        self.assertAllClose(affine(image, 90.0, 1.0, [0.0, 0.0]), np.rot90(image, 3, axes=(0, 1)), atol=1e-5)

    def test_zoom_about_the_centre(self):
        image = np.zeros((28, 28, 1), np.float32)
        image[12:16, 12:16] = 1.0  # a 4x4 square on the centre
        zoomed = np.asarray(affine(image, 0.0, 2.0, [0.0, 0.0]))
        self.assertAllClose(zoomed.sum(), 4.0 * image.sum(), rtol=0.15)  # area x zoom^2
        ys, xs = np.nonzero(zoomed[..., 0] > 0.5)
        self.assertAllClose([ys.mean(), xs.mean()], [13.5, 13.5], atol=0.01)

    def test_training_dataset_augments_and_validation_does_not(self):
        pixels = (pattern() * 255).astype(np.uint8)  # (28, 28, 1)
        images = np.repeat(pixels[None], 8, axis=0)
        arrays = Arrays(images, np.arange(8) % 10, "test", 10)

        class Augment:
            augment_shift, augment_rotate, augment_scale = 2, 15.0, 0.1

        tf.random.set_seed(0)
        ((train, _),) = make_dataset(arrays, 8, 28, True, Augment(), 0).take(1)
        ((plain, _),) = make_dataset(arrays, 8, 28).take(1)
        self.assertAllClose(plain, np.repeat(pixels[None] / 255.0, 8, 0), atol=1e-6)
        self.assertGreater(float(np.abs(np.asarray(train) - np.asarray(plain)).max()), 0.5)
