import numpy as np
import tensorflow as tf

from tests.test_case import GlomTestCase
from training.data import Arrays, affine, affine_numpy, augment_numpy, make_dataset


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
            augment_shift, augment_rotate, augment_scale, augment_flip = 2, 15.0, 0.1, False

        tf.random.set_seed(0)
        ((train, _),) = make_dataset(arrays, 8, 28, True, Augment(), 0).take(1)
        ((plain, _),) = make_dataset(arrays, 8, 28).take(1)
        self.assertAllClose(plain, np.repeat(pixels[None] / 255.0, 8, 0), atol=1e-6)
        self.assertGreater(float(np.abs(np.asarray(train) - np.asarray(plain)).max()), 0.5)

    def test_flip_mirrors_about_half_of_the_training_images(self):
        pixels = (pattern() * 255).astype(np.uint8)  # (28, 28, 1), not left-right symmetric
        image, mirror = pixels / 255.0, pixels[:, ::-1] / 255.0
        self.assertGreater(np.abs(image - mirror).max(), 0.5)
        arrays = Arrays(np.repeat(pixels[None], 64, axis=0), np.zeros(64, np.int64), "test", 10)

        class Flip:
            augment_shift, augment_rotate, augment_scale, augment_flip = 0, 0.0, 0.0, True

        tf.random.set_seed(1)
        ((train, _),) = make_dataset(arrays, 64, 28, True, Flip(), 0).take(1)
        train = np.asarray(train)
        same = np.all(np.abs(train - image) < 1e-6, axis=(1, 2, 3))
        mirrored = np.all(np.abs(train - mirror) < 1e-6, axis=(1, 2, 3))
        self.assertTrue(np.all(same | mirrored))  # each image as it is or mirrored, nothing else
        self.assertBetween(int(mirrored.sum()), 16, 48)  # Binomial(64, 1/2): 16-48 is > 99.9%
        ((plain, _),) = make_dataset(arrays, 64, 28, False, Flip(), 0).take(1)  # not in evaluation
        self.assertAllClose(plain, np.repeat(image[None], 64, 0), atol=1e-6)


class NumpyAugmentTest(GlomTestCase):
    """The JAX trainer's augmentation (experiments/gpu_fit.py) against tf.data's."""

    def test_affine_numpy_matches_the_tensorflow_transform(self):
        rng = np.random.default_rng(0)
        images = rng.random((6, 28, 28, 1)).astype(np.float32)
        degrees, zoom = rng.uniform(-15, 15, 6), rng.uniform(0.8, 1.2, 6)
        offset = rng.integers(-2, 3, (6, 2))
        expected = [affine(images[i], degrees[i], zoom[i], offset[i].astype(np.float32)) for i in range(6)]
        self.assertAllClose(affine_numpy(images, degrees, zoom, offset), np.stack(expected), atol=1e-5)

    def test_affine_numpy_shift_is_exact(self):
        image = pattern()
        moved = np.zeros_like(image)  # 3 px right, 2 px up, zero-filled (as in the test above)
        moved[1:6, 8:23, 0] = 1.0
        moved[8, 5, 0] = 0.5
        self.assertAllClose(affine_numpy(image[None], [0.0], [1.0], [[3, -2]])[0], moved, atol=1e-6)

    def test_augment_numpy_scales_moves_and_flips(self):
        pixels = (pattern() * 255).astype(np.uint8)
        images = np.repeat(pixels[None], 64, axis=0)
        image, mirror = pixels / 255.0, pixels[:, ::-1] / 255.0

        class Flip:
            augment_shift, augment_rotate, augment_scale, augment_flip = 0, 0.0, 0.0, True

        out = augment_numpy(images, np.random.default_rng(1), Flip())
        self.assertEqual(out.dtype, np.float32)
        same = np.all(np.abs(out - image) < 1e-6, axis=(1, 2, 3))
        mirrored = np.all(np.abs(out - mirror) < 1e-6, axis=(1, 2, 3))
        self.assertTrue(np.all(same | mirrored))
        self.assertBetween(int(mirrored.sum()), 16, 48)  # Binomial(64, 1/2): 16-48 is > 99.9%

        class Shift:
            augment_shift, augment_rotate, augment_scale, augment_flip = 2, 0.0, 0.0, False

        out = augment_numpy(images, np.random.default_rng(2), Shift())
        # every image is the pattern moved by whole pixels in [-2, 2]: its mass is kept (the
        # pattern lies >= 2 px from the border) and its centre of mass moves by that much
        self.assertAllClose(out.sum(axis=(1, 2, 3)), np.full(64, image.sum()), rtol=1e-5)
        ys, xs = np.mgrid[0:28, 0:28]
        centre = lambda a: ((a[..., 0] * xs).sum() / a.sum(), (a[..., 0] * ys).sum() / a.sum())  # noqa: E731
        cx, cy = centre(image)
        moves = np.array([np.subtract(centre(a), (cx, cy)) for a in out])
        self.assertAllClose(moves, np.round(moves), atol=1e-4)
        self.assertLessEqual(np.abs(moves).max(), 2.0 + 1e-4)
        self.assertGreater(len({tuple(m) for m in np.round(moves).astype(int)}), 10)
