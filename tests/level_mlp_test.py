import numpy as np

from glom_tf.level_mlp import LevelMLP, LevelSeparableMLP, level_network
from tests.test_case import GlomTestCase


class LevelMLPTest(GlomTestCase):
    def test_layer_contract(self):
        x = np.random.default_rng(0).normal(size=(2, 9, 18)).astype("float32")  # (G, N, in)
        kwargs = {"groups": 2, "units": 4, "dropout": 0.1, "output_scale": 0.01}
        self.run_layer_test(LevelMLP, kwargs, x, (2, 9, 4), batch_axis=1)

    def test_original_network_size(self):
        # Dense(90->10), Dense(10->10), Dense(10->10) with biases: 1,130 per network.
        layer = LevelMLP(groups=3, units=10)
        layer.build((3, None, 90))
        self.assertEqual(layer.count_params(), 3 * 1130)

    def test_groups_must_match_the_input_group_axis(self):
        with self.assertRaisesRegex(ValueError, "groups=3"):
            LevelMLP(groups=3, units=10).build((2, None, 90))

    def test_matches_the_original_formula_per_group(self):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(2, 9, 6)).astype("float32")  # (G, N, in)
        layer = LevelMLP(groups=2, units=4, output_scale=0.01)
        out = np.asarray(layer(x))
        for g in range(2):
            w = {n: (getattr(layer, n).kernel.numpy()[g], getattr(layer, n).bias.numpy()[g]) for n in "qkv"}
            xg = x[g]
            q = np.tanh(xg @ w["q"][0] + w["q"][1])
            k = np.tanh(q @ w["k"][0] + w["k"][1]) + q
            v = np.tanh(k @ w["v"][0] + w["v"][1]) + q + k
            self.assertAllClose(out[g], 0.01 * v, atol=1e-6)

    def test_dropout_is_deterministic_for_a_seed_and_off_at_inference(self):
        x = np.ones((1, 18, 8), "float32")
        layer = LevelMLP(groups=1, units=8, dropout=0.5)
        seed = np.array([3, 4], "int32")
        a = layer(x, seed=seed, training=True)
        b = layer(x, seed=seed, training=True)
        c = layer(x, seed=np.array([5, 6], "int32"), training=True)
        self.assertAllClose(a, b)
        self.assertNotAllClose(a, c)
        self.assertAllClose(layer(x), layer(x, training=False))


def numpy_separable(layer, x, k):
    """LevelSeparableMLP's formula in numpy from its weights: (G, N, K*D) -> (G, N, units)."""
    g, n, kd = x.shape
    xs = x.reshape(g, n, k, kd // k)
    out = []
    for i in range(g):
        m = (xs[i] * layer.mix.numpy()[i]).sum(1) + layer.mix_bias.numpy()[i]  # (N, D)
        m = (m - m.mean(-1, keepdims=True)) / np.sqrt(m.var(-1, keepdims=True) + 1e-5)
        z = m @ layer.hidden.kernel.numpy()[i] + layer.hidden.bias.numpy()[i]
        h = 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))  # tanh GELU
        out.append(h @ layer.out.kernel.numpy()[i] + layer.out.bias.numpy()[i])
    return np.stack(out)


class LevelSeparableMLPTest(GlomTestCase):
    def test_layer_contract(self):
        x = np.random.default_rng(0).normal(size=(2, 9, 27)).astype("float32")  # (G, N, K*D)
        kwargs = {
            "groups": 2,
            "units": 3,
            "neighbours": 9,
            "expansion": 2,
            "dropout": 0.1,
            "output_scale": 0.1,
        }
        self.run_layer_test(LevelSeparableMLP, kwargs, x, (2, 9, 3), batch_axis=1)

    def test_size(self):
        # Per group: mix 9 x 10 + bias 10, Dense(10 -> 40) and Dense(40 -> 10) with biases.
        layer = LevelSeparableMLP(groups=3, units=10, neighbours=9, expansion=4)
        layer.build((3, None, 90))
        self.assertEqual(layer.count_params(), 3 * (90 + 10 + 440 + 410))

    def test_matches_the_formula_per_group(self):
        rng = np.random.default_rng(2)
        x = rng.normal(size=(2, 7, 5 * 4)).astype("float32")  # (G, N, K*D), K = 5, D = 4
        layer = LevelSeparableMLP(groups=2, units=3, neighbours=5, expansion=3, output_scale=0.5)
        layer.build(x.shape)
        # Weights away from their initial values, so that every term of the formula counts.
        layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()])
        self.assertAllClose(layer(x), 0.5 * numpy_separable(layer, x, 5), atol=1e-4)

    def test_starts_from_the_neighbourhood_mean(self):
        layer = LevelSeparableMLP(groups=1, units=2, neighbours=4)
        layer.build((1, None, 8))
        self.assertAllClose(layer.mix.numpy(), np.full((1, 4, 2), 0.25))

    def test_bad_input_shapes_are_refused(self):
        with self.assertRaisesRegex(ValueError, "groups=3, neighbours=9"):
            LevelSeparableMLP(groups=3, units=10, neighbours=9).build((2, None, 90))
        with self.assertRaisesRegex(ValueError, "groups=2, neighbours=9"):
            LevelSeparableMLP(groups=2, units=10, neighbours=9).build((2, None, 91))

    def test_dropout_is_deterministic_for_a_seed_and_off_at_inference(self):
        x = np.random.default_rng(3).normal(size=(1, 18, 9 * 8)).astype("float32")
        layer = LevelSeparableMLP(groups=1, units=8, neighbours=9, dropout=0.5)
        seed = np.array([3, 4], "int32")
        a = layer(x, seed=seed, training=True)
        self.assertAllClose(a, layer(x, seed=seed, training=True))
        self.assertNotAllClose(a, layer(x, seed=np.array([5, 6], "int32"), training=True))
        self.assertAllClose(layer(x), layer(x, training=False))
        self.assertNotAllClose(a, layer(x))

    def test_level_network_picks_the_config_kind(self):
        common = dict(groups=2, units=4, neighbours=9, expansion=2, dropout=0.0, output_scale=0.1)
        self.assertIsInstance(level_network("original", name="a", **common), LevelMLP)
        separable = level_network("separable", name="b", **common)
        self.assertIsInstance(separable, LevelSeparableMLP)
        self.assertEqual((separable.neighbours, separable.expansion), (9, 2))
        with self.assertRaisesRegex(ValueError, "cell_network must be one of original, separable"):
            level_network("wide", name="c", **common)
