import numpy as np
import tensorflow as tf

import glom_tf
from glom_tf import time_loop
from glom_tf.readout import CellLoss
from tests.test_case import GlomTestCase, mnist_digits

PERIODS = (3, 2)  # the original's skips are (15, 7, 3); short periods exercise them in 7 ticks


def toy_tick(t, state, skips, values):
    """A stand-in for the GLOM tick: a dense map, then the original's skip rule."""
    (w,) = values
    state = tf.tanh(state @ w) + 0.01 * tf.cast(t, state.dtype)  # (B, D)
    saved = []
    for period, skip in zip(PERIODS, skips):
        due = tf.equal(t % period, 0)
        state = tf.where(due, state + 0.5 * skip, state)
        saved.append(tf.where(due, state, skip))
    return state, tuple(saved)


def python_unrolled(state, w, steps):
    skips = (state,) * len(PERIODS)
    for t in range(steps):
        state, skips = toy_tick(tf.constant(t), state, skips, [w])
    return state, skips


class TimeLoopTest(GlomTestCase):
    def test_remat_loop_matches_python_unroll_values_and_gradients(self):
        rng = np.random.default_rng(0)
        state0 = tf.constant(rng.normal(size=(2, 3)), tf.float32)  # (B, D)
        w = tf.Variable(rng.normal(size=(3, 3)) * 0.5, dtype=tf.float32)
        for steps in (1, 6, 7):
            results = []
            for remat_loop in (False, True):
                with tf.GradientTape() as tape:
                    tape.watch(state0)
                    if remat_loop:
                        state, skips = time_loop.run_remat_tensorflow(
                            toy_tick, state0, [w.value()], steps, PERIODS
                        )
                    else:
                        state, skips = python_unrolled(state0, w, steps)
                    loss = tf.reduce_sum(state**2) + tf.reduce_sum(tf.stack(skips) * 0.3)
                results.append((state, skips, tape.gradient(loss, [state0, w])))
            (a_state, a_skips, a_grads), (b_state, b_skips, b_grads) = results
            self.assertAllClose(a_state, b_state, atol=1e-6)
            self.assertAllClose(a_skips, b_skips, atol=1e-6)
            for a, b in zip(a_grads, b_grads):
                self.assertAllClose(a, b, atol=1e-5)
            self.assertGreater(float(tf.reduce_max(tf.abs(b_grads[1]))), 0.0)

    def test_model_loop_matches_python_unroll(self):
        # Dropout, noise, a random initial state and skips: the loop replays every draw.
        config = glom_tf.get_preset("tiny").with_overrides(
            dropout=0.1, noise=0.01, init_state="uniform", skip_periods=PERIODS, steps=7
        )
        x, y = mnist_digits(4)
        loss = CellLoss("crossentropy")
        for remat in (True, False):
            for jit in (False, True):
                outputs = []
                for unroll in (True, False):
                    model = glom_tf.build_model(config.with_overrides(remat=remat, unroll_steps=unroll))
                    if outputs:
                        model.set_weights(outputs[0][3])

                    def step(model=model):
                        with tf.GradientTape() as tape:
                            scores = model(x, training=True)
                            value = loss(y, scores)
                        return scores, model(x), tape.gradient(value, model.trainable_variables)

                    run = tf.function(step, jit_compile=True) if jit else step
                    outputs.append((*run(), model.get_weights()))
                (a_train, a_infer, a_grads, _), (b_train, b_infer, b_grads, _) = outputs
                self.assertAllClose(a_train, b_train, atol=1e-5)
                self.assertAllClose(a_infer, b_infer, atol=1e-5)
                for a, b in zip(a_grads, b_grads):
                    self.assertAllClose(a, b, atol=1e-5)

    def test_jax_loop_matches_python_unroll(self):
        script = (
            "import keras, numpy as np, glom_tf\n"
            "from training.recipe import compile_model\n"
            "c = glom_tf.get_preset('tiny').with_overrides(\n"
            "    dropout=0.1, noise=0.01, skip_periods=(3, 2), steps=5,\n"
            "    same_level='consensus', update='average', learned_update_weights=True, state_norm=True)\n"
            "x = np.random.default_rng(0).random((4, 28, 28, 1), dtype='float32')\n"
            "y = np.arange(4)\n"
            "out = []\n"
            "for unroll in (True, False):\n"
            "    keras.utils.set_random_seed(0)\n"
            "    cu = c.with_overrides(unroll_steps=unroll)\n"
            "    m = compile_model(glom_tf.build_model(cu), cu)\n"
            "    m.train_on_batch(x, y)\n"
            "    out.append((m.predict_on_batch(x), m.get_weights()))\n"
            "(pa, wa), (pb, wb) = out\n"
            "assert np.allclose(pa, pb, atol=1e-5), np.abs(pa - pb).max()\n"
            "assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(wa, wb))\n"
            "print('JAX-LOOP-OK')\n"
        )
        self.assertIn("JAX-LOOP-OK", self.run_under_jax(script))

    def test_model_loop_matches_python_unroll_with_the_islands_options(self):
        # The paper's update: radius 2, consensus, a learned weighted average, state norm.
        config = glom_tf.get_preset("tiny").with_overrides(
            patch_size=4,  # a 7x7 grid holds the 5x5 neighbourhood
            radius=2,
            same_level="consensus",
            update="average",
            learned_update_weights=True,
            state_norm=True,
            dropout=0.1,
            noise=0.01,
            skip_periods=(2,),
            steps=3,
        )
        x, y = mnist_digits(2)
        loss = CellLoss("crossentropy")
        outputs = []
        for unroll in (True, False):
            model = glom_tf.build_model(config.with_overrides(unroll_steps=unroll))
            if outputs:
                model.set_weights(outputs[0][3])
            with tf.GradientTape() as tape:
                scores = model(x, training=True)
                value = loss(y, scores)
            grads = tape.gradient(value, model.trainable_variables)
            outputs.append((scores, model(x), grads, model.get_weights()))
        (a_train, a_infer, a_grads, _), (b_train, b_infer, b_grads, _) = outputs
        self.assertAllClose(a_train, b_train, atol=1e-5)
        self.assertAllClose(a_infer, b_infer, atol=1e-5)
        paths = [v.path for v in model.trainable_variables]
        self.assertTrue(any("update_logits" in p for p in paths))
        for path, a, b in zip(paths, a_grads, b_grads):
            self.assertAllClose(a, b, atol=1e-5, msg=path)
            if "update_logits" in path or "query" in path:
                self.assertGreater(float(tf.reduce_max(tf.abs(b))), 0.0, path)

    def test_tick_fn_and_pure_tick(self):
        # tick_fn (rematerialised when training) equals model.tick; pure_tick reads the step's
        # variables from the values passed in, not from the variables.
        config = glom_tf.get_preset("tiny").with_overrides(dropout=0.1, noise=0.01, skip_periods=(2,))
        model = glom_tf.build_model(config)
        x, _ = mnist_digits(2)
        state = model.initial_state(model.embed_images(x))
        skips = (state,)
        seed = tf.constant([3, 4], tf.int32)
        t = tf.constant(2, tf.int32)  # a skip tick (2 % 2 == 0)
        direct = model.tick(t, state, skips, seed, True)
        remat = time_loop.tick_fn(model, seed, True)(t, state, skips)
        for a, b in zip(tf.nest.flatten(direct), tf.nest.flatten(remat)):
            self.assertAllClose(a, b, atol=1e-6)
        pure, values = time_loop.pure_tick(model, seed, True)
        self.assertEqual(len(values), len(model.step.variables))
        same = pure(t, state, skips, values)
        for a, b in zip(tf.nest.flatten(direct), tf.nest.flatten(same)):
            self.assertAllClose(a, b, atol=1e-6)
        other = pure(t, state, skips, [v * 0.5 for v in values])
        self.assertNotAllClose(direct[0], other[0])
        # The skip rule: at a due tick the state gains skip_weight * skip and the skip saves it.
        self.assertAllClose(direct[1][0], direct[0])  # due: the skip saves the new state
        no_skip = model.tick(tf.constant(1, tf.int32), state, skips, seed, False)
        self.assertAllClose(no_skip[1][0], state)  # not due: the skip is unchanged
