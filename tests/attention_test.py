import numpy as np
import tensorflow as tf

from glom_tf.attention import SameLevelAttention
from tests.test_case import GlomTestCase


def neighbourhoods(seed=0, shape=(3, 32, 9, 6)):  # (G, N, K, D)
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def attention(weighting="similarity", consensus=False, key_dim=0, beta=1.0, output_scale=0.1, dropout=0.0):
    return SameLevelAttention(
        groups=3,
        units=6,
        weighting=weighting,
        key_dim=key_dim,
        beta=beta,
        consensus=consensus,
        dropout=dropout,
        output_scale=output_scale,
    )


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def similarity_weights(x, beta):
    """NumPy: softmax over k of beta * x_centre . x_k / sqrt(D); x (G, N, K, D) -> (G, N, K)."""
    centre = x[:, :, x.shape[2] // 2]  # (G, N, D)
    logits = np.einsum("gnd,gnkd->gnk", centre, x) * beta / np.sqrt(x.shape[-1])
    return softmax(logits)


class SameLevelAttentionTest(GlomTestCase):
    def test_layer_contract(self):
        kwargs = {
            "groups": 3,
            "units": 6,
            "weighting": "learned",
            "key_dim": 4,
            "beta": 1.5,
            "consensus": False,
            "dropout": 0.0,
            "output_scale": 0.1,
        }
        self.run_layer_test(SameLevelAttention, kwargs, neighbourhoods(), (3, 32, 6), batch_axis=1)
        consensus = {**kwargs, "consensus": True}  # learned q/k, no network
        self.run_layer_test(SameLevelAttention, consensus, neighbourhoods(), (3, 32, 6), batch_axis=1)

    def test_weights_are_a_softmax_that_prefers_similar_neighbours(self):
        x = neighbourhoods(1)
        x[..., 0, :] = x[..., 4, :]  # neighbour 0 equals the cell itself
        x[..., 8, :] = -x[..., 4, :]  # neighbour 8 is its opposite
        layer = attention()
        weights = np.asarray(layer.attention_weights(x))
        self.assertEqual(weights.shape, (3, 32, 9))
        self.assertAllClose(weights.sum(-1), np.ones(weights.shape[:-1]), atol=1e-5)
        self.assertTrue(np.all(weights[..., 0] > weights[..., 8]))

    def test_consensus_is_the_similarity_weighted_average_of_the_neighbours(self):
        x = neighbourhoods(5)
        for beta in (1.0, 3.0):
            layer = attention("similarity", consensus=True, beta=beta)
            out, weights = layer(x)
            expected_w = similarity_weights(x, beta)
            self.assertAllClose(weights, expected_w, atol=1e-5)
            expected = np.einsum("gnk,gnkd->gnd", expected_w, x)  # sum_k w_k x_k
            self.assertAllClose(out, expected, atol=1e-5)
            self.assertEqual(layer.trainable_variables, [])  # the paper's term: no network
        # A larger beta sharpens the weights (lower entropy).
        sharp = np.asarray(attention("similarity", consensus=True, beta=3.0)(x)[1])
        soft = np.asarray(attention("similarity", consensus=True, beta=1.0)(x)[1])
        entropy = lambda w: float(-(w * np.log(w)).sum(-1).mean())
        self.assertLess(entropy(sharp), entropy(soft))

    def test_plain_consensus_is_the_mean_of_the_neighbours(self):
        x = neighbourhoods(6)
        out, weights = attention("plain", consensus=True)(x)
        self.assertAllClose(weights, np.full((3, 32, 9), 1 / 9), atol=1e-7)
        self.assertAllClose(out, x.mean(axis=2), atol=1e-6)

    def test_learned_consensus_weights_from_the_projections(self):
        x = neighbourhoods(7)
        layer = attention("learned", consensus=True, key_dim=4, beta=2.0)
        out, weights = layer(x)
        wq, wk = layer.query.kernel.numpy(), layer.key.kernel.numpy()  # (G, D, E)
        q = np.einsum("gnd,gde->gne", x[:, :, 4], wq)
        k = np.einsum("gnkd,gde->gnke", x, wk)
        expected_w = softmax(np.einsum("gne,gnke->gnk", q, k) * 2.0 / np.sqrt(4))
        self.assertAllClose(weights, expected_w, atol=1e-5)
        self.assertAllClose(out, np.einsum("gnk,gnkd->gnd", expected_w, x), atol=1e-5)

    def test_plain_mlp_is_the_network_on_the_plain_concatenation(self):
        # The notebook: the same-level network reads the 9 neighbours concatenated, unweighted.
        x = neighbourhoods(3)
        layer = attention("plain", output_scale=1.0)
        out, weights = layer(x)
        self.assertAllClose(weights, np.full((3, 32, 9), 1 / 9), atol=1e-7)
        self.assertAllClose(out, layer.mlp(np.reshape(x, (3, 32, 54))), atol=1e-6)

    def test_similarity_mlp_reads_the_rescaled_neighbourhood(self):
        # Neighbours rescaled by K * weight: differs from the plain concatenation, and equals it
        # when every neighbour is the same vector (uniform weights).
        x = neighbourhoods(3)
        layer = attention("similarity", output_scale=1.0)
        out, weights = layer(x)
        w = similarity_weights(x, 1.0)
        self.assertAllClose(weights, w, atol=1e-5)
        scaled = x * (9 * w[..., None])
        self.assertAllClose(out, layer.mlp(np.reshape(scaled, (3, 32, 54))), atol=1e-5)
        self.assertGreater(float(np.std(weights)), 0.01)
        self.assertNotAllClose(out, layer.mlp(np.reshape(x, (3, 32, 54))))
        same = np.repeat(x[..., 4:5, :], 9, axis=-2)
        out_same, w_same = layer(same)
        self.assertAllClose(w_same, np.full(w_same.shape, 1 / 9), atol=1e-6)
        self.assertAllClose(out_same, layer.mlp(np.reshape(same, (3, 32, 54))), atol=1e-5)

    def test_attention_is_live_learned(self):
        x = neighbourhoods(2)
        for consensus in (False, True):  # with consensus the weights are the only path to q/k
            layer = attention("learned", consensus=consensus, key_dim=4, output_scale=1.0)
            with tf.GradientTape() as tape:
                out, weights = layer(x)
                loss = tf.reduce_sum(tf.square(out - 1.0))
            grads = tape.gradient(loss, layer.trainable_variables)
            names = [v.path for v in layer.trainable_variables]
            self.assertTrue(any("query" in n for n in names) and any("key" in n for n in names))
            self.assertEqual(any("mlp" in n for n in names), not consensus)
            for name, grad in zip(names, grads):
                self.assertIsNotNone(grad, name)
                self.assertGreater(float(tf.reduce_max(tf.abs(grad))), 0.0, name)
            # Changing only the query/key projections changes the weights and the output.
            layer.query.kernel.assign(layer.query.kernel * 3.0 + 0.5)
            out2, weights2 = layer(x)
            self.assertNotAllClose(weights, weights2)
            self.assertNotAllClose(out, out2)

    def test_gradient_reaches_the_input_through_the_similarity_weights(self):
        # Parameter-free consensus attention: d out / d x has a term through the softmax weights.
        x = tf.constant(neighbourhoods(4))
        layer = attention("similarity", consensus=True)
        plain = attention("plain", consensus=True)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)[0]))
            loss_plain = tf.reduce_sum(tf.square(plain(x)[0]))
        g, g_plain = tape.gradient(loss, x), tape.gradient(loss_plain, x)
        self.assertGreater(float(tf.reduce_max(tf.abs(g))), 0.0)
        # Finite difference on one centre entry against the analytic gradient.
        e = np.zeros(x.shape, "float32")
        e[0, 0, 4, 0] = 1e-2
        diff = (
            float(tf.reduce_sum(tf.square(layer(x + e)[0])))
            - float(tf.reduce_sum(tf.square(layer(x - e)[0])))
        ) / 2e-2
        self.assertAllClose(diff, float(g[0, 0, 4, 0]), rtol=2e-2, atol=1e-3)
        self.assertNotAllClose(g, g_plain)

    def test_rejects_unknown_weighting(self):
        with self.assertRaisesRegex(ValueError, "weighting must be one of"):
            attention("none")
