import numpy as np

from glom_tf.step import GlomStep
from tests.test_case import GlomTestCase


def state(seed=0, shape=(2, 5, 5, 4, 6)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


class GlomStepTest(GlomTestCase):
    def test_layer_contract(self):
        kwargs = {
            "levels": 4,
            "dim": 6,
            "attention": "learned",
            "attention_dim": 3,
            "top_down": True,
            "dropout": 0.1,
            "output_scale": 0.1,
            "noise": 1e-4,
        }
        self.run_layer_test(GlomStep, kwargs, state(), (2, 5, 5, 4, 6))

    def test_level_zero_is_never_updated(self):
        x = state(1)
        new, weights = GlomStep(levels=4, dim=6)(x)
        self.assertAllEqual(np.asarray(new)[:, :, :, 0], x[:, :, :, 0])
        self.assertNotAllClose(np.asarray(new)[:, :, :, 1:], x[:, :, :, 1:])
        self.assertEqual(tuple(weights.shape), (2, 5, 5, 3, 9))

    def test_networks_per_kind(self):
        # 4 levels: 3 bottom-up, 2 top-down, 3 same-level networks of 1,130 parameters.
        layer = GlomStep(levels=4, dim=10)
        layer.build((None, 28, 28, 4, 10))
        self.assertEqual(layer.bottom_up.count_params(), 3 * 1130)  # (grouped kernels)
        self.assertEqual(layer.top_down_mlp.count_params(), 2 * 1130)
        self.assertEqual(layer.same_level.count_params(), 3 * 1130)

    def test_ablations_remove_their_networks(self):
        x = state(2)
        no_td = GlomStep(levels=4, dim=6, top_down=False)
        no_att = GlomStep(levels=4, dim=6, attention="none")
        _, weights = no_att(x)
        no_td(x)
        self.assertIsNone(no_td.top_down_mlp)
        self.assertIsNone(no_att.same_level)
        self.assertAllClose(weights, np.full((2, 5, 5, 3, 9), 1 / 9))

    def test_top_level_gets_no_top_down(self):
        # Changing the top-down network changes levels 1..L-2 but not the top level.
        x = state(3)
        layer = GlomStep(levels=4, dim=6, attention="none")
        before = np.asarray(layer(x)[0])
        layer.top_down_mlp.q.kernel.assign(layer.top_down_mlp.q.kernel + 0.5)
        after = np.asarray(layer(x)[0])
        self.assertAllClose(before[:, :, :, 3], after[:, :, :, 3])
        self.assertNotAllClose(before[:, :, :, 1:3], after[:, :, :, 1:3])

    def test_noise_only_when_training(self):
        x = state(4)
        layer = GlomStep(levels=3, dim=6, noise=0.5)
        seed = np.array([1, 2], "int32")
        quiet = np.asarray(layer(x)[0])
        noisy = np.asarray(layer(x, seed=seed, training=True)[0])
        self.assertAllClose(quiet, np.asarray(layer(x, training=False)[0]))
        diff = noisy - quiet
        self.assertTrue(np.all(diff >= -1e-5) and np.all(diff < 0.5 + 1e-5))
        self.assertGreater(float(diff.mean()), 0.2)
