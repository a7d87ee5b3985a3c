import os
from unittest import mock

import keras
import numpy as np
import tensorflow as tf

import glom_tf
from glom_tf import islands, objectives
from glom_tf.readout import CellLoss
from tests.objectives_test import nesting_reference, object_reference, part_reference, sharpness_reference
from tests.test_case import GlomTestCase, mnist_digits
from training.recipe import compile_model


def tiny(**overrides):
    return glom_tf.get_preset("tiny").with_overrides(**overrides)


def gradients(model, x, y, loss, jit=False):
    def grads():
        with tf.GradientTape() as tape:
            value = loss(y, model(x, training=True))
        return value, tape.gradient(value, model.trainable_variables)

    return tf.function(grads, jit_compile=True)() if jit else grads()


class GlomModelTest(GlomTestCase):
    def test_seed_preset_has_the_originals_9040_parameters(self):
        model = glom_tf.build_model(glom_tf.get_preset("seed"))
        self.assertEqual(model.count_params(), 9040)
        self.assertEqual(sum(int(np.prod(w.shape)) for w in model.trainable_weights), 9040)
        x, _ = mnist_digits(2)
        self.assertEqual(tuple(model(x).shape), (2, 28, 28, 10))

    def test_shapes_and_intermediates(self):
        config = tiny(steps=3)
        model = glom_tf.build_model(config)
        x, _ = mnist_digits(3)
        out = model.unroll(x)
        self.assertEqual(tuple(out["scores"].shape), (3, 4, 4, 10))
        self.assertEqual(tuple(out["states"].shape), (4, 3, 4, 4, 3, 8))  # (T+1, B, h, w, L, D)
        self.assertEqual(tuple(out["attention"].shape), (3, 3, 4, 4, 2, 9))  # (T, B, h, w, L-1, 9)
        self.assertAllClose(out["scores"], model(x))
        probabilities, classes, agreement = model.predict_readout(x)
        # The mean readout in numpy: softmax of the cells' mean scores; agreement = the share of
        # cells whose own argmax is the image's class.
        scores = np.asarray(model(x), np.float64)  # (B, h, w, classes)
        mean = scores.mean((1, 2))
        want = np.exp(mean - mean.max(-1, keepdims=True))
        want /= want.sum(-1, keepdims=True)
        self.assertEqual(model.readout, "mean")
        self.assertAllClose(probabilities, want, atol=1e-5)
        self.assertAllEqual(classes, want.argmax(-1))
        self.assertAllClose(agreement, (scores.argmax(-1) == want.argmax(-1)[:, None, None]).mean((1, 2)))
        self.assertEqual(tuple(probabilities.shape), (3, 10))
        self.assertAllClose(np.sum(probabilities, -1), np.ones(3), atol=1e-5)
        self.assertTrue(np.all((np.asarray(agreement) > 0) & (np.asarray(agreement) <= 1)))

    def test_initial_state_options(self):
        x, _ = mnist_digits(2)
        for init in ("uniform", "zeros", "learned"):
            model = glom_tf.build_model(tiny(init_state=init))
            bottom = model.embed_images(x)
            state = np.asarray(model.initial_state(bottom))
            self.assertEqual(state.shape, (2, 4, 4, 3, 8))
            self.assertAllClose(state[:, :, :, 0], bottom)
            upper = state[:, :, :, 1:]
            if init == "zeros":
                self.assertAllEqual(upper, np.zeros_like(upper))
            else:
                self.assertTrue(np.all((upper >= 0) & (upper < 0.1)) and upper.std() > 0)
            self.assertEqual(len(model.trainable_weights), 25 if init == "learned" else 24)
        # Uniform: fixed at inference (deterministic), drawn anew in training.
        model = glom_tf.build_model(tiny(init_state="uniform"))
        bottom = model.embed_images(x)
        self.assertAllClose(model.initial_state(bottom), model.initial_state(bottom))
        self.assertNotAllClose(
            model.initial_state(bottom, training=True), model.initial_state(bottom, training=True)
        )

    def test_position_breaks_the_torus_translation_symmetry(self):
        # Without a location every cell runs the same networks on a torus from the same learned
        # initial state: moving the image by one cell (7 pixels on the tiny 4x4 grid, wrapping)
        # moves the scores by one cell. With a location (either place) it does not.
        x, _ = mnist_digits(2)
        moved = np.roll(x, 7, axis=2)  # one cell to the right
        for position in ("none", "input", "top_down"):
            with self.subTest(position=position):
                model = glom_tf.build_model(tiny(steps=3, position=position))
                for w in model.weights:
                    if "location" in w.path:
                        w.assign(np.random.default_rng(0).normal(size=w.shape))
                gap = np.abs(np.roll(np.asarray(model(x)), 1, axis=2) - np.asarray(model(moved))).max()
                if position == "none":
                    self.assertLess(gap, 1e-4)
                else:
                    self.assertGreater(gap, 1e-2)
        # position="input": level 0 is the patch embedding plus the cell's location.
        model = glom_tf.build_model(tiny(position="input"))
        patches = model.patches(x)
        embedded = np.asarray(model.embed(patches)) + np.asarray(model.location)  # (B, h, w, D)
        self.assertAllClose(model.embed_patches(patches), embedded, atol=1e-6)
        base = glom_tf.build_model(tiny()).count_params()
        self.assertEqual(model.count_params(), base + 4 * 4 * 8)  # one (grid, grid, dim) location
        self.assertEqual(glom_tf.build_model(tiny(position="top_down")).count_params(), base + 4 * 4 * 8)

    def test_keras_save_load_round_trip(self):
        x, _ = mnist_digits(4)
        configs = (
            tiny(),
            tiny(position="top_down"),
            tiny(position="input"),
            glom_tf.get_preset("seed").with_overrides(steps=4),
        )
        for config in configs:
            model = glom_tf.build_model(config)
            for w in model.weights:
                if "location" in w.path:  # far from its near-zero initial draw
                    w.assign(np.random.default_rng(2).normal(size=w.shape))
            compile_model(model, config)
            path = os.path.join(self.get_temp_dir(), "model.keras")
            model.save(path)
            loaded = keras.saving.load_model(path, safe_mode=True)
            self.assertIsInstance(loaded, glom_tf.GlomModel)
            self.assertEqual(loaded.get_config(), model.get_config())
            self.assertAllClose(loaded(x), model(x), atol=1e-6)

    def test_eager_and_xla_agree(self):
        config = glom_tf.get_preset("seed").with_overrides(steps=5)
        model = glom_tf.build_model(config)
        x, _ = mnist_digits(4)
        eager = model(x)
        xla = tf.function(lambda images: model(images), jit_compile=True)(x)
        self.assertAllClose(eager, xla, atol=1e-5)

    def test_remat_gives_the_same_gradients(self):
        # Dropout, noise, a uniform initial state and skips: every random draw is replayed.
        config = tiny(dropout=0.1, noise=0.01, init_state="uniform", skip_periods=(2, 1), steps=3)
        x, y = mnist_digits(4)
        loss = CellLoss("crossentropy")
        for jit in (False, True):
            plain = glom_tf.build_model(config.with_overrides(remat=False))
            remat = glom_tf.build_model(config.with_overrides(remat=True))
            remat.set_weights(plain.get_weights())
            loss_a, grads_a = gradients(plain, x, y, loss, jit)
            loss_b, grads_b = gradients(remat, x, y, loss, jit)
            self.assertAllClose(loss_a, loss_b, atol=1e-6)
            for a, b in zip(grads_a, grads_b):
                self.assertAllClose(a, b, atol=1e-5)
            self.assertGreater(max(float(tf.reduce_max(tf.abs(g))) for g in grads_a), 0.0)

    def test_attention_is_live_in_the_model(self):
        config = tiny(steps=4)  # level 1's agreement reaches the top level from step 3
        model = glom_tf.build_model(config)
        x, y = mnist_digits(4)
        _, grads = gradients(model, x, y, CellLoss("crossentropy"))
        for var, grad in zip(model.trainable_variables, grads):
            if "same_level" in var.path:
                self.assertGreater(float(tf.reduce_max(tf.abs(grad))), 0.0, var.path)
        before = model(x)
        model.step.same_level.query.kernel.assign(model.step.same_level.query.kernel * -2.0)
        self.assertNotAllClose(before, model(x))

    def test_activation_and_mlp_ratio_reach_every_network(self):
        # tiny: 3 levels x 8 dims, 3x3 neighbourhoods (72 inputs), learned attention with the
        # same-level networks: 2 bottom-up, 1 top-down and 2 same-level networks.
        def network(ratio):  # parameters of one network, hidden width 8 * ratio
            h = 8 * ratio
            out = h * 8 + 8 if ratio > 1 else 0  # the Dense back to dim
            return 72 * h + h + 2 * (h * h + h) + out

        base = glom_tf.build_model(tiny(steps=3))
        wide = glom_tf.build_model(tiny(steps=3, mlp_ratio=2))
        self.assertEqual(wide.count_params() - base.count_params(), 5 * (network(2) - network(1)))
        x, _ = mnist_digits(4)
        gelu = glom_tf.build_model(tiny(steps=3, activation="gelu"))
        gelu.set_weights(base.get_weights())  # the same weights: only the nonlinearity differs
        self.assertNotAllClose(base(x), gelu(x))
        layers = (gelu.step.bottom_up, gelu.step.top_down_mlp, gelu.step.same_level.mlp)
        self.assertEqual([layer.activation for layer in layers], ["gelu"] * 3)

    def test_tta_flip_averages_with_the_mirror_images_scores_at_inference_only(self):
        # tiny: 7x7 patches, a 4x4 grid. Deterministic training calls (no dropout, noise or
        # random initial state), so training can be compared too.
        options = dict(steps=3, dropout=0.0, noise=0.0, init_state="zeros")
        base = glom_tf.build_model(tiny(**options))
        tta = glom_tf.build_model(tiny(tta_flip=True, **options))
        self.assertEqual(tta.count_params(), base.count_params())  # no weights of its own
        tta.set_weights(base.get_weights())
        x, _ = mnist_digits(4)  # (4, 28, 28, 1)
        mirror = x[:, :, ::-1]  # each image mirrored left-right
        plain = np.asarray(base(x))  # (4, 4, 4, 10)
        expected = (plain + np.asarray(base(mirror))[:, :, ::-1]) / 2  # the mirror's cells put back
        self.assertNotAllClose(plain, expected)  # the digits are not mirror-symmetric
        self.assertAllClose(tta(x), expected, atol=1e-5)
        self.assertAllClose(tta(x[..., 0]), expected, atol=1e-5)  # (B, H, W) images alike
        # The answer is mirror-invariant: a mirrored image gets the mirrored scores.
        self.assertAllClose(tta(mirror), np.asarray(tta(x))[:, :, ::-1], atol=1e-5)
        # Training reads the image once, as without the option.
        self.assertAllClose(tta(x, training=True), base(x, training=True), atol=1e-6)

    def test_overfits_32_real_digits(self):
        config = tiny(steps=3, learning_rate=0.01)
        model = compile_model(glom_tf.build_model(config), config)
        x, y = mnist_digits(32)
        model.fit(x, y, batch_size=32, epochs=150, verbose=0)
        accuracy = np.mean(np.asarray(model.predict_readout(x)[1]) == y)
        self.assertGreaterEqual(accuracy, 0.9)

    def test_one_compiled_fit_step_under_both_losses_and_readouts(self):
        x, y = mnist_digits(8)
        for loss, kind in (("mse", "vote"), ("crossentropy", "mean")):
            config = glom_tf.get_preset("seed").with_overrides(steps=2, loss=loss, readout=kind)
            model = compile_model(glom_tf.build_model(config), config)
            before = model.get_weights()
            history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
            self.assertTrue(np.isfinite(history.history["loss"][0]))
            self.assertIn("agreement", history.history)
            self.assertTrue(any(not np.allclose(a, b) for a, b in zip(before, model.get_weights())))

    def test_jax_backend_builds_and_trains_with_the_objectives(self):
        script = (
            "import keras, numpy as np, glom_tf\n"
            "from training.recipe import compile_model\n"
            "assert keras.backend.backend() == 'jax'\n"
            "c = glom_tf.get_preset('tiny')\n"
            "print('BASE', glom_tf.build_model(c).count_params())\n"
            "c = c.with_overrides(dropout=0.1, noise=0.01, island_weight=0.5, denoise_weight=0.5)\n"
            "m = compile_model(glom_tf.build_model(c), c)\n"
            "x = np.random.default_rng(0).random((8, 28, 28, 1), dtype='float32')\n"
            "y = np.arange(8) % 10\n"
            "w = [v.copy() for v in m.get_weights()]\n"
            "h = m.fit(x, y, batch_size=4, epochs=1, verbose=0)\n"
            "for k in ('loss', 'island_loss', 'denoise_loss'):\n"
            "    assert np.isfinite(h.history[k][-1]) and h.history[k][-1] > 0, (k, h.history)\n"
            "assert any(not np.allclose(a, b) for a, b in zip(w, m.get_weights()))\n"
            "print('JAX-OK', m.count_params())\n"
        )
        out = self.run_under_jax(script)
        self.assertIn("BASE 4274", out)
        # The decoder: Dense(L*D -> p*p) = 3*8*49 + 49 parameters.
        self.assertIn(f"JAX-OK {4274 + 3 * 8 * 49 + 49}", out)


OBJECTIVES = {
    "island_weight": 0.5,
    "island_sharpness": 0.7,
    "island_nesting": 0.3,
    "denoise_weight": 2.0,
    "loss": "crossentropy",
}


def numpy_patches(images, p=7):
    """(B, 28, 28, 1) -> the normalised p x p patches (B, h, w, p*p), row-major inside a patch."""
    b, s = images.shape[0], images.shape[1]
    g = s // p
    x = (images[..., 0] - 0.1307) / 0.3081
    return x.reshape(b, g, p, g, p).transpose(0, 1, 3, 2, 4).reshape(b, g, g, p * p)


class ModelObjectivesTest(GlomTestCase):
    def test_fit_logs_the_objectives(self):
        config = tiny(**OBJECTIVES)
        model = compile_model(glom_tf.build_model(config), config, jit_compile=False)  # (XLA: below)
        x, y = mnist_digits(8)
        decoder = [w.copy() for w in model.decoder.get_weights()]
        history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # 2 steps
        for key in ("loss", "island_loss", "denoise_loss"):
            self.assertIn(key, history.history)
            self.assertTrue(np.isfinite(history.history[key][0]) and history.history[key][0] > 0, key)
        # The decoder is trained by the denoising term alone.
        self.assertTrue(any(not np.allclose(a, b) for a, b in zip(decoder, model.decoder.get_weights())))
        evaluation = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
        self.assertGreater(evaluation["island_loss"], 0.0)  # the island term is also an eval figure
        plain = glom_tf.build_model(tiny())
        self.assertIsNone(plain.decoder)
        self.assertFalse(hasattr(plain, "island_tracker"))

    def test_the_configs_island_terms_reach_the_island_loss(self):
        model = glom_tf.build_model(tiny(**OBJECTIVES))
        x, _ = mnist_digits(2)
        with mock.patch.object(objectives, "island_loss", wraps=objectives.island_loss) as loss:
            model(x, training=True)
        # state, mask, then scales, temperature, sharpness, high = (1 + threshold) / 2, nesting
        self.assertEqual(loss.call_args.args[2:], ((2, 0), 0.1, 0.7, (1 + 0.9) / 2, 0.3))

    def test_total_loss_is_cross_entropy_plus_the_weighted_terms(self):
        config = tiny(**OBJECTIVES)
        model = compile_model(glom_tf.build_model(config), config, jit_compile=False)
        x, y = mnist_digits(4)
        saved = np.asarray(model.seed_generator.state.value).copy()
        scores = model(x, training=True)
        total = float(model.compute_loss(x, y, scores, training=True))
        # Recompute the same training pass (the same random draws) and each term by hand.
        model.seed_generator.state.assign(saved)
        out = model.unroll(x, training=True, record=False)
        self.assertAllClose(out["scores"], scores, atol=1e-6)
        state = np.asarray(out["state"])  # (B, 4, 4, 3, 8)
        mask = islands.object_mask(x, 4).reshape(4, 16).astype("float32")
        level1 = state[:, :, :, 1].reshape(4, 16, 8)
        island = (
            part_reference(level1, mask, 2, 0.1)  # scales (2, 0)
            + 0.7 * sharpness_reference(level1, mask, (1 + 0.9) / 2)  # island_threshold 0.9
            + object_reference(state[:, :, :, 2].reshape(4, 16, 8), mask, 0.1)
        ) / 2 + 0.3 * nesting_reference(level1, state[:, :, :, 2].reshape(4, 16, 8), mask)  # levels 1-2
        # (0 for this untrained model, whose level 2 agrees more than level 1 at every pair: the
        # test above checks that island_nesting reaches the loss)
        patches, masked = numpy_patches(x), np.asarray(out["masked"])
        self.assertAllClose(out["patches"], patches, atol=1e-5)
        self.assertBetween(float(masked.mean()), 0.1, 0.45)  # mask_ratio 0.25 of 64 cells
        reconstruction = np.asarray(model.decoder(state.reshape(4, 4, 4, 24)))
        denoise = np.mean([np.mean((reconstruction[c] - patches[c]) ** 2) for c in zip(*np.nonzero(masked))])
        ce = float(CellLoss("crossentropy")(y, scores))
        self.assertAllClose(total, ce + 0.5 * island + 2.0 * denoise, rtol=1e-5)
        self.assertAllClose(float(model.island_tracker.result()), island, rtol=1e-5)
        self.assertAllClose(float(model.denoise_tracker.result()), denoise, rtol=1e-5)
        # Level 0 sees the masked patches as zeros (noise is 0 in the tiny preset).
        hidden = np.where(masked[..., None], 0.0, patches).astype("float32")
        self.assertAllClose(state[:, :, :, 0], model.embed_patches(hidden), atol=1e-5)

    def test_eager_xla_loop_and_unroll_agree_with_the_objectives(self):
        config = tiny(**OBJECTIVES, dropout=0.1, noise=0.01, skip_periods=(2,))
        x, y = mnist_digits(4)
        loss = CellLoss("crossentropy")
        results, weights = [], None
        for unroll, jit in ((False, False), (False, True), (True, False)):
            model = glom_tf.build_model(config.with_overrides(unroll_steps=unroll))
            if weights is None:
                weights = model.get_weights()
            model.set_weights(weights)

            def run(model=model):
                scores = model(x)
                island = tf.add_n(model.losses)  # evaluation: the island term only
                with tf.GradientTape() as tape:
                    train_scores = model(x, training=True)
                    total = loss(y, train_scores) + tf.add_n(model.losses)
                return scores, island, train_scores, total, tape.gradient(total, model.trainable_variables)

            results.append((tf.function(run, jit_compile=True) if jit else run)())
        reference = results[0]
        self.assertGreater(float(reference[1]), 0.0)
        for other in results[1:]:
            for a, b in zip(reference[:4], other[:4]):
                self.assertAllClose(a, b, atol=1e-5)
            for a, b in zip(reference[4], other[4]):
                self.assertAllClose(a, b, atol=1e-5)
