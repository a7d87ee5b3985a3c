import keras
import numpy as np
import tensorflow as tf

from glom_tf.attention import SameLevelAttention
from tests.test_case import GlomTestCase


def neighbourhoods(seed=0, shape=(3, 32, 9, 6)):  # (G, N, K, D)
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


class SameLevelAttentionTest(GlomTestCase):
    def test_layer_contract(self):
        kwargs = {"groups": 3, "units": 6, "key_dim": 4, "dropout": 0.0, "output_scale": 0.1}
        self.run_layer_test(SameLevelAttention, kwargs, neighbourhoods(), (3, 32, 6), batch_axis=1)

    def test_weights_are_a_softmax_that_prefers_similar_neighbours(self):
        x = neighbourhoods(1)
        x[..., 0, :] = x[..., 4, :]  # neighbour 0 equals the cell itself
        x[..., 8, :] = -x[..., 4, :]  # neighbour 8 is its opposite
        layer = SameLevelAttention(groups=3, units=6)
        weights = np.asarray(layer.attention_weights(x))
        self.assertEqual(weights.shape, (3, 32, 9))
        self.assertAllClose(weights.sum(-1), np.ones(weights.shape[:-1]), atol=1e-5)
        self.assertTrue(np.all(weights[..., 0] > weights[..., 8]))

    def test_attention_is_live_learned(self):
        x = neighbourhoods(2)
        layer = SameLevelAttention(groups=3, units=6, key_dim=4, output_scale=1.0)
        with tf.GradientTape() as tape:
            out, weights = layer(x)
            loss = tf.reduce_sum(tf.square(out - 1.0))
        grads = tape.gradient(loss, layer.trainable_variables)
        names = [v.path for v in layer.trainable_variables]
        self.assertTrue(any("query" in n for n in names) and any("key" in n for n in names))
        for name, grad in zip(names, grads):
            self.assertIsNotNone(grad, name)
            self.assertGreater(float(tf.reduce_max(tf.abs(grad))), 0.0, name)
        # Changing only the query/key projections changes the weights and the output.
        layer.query.kernel.assign(layer.query.kernel * 3.0 + 0.5)
        out2, weights2 = layer(x)
        self.assertNotAllClose(weights, weights2)
        self.assertNotAllClose(out, out2)

    def test_similarity_attention_differs_from_plain_concatenation(self):
        # The original's dead attention reduced to the MLP on the plain neighbourhood.
        x = neighbourhoods(3)
        layer = SameLevelAttention(groups=3, units=6, output_scale=1.0)
        out, weights = layer(x)
        plain = layer.mlp(np.reshape(x, x.shape[:-2] + (54,)))  # (G, N, 9D)
        self.assertGreater(float(np.std(weights)), 0.01)
        self.assertNotAllClose(out, plain)
        # With identical neighbours the weights are uniform and it is the plain concatenation.
        same = np.repeat(x[..., 4:5, :], 9, axis=-2)
        out_same, w_same = layer(same)
        self.assertAllClose(w_same, np.full(w_same.shape, 1 / 9), atol=1e-6)
        self.assertAllClose(out_same, layer.mlp(np.reshape(same, same.shape[:-2] + (54,))), atol=1e-5)

    def test_similarity_attention_parameters_get_gradients(self):
        x = neighbourhoods(4)
        layer = SameLevelAttention(groups=3, units=6)
        with tf.GradientTape() as tape:
            out, _ = layer(x)
            loss = tf.reduce_sum(out)
        grads = tape.gradient(loss, layer.trainable_variables)
        self.assertTrue(all(float(tf.reduce_max(tf.abs(g))) > 0 for g in grads))
        self.assertEqual(keras.ops.shape(out), (3, 32, 6))
