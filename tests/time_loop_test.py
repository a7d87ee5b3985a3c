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
            "c = glom_tf.get_preset('tiny').with_overrides(\n"
            "    dropout=0.1, noise=0.01, skip_periods=(3, 2), steps=5)\n"
            "x = np.random.default_rng(0).random((4, 28, 28, 1), dtype='float32')\n"
            "y = np.arange(4)\n"
            "out = []\n"
            "for unroll in (True, False):\n"
            "    keras.utils.set_random_seed(0)\n"
            "    cu = c.with_overrides(unroll_steps=unroll)\n"
            "    m = glom_tf.compile_model(glom_tf.build_model(cu), cu)\n"
            "    m.train_on_batch(x, y)\n"
            "    out.append((m.predict_on_batch(x), m.get_weights()))\n"
            "(pa, wa), (pb, wb) = out\n"
            "assert np.allclose(pa, pb, atol=1e-5), np.abs(pa - pb).max()\n"
            "assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(wa, wb))\n"
            "print('JAX-LOOP-OK')\n"
        )
        self.assertIn("JAX-LOOP-OK", self.run_under_jax(script))
