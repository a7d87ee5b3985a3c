import numpy as np

from glom_tf.level_mlp import LevelMLP
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

    def test_gelu_and_a_wider_hidden_layer_match_their_formula(self):
        rng = np.random.default_rng(2)
        x = rng.normal(size=(2, 5, 6)).astype("float32")  # (G, N, in)
        layer = LevelMLP(groups=2, units=4, output_scale=0.1, activation="gelu", mlp_ratio=3)
        out = np.asarray(layer(x))
        self.assertEqual(out.shape, (2, 5, 4))

        def gelu(z):  # GELU's tanh approximation (Keras's default), written out
            return 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z**3)))

        for g in range(2):
            w = {
                n: (layer.dense[n].kernel.numpy()[g], layer.dense[n].bias.numpy()[g])
                for n in ("q", "k", "v", "out")
            }
            self.assertEqual(w["q"][0].shape, (6, 12))  # hidden width 3 x 4
            q = gelu(x[g] @ w["q"][0] + w["q"][1])
            k = gelu(q @ w["k"][0] + w["k"][1]) + q
            v = gelu(k @ w["v"][0] + w["v"][1]) + q + k
            self.assertAllClose(out[g], 0.1 * (v @ w["out"][0] + w["out"][1]), atol=1e-5)

    def test_wider_hidden_layer_size_and_unknown_activation(self):
        # Dense(90->20), Dense(20->20), Dense(20->20), Dense(20->10), biases: 2,650 per network.
        layer = LevelMLP(groups=3, units=10, mlp_ratio=2)
        layer.build((3, None, 90))
        self.assertEqual(layer.count_params(), 3 * (90 * 20 + 20 + 2 * (20 * 20 + 20) + 20 * 10 + 10))
        with self.assertRaisesRegex(ValueError, "activation"):
            LevelMLP(groups=1, units=4, activation="relu")

    def test_options_round_trip(self):
        x = np.random.default_rng(0).normal(size=(2, 9, 18)).astype("float32")  # (G, N, in)
        kwargs = {"groups": 2, "units": 4, "dropout": 0.1, "activation": "gelu", "mlp_ratio": 2}
        self.run_layer_test(LevelMLP, kwargs, x, (2, 9, 4), batch_axis=1)
