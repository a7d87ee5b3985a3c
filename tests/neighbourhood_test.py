import numpy as np

from glom_tf.neighbourhood import Neighbourhood, neighbour_shifts, torus_shift
from tests.test_case import GlomTestCase


class NeighbourhoodTest(GlomTestCase):
    def test_torus_shift_equals_np_roll_for_every_shift(self):
        x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype("float32")
        for axis in (1, 2):
            n = x.shape[axis]
            for shift in range(-n - 1, n + 2):
                self.assertAllEqual(torus_shift(x, shift, axis), np.roll(x, shift, axis), (axis, shift))

    def test_neighbours_are_the_originals_rolls(self):
        x = np.random.default_rng(1).normal(size=(2, 6, 5, 4, 3)).astype("float32")  # (B, H, W, L, D)
        out = np.asarray(Neighbourhood()(x))  # (B, H, W, L, 9D)
        self.assertEqual(out.shape, (2, 6, 5, 4, 27))
        for k, (dy, dx) in enumerate(neighbour_shifts(1)):
            self.assertAllEqual(out[..., 3 * k : 3 * k + 3], np.roll(x, (dy, dx), axis=(1, 2)))
        self.assertAllEqual(out[..., 12:15], x)  # the centre is the cell itself

    def test_radius_two(self):
        x = np.arange(2 * 6 * 6 * 1, dtype="float32").reshape(2, 6, 6, 1)
        out = np.asarray(Neighbourhood(radius=2)(x))
        self.assertEqual(out.shape, (2, 6, 6, 25))
        self.assertAllEqual(out[..., :1], np.roll(x, (-2, -2), axis=(1, 2)))
        for k, (dy, dx) in enumerate((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)):
            self.assertAllEqual(out[..., k : k + 1], np.roll(x, (dy, dx), axis=(1, 2)), (dy, dx))
        self.assertAllEqual(out[..., 12:13], x)  # the centre is the cell itself

    def test_layer_contract(self):
        x = np.random.default_rng(2).normal(size=(2, 4, 4, 3, 5)).astype("float32")
        self.run_layer_test(Neighbourhood, {"radius": 1, "axes": [1, 2]}, x, (2, 4, 4, 3, 45), run_fit=False)

    def test_other_grid_axes(self):
        x = np.random.default_rng(3).normal(size=(3, 2, 5, 4, 2)).astype("float32")  # (L, B, H, W, D)
        out = np.asarray(Neighbourhood(axes=(2, 3))(x))
        self.assertEqual(out.shape, (3, 2, 5, 4, 18))
        for k, (dy, dx) in enumerate(neighbour_shifts(1)):
            self.assertAllEqual(out[..., 2 * k : 2 * k + 2], np.roll(x, (dy, dx), axis=(2, 3)))
