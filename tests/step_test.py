import numpy as np
import tensorflow as tf

from glom_tf.step import GlomStep
from tests.test_case import GlomTestCase

STEP_DEFAULTS = {
    "radius": 1,
    "attention": "similarity",
    "attention_dim": 0,
    "attention_beta": 1.0,
    "same_level": "mlp",
    "update": "residual",
    "learned_update_weights": False,
    "state_norm": False,
    "top_down": True,
    "dropout": 0.0,
    "output_scale": 0.1,
    "noise": 0.0,
    "normalize": False,
}


def step(**overrides):
    return GlomStep(**{**STEP_DEFAULTS, **overrides})


def state(seed=0, shape=(2, 5, 5, 4, 6)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def neighbourhood(x, radius=1):
    """NumPy: level-major torus neighbourhoods. x (B, H, W, L, D) -> (L, B*H*W, K, D), the K
    neighbours in row-major order of the roll offsets (dy, dx), as np.roll(x, (dy, dx))."""
    span = range(-radius, radius + 1)
    rolled = [np.roll(x, (dy, dx), axis=(1, 2)) for dy in span for dx in span]
    nbhd = np.stack(rolled, axis=-2)  # (B, H, W, L, K, D)
    b, h, w, levels, k, d = nbhd.shape
    return np.transpose(nbhd, (3, 0, 1, 2, 4, 5)).reshape(levels, b * h * w, k, d)


def terms(layer, x):
    """(previous, bottom-up, top-down, same) per updated level, each (L-1, N, D), from the
    step's sub-layers called directly on NumPy neighbourhoods; top-down is 0 at the top."""
    levels, d = x.shape[3], x.shape[4]
    nbhd = neighbourhood(x, layer.radius)  # (L, N, K, D)
    rows = nbhd.reshape(levels, nbhd.shape[1], -1)  # (L, N, K*D)
    previous = np.transpose(x[:, :, :, 1:], (3, 0, 1, 2, 4)).reshape(levels - 1, -1, d)
    up = np.asarray(layer.bottom_up(rows[:-1]))
    down = np.zeros_like(up)
    if layer.top_down_mlp is not None:
        down[:-1] = np.asarray(layer.top_down_mlp(rows[2:]))
    same = np.zeros_like(up)
    if layer.same_level is not None:
        same = np.asarray(layer.same_level(nbhd[1:])[0])
    return previous, up, down, same


def to_state(x, upper):
    """Level 0 of x with the updated levels (L-1, N, D) -> (B, H, W, L, D)."""
    b, h, w, levels, d = x.shape
    upper = np.transpose(upper.reshape(levels - 1, b, h, w, d), (1, 2, 3, 0, 4))
    return np.concatenate([x[:, :, :, :1], upper], axis=3)


class GlomStepTest(GlomTestCase):
    def test_layer_contract(self):
        kwargs = {
            **STEP_DEFAULTS,
            "attention": "learned",
            "attention_dim": 3,
            "update": "average",
            "learned_update_weights": True,
            "dropout": 0.1,
            "noise": 1e-4,
            "position": True,
        }
        self.run_layer_test(GlomStep, kwargs, state(), (2, 5, 5, 4, 6))

    def test_position_adds_each_neighbours_location_to_the_top_down_input_only(self):
        x = state(11)
        layer = step(attention="learned", attention_dim=3, position=True)
        layer.build(x.shape)
        where = np.random.default_rng(5).normal(size=(5, 5, 6)).astype("float32")  # (H, W, D)
        layer.location.assign(where)
        new = np.asarray(layer(x)[0])
        previous, up, _, same = terms(layer, x)  # bottom-up and same level read no location
        # Top-down in numpy: the torus neighbourhood of (level l+1 + location), l = 1, 2.
        located = x + where[None, :, :, None, :]  # (B, H, W, L, D)
        rows = neighbourhood(located).reshape(4, 50, -1)  # (L, N, K*D)
        down = np.zeros_like(up)
        down[:-1] = np.asarray(layer.top_down_mlp(rows[2:]))
        self.assertAllClose(new, to_state(x, previous + up + down + same), atol=1e-5)
        # And the location is live: the same weights with the location zeroed give another state.
        layer.location.assign(np.zeros_like(where))
        self.assertGreater(np.abs(new - np.asarray(layer(x)[0])).max(), 1e-3)

    def test_residual_update_is_the_sum_of_the_terms(self):
        x = state(9)
        layer = step(attention="learned", attention_dim=3)
        new, weights = layer(x)
        previous, up, down, same = terms(layer, x)
        self.assertAllClose(new, to_state(x, previous + up + down + same), atol=1e-5)
        self.assertEqual(tuple(weights.shape), (2, 5, 5, 3, 9))

    def test_average_update_is_the_equal_weighted_average_of_the_terms(self):
        x = state(1)
        for same_level in ("mlp", "consensus"):
            layer = step(update="average", same_level=same_level)
            new = np.asarray(layer(x)[0])
            previous, up, down, same = terms(layer, x)
            expected = (previous + up + down + same) / 4.0
            expected[-1] = (previous[-1] + up[-1] + same[-1]) / 3.0  # no top-down at the top
            self.assertAllClose(new, to_state(x, expected), atol=1e-5)
            self.assertAllClose(
                layer.term_weights(4), [[0.25] * 4, [0.25] * 4, [1 / 3, 1 / 3, 0, 1 / 3]], atol=1e-7
            )
        # Without a same-level term: the average of previous, bottom-up (and top-down).
        layer = step(update="average", attention="none")
        new = np.asarray(layer(x)[0])
        previous, up, down, _ = terms(layer, x)
        expected = (previous + up + down) / 3.0
        expected[-1] = (previous[-1] + up[-1]) / 2.0
        self.assertAllClose(new, to_state(x, expected), atol=1e-5)

    def test_consensus_residual_adds_the_neighbours_weighted_average(self):
        x = state(10)
        layer = step(same_level="consensus", attention="plain", top_down=False)
        new = np.asarray(layer(x)[0])
        previous, up, _, _ = terms(layer, x)
        mean = neighbourhood(x).mean(axis=2)[1:]  # (L-1, N, D): the plain average of the 9
        self.assertAllClose(new, to_state(x, previous + up + mean), atol=1e-5)

    def test_state_norm_gives_zero_mean_unit_variance(self):
        x = state(2) * 3.0 + 1.0
        layer = step(update="average", state_norm=True, noise=0.0)
        new = np.asarray(layer(x, seed=np.array([1, 2], "int32"), training=True)[0])
        upper = new[:, :, :, 1:]
        self.assertAllClose(upper.mean(-1), np.zeros(upper.shape[:-1]), atol=1e-5)
        self.assertAllClose(upper.var(-1), np.ones(upper.shape[:-1]), atol=1e-3)  # (epsilon 1e-5)
        self.assertAllEqual(new[:, :, :, 0], x[:, :, :, 0])  # level 0 unchanged (noise 0)
        # The normalised average, computed by hand.
        previous, up, down, same = terms(layer, x)
        expected = (previous + up + down + same) / 4.0
        expected[-1] = (previous[-1] + up[-1] + same[-1]) / 3.0
        centred = expected - expected.mean(-1, keepdims=True)
        expected = centred / np.sqrt((centred**2).mean(-1, keepdims=True) + 1e-5)
        self.assertAllClose(np.asarray(layer(x)[0]), to_state(x, expected), atol=1e-4)

    def test_learned_update_weights(self):
        x = state(3)
        layer = step(update="average", learned_update_weights=True, attention="learned", attention_dim=3)
        new = np.asarray(layer(x)[0])
        self.assertEqual(tuple(layer.update_logits.shape), (3, 4))  # (L-1, terms)
        previous, up, down, same = terms(layer, x)
        fixed = (previous + up + down + same) / 4.0
        fixed[-1] = (previous[-1] + up[-1] + same[-1]) / 3.0
        self.assertAllClose(new, to_state(x, fixed), atol=1e-5)  # zero logits: the equal weights
        # Other logits: a softmax per level over the terms present (no top-down at the top).
        logits = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
        layer.update_logits.assign(logits)
        present = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 1]], bool)
        mix = np.where(present, np.exp(logits), 0.0)
        mix /= mix.sum(-1, keepdims=True)
        self.assertAllClose(layer.term_weights(4), mix, atol=1e-6)
        stacked = np.stack([previous, up, down, same], axis=2)  # (L-1, N, 4, D)
        expected = np.einsum("lt,lntd->lnd", mix, stacked)
        self.assertAllClose(layer(x)[0], to_state(x, expected), atol=1e-5)

    def test_gradients_reach_the_update_weights_and_the_attention(self):
        # Learned attention with the consensus term: the query/key projections reach the output
        # only through the softmax weights, and the update logits only through the mixture.
        x = tf.constant(state(4))
        for same_level in ("consensus", "mlp"):
            layer = step(
                update="average",
                learned_update_weights=True,
                same_level=same_level,
                attention="learned",
                attention_dim=3,
                state_norm=True,
            )
            with tf.GradientTape() as tape:
                new, _ = layer(x)
                loss = tf.reduce_sum(tf.square(new[:, :, :, 1:] - 0.5) * tf.range(6, dtype=tf.float32))
            variables = layer.trainable_variables
            grads = dict(zip([v.path for v in variables], tape.gradient(loss, variables)))
            for path in ("update_logits", "query", "key"):
                matched = [g for p, g in grads.items() if path in p]
                self.assertTrue(matched, path)
                for g in matched:
                    self.assertGreater(float(tf.reduce_max(tf.abs(g))), 0.0, (same_level, path))
            # The top level's top-down logit gets no gradient: the term is absent there.
            logits_grad = [g for p, g in grads.items() if "update_logits" in p][0]
            self.assertEqual(float(logits_grad[-1, 2]), 0.0)

    def test_level_zero_gets_no_update_only_training_noise(self):
        import tensorflow as tf

        x = state(1)
        seed = tf.constant([3, 4], "int32")
        for training in (False, True):  # dropout on in training
            new, weights = step(dropout=0.2)(x, seed=seed, training=training)
            self.assertAllEqual(np.asarray(new)[:, :, :, 0], x[:, :, :, 0])
            self.assertNotAllClose(np.asarray(new)[:, :, :, 1:], x[:, :, :, 1:])
            self.assertEqual(tuple(weights.shape), (2, 5, 5, 3, 9))
        # Training noise (as in the original notebook) reaches every level, level 0 included.
        new, _ = step(noise=0.5)(x, seed=seed, training=True)
        moved = np.asarray(new)[:, :, :, 0] - x[:, :, :, 0]
        self.assertTrue(np.all((moved >= 0) & (moved < 0.5)) and moved.std() > 0)

    def test_radius_two(self):
        x = state(11, (1, 6, 6, 3, 4))
        layer = step(radius=2, update="average")
        new, weights = layer(x)
        self.assertEqual(tuple(weights.shape), (1, 6, 6, 2, 25))
        previous, up, down, same = terms(layer, x)
        expected = (previous + up + down + same) / 4.0
        expected[-1] = (previous[-1] + up[-1] + same[-1]) / 3.0
        self.assertAllClose(new, to_state(x, expected), atol=1e-5)

    def test_networks_per_kind(self):
        # 4 levels: 3 bottom-up, 2 top-down, 3 same-level networks of 1,130 parameters.
        layer = step(attention="plain", output_scale=0.01)
        layer.build((None, 28, 28, 4, 10))
        self.assertEqual(layer.bottom_up.count_params(), 3 * 1130)  # (grouped kernels)
        self.assertEqual(layer.top_down_mlp.count_params(), 2 * 1130)
        self.assertEqual(layer.same_level.count_params(), 3 * 1130)
        consensus = step(attention="plain", same_level="consensus")
        consensus.build((None, 28, 28, 4, 10))
        self.assertEqual(consensus.same_level.count_params(), 0)  # no network

    def test_ablations_remove_their_networks(self):
        x = state(2)
        no_td = step(top_down=False)
        no_att = step(attention="none")
        _, weights = no_att(x)
        no_td(x)
        self.assertIsNone(no_td.top_down_mlp)
        self.assertIsNone(no_att.same_level)
        self.assertAllClose(weights, np.full((2, 5, 5, 3, 9), 1 / 9))

    def test_top_level_gets_no_top_down(self):
        # Changing the top-down network changes levels 1..L-2 but not the top level.
        x = state(3)
        layer = step(attention="none")
        before = np.asarray(layer(x)[0])
        layer.top_down_mlp.q.kernel.assign(layer.top_down_mlp.q.kernel + 0.5)
        after = np.asarray(layer(x)[0])
        self.assertAllClose(before[:, :, :, 3], after[:, :, :, 3])
        self.assertNotAllClose(before[:, :, :, 1:3], after[:, :, :, 1:3])

    def test_noise_only_when_training(self):
        x = state(4)
        layer = step(noise=0.5)
        seed = np.array([1, 2], "int32")
        quiet = np.asarray(layer(x)[0])
        noisy = np.asarray(layer(x, seed=seed, training=True)[0])
        self.assertAllClose(quiet, np.asarray(layer(x, training=False)[0]))
        diff = noisy - quiet
        self.assertTrue(np.all(diff >= -1e-5) and np.all(diff < 0.5 + 1e-5))
        self.assertGreater(float(diff.mean()), 0.2)
        self.assertGreater(float(diff[:, :, :, 0].mean()), 0.2)  # level 0 too, as in the original
