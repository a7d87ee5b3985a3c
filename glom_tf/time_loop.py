"""The T time steps as one symbolic loop: one compiled step body instead of T copies.

Unrolling 30 GLOM steps in Python makes XLA compile 30 copies of the step and their
gradients (seed preset, batch 16: 201 s and a 9.4 GiB peak). A loop compiles one.

`tick(t, state, skips)` advances the state by time step t (a scalar int32 tensor) and
returns (state, skips): `skips` are the original's saved-state accumulators, a tuple of
tensors shaped like the state. `run` differentiates through the backend's own loop.
`run_remat_tensorflow` is the training path on TensorFlow with rematerialisation: a
hand-written backward loop that keeps only the state entering each step and recomputes
the step from it. TensorFlow's own while-loop gradient with `tf.recompute_grad` inside
the body cannot be built (the recompute reads variables that the loop gradient does not
capture), and a TensorArray of stacked states was 1.4x slower than the preallocated
buffers used here (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import ops


def pure_tick(model, base_seed, training: bool):
    """`model.tick` that reads the step's variables from `values` (a list of tensors)."""
    variables = model.step.variables

    def tick(t, state, skips, values):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return model.tick(t, state, skips, base_seed, training)

    return tick, [v.value for v in variables]


def tick_fn(model, base_seed, training: bool) -> Callable:
    """tick(t, state, skips) -> (state, skips, weights), rematerialised when training with
    `model.remat` (the function then takes the variables' values as arguments, as JAX's
    remat requires)."""
    if not (model.remat and training):
        return lambda t, state, skips: model.tick(t, state, skips, base_seed, training)
    pure, values = pure_tick(model, base_seed, training)
    n = len(model.skip_periods)

    def tick(t, state, skips):
        def flat(state, *rest):  # remat takes flat tensor arguments
            return pure(t, state, rest[:n], list(rest[n:]))

        return keras.remat(flat)(state, *skips, *values)

    return tick


def start_skips(model, state) -> tuple:
    """The original's skip accumulators before the first step: copies of the initial state."""
    return (state,) * len(model.skip_periods)


def run_steps(model, state, base_seed, training: bool):
    """The model's T steps from the initial state as one symbolic loop; returns (state,
    skips). The skip accumulators start as copies of the initial state (the original's)."""
    if training and model.remat and keras.backend.backend() == "tensorflow":
        pure, values = pure_tick(model, base_seed, training)
        return run_remat_tensorflow(
            lambda *args: pure(*args)[:2], state, values, model.steps, model.skip_periods
        )
    tick = tick_fn(model, base_seed, training)
    return run(lambda *args: tick(*args)[:2], state, start_skips(model, state), model.steps)


def run(tick: Callable, state, skips: tuple, steps: int):
    """Runs ticks 0..steps-1 as a loop; returns (state, skips). Differentiable."""

    def body(t, carry):
        return tick(t, *carry)

    if keras.backend.backend() == "tensorflow":
        # XLA needs a trip count to differentiate a while loop (fori_loop passes none).
        _, carry = ops.while_loop(
            lambda t, _: t < steps,
            lambda t, carry: (t + 1, body(t, carry)),
            (ops.convert_to_tensor(0, "int32"), (state, skips)),
            maximum_iterations=steps,
        )
        return carry
    # Static bounds: a differentiable scan on JAX, a Python loop on torch.
    return ops.fori_loop(0, steps, body, (state, skips))


def run_remat_tensorflow(tick: Callable, state, values: list, steps: int, periods: tuple[int, ...]):
    """Runs ticks 0..steps-1 with a rematerialising backward pass (TensorFlow only).

    `tick(t, state, skips, values)` must read the model's variables only through
    `values` (their current tensors), so that the gradient reaches them as inputs.
    The skip accumulators start as copies of `state`; skip i changes only at ticks
    t with t % periods[i] == 0. Returns (state, skips) after the last tick.

    Forward: a while loop that stores the state entering each tick (steps x state) and
    each skip once per period. Backward: a reverse while loop that reads tick t's
    inputs back, recomputes the tick under a tape and chains the gradients; the
    variables' gradients are summed over ticks. Memory: (steps + sum(ceil(steps/p)))
    states plus one tick's activations, whatever the number of steps.
    """
    import tensorflow as tf

    n = len(periods)
    sizes = [-(-steps // p) for p in periods]  # skip i takes a new value every p_i ticks

    def put(buffer, i, x):  # buffer[i] = x
        return tf.tensor_scatter_nd_update(buffer, tf.reshape(i, (1, 1)), x[None])

    @tf.custom_gradient
    def dynamics(state0, *values):
        def forward(t, state, skips, saved, saved_skips):
            saved = put(saved, t, state)  # the input of tick t
            state, skips = tick(t, state, skips, values)
            # After tick t, skip i holds its value from tick (t // p) * p: slot t // p.
            saved_skips = tuple(put(b, t // p, x) for b, p, x in zip(saved_skips, periods, skips))
            return t + 1, state, skips, saved, saved_skips

        shape = tf.shape(state0)  # (B, h, w, L, D); the batch may be unknown when tracing
        saved = tf.zeros(tf.concat([[steps], shape], 0), state0.dtype)  # (T, B, h, w, L, D)
        saved_skips = tuple(tf.zeros(tf.concat([[m], shape], 0), state0.dtype) for m in sizes)
        _, state, skips, saved, saved_skips = tf.while_loop(
            lambda t, *_: t < steps,
            forward,
            (tf.constant(0), state0, (state0,) * n, saved, saved_skips),
            maximum_iterations=steps,
        )

        def grad(d_state, *d_skips):
            d_skips = [tf.zeros_like(state0) if d is None else d for d in d_skips]

            def backward(t, d_state, d_skips, d_values):
                state_t = tf.gather(saved, t)  # (B, h, w, L, D)
                # The skips entering tick t are those after tick t - 1 (state0 at t = 0).
                before = tf.maximum(t - 1, 0)
                skips_t = tuple(
                    tf.where(t > 0, tf.gather(b, before // p), state0) for b, p in zip(saved_skips, periods)
                )
                with tf.GradientTape() as tape:
                    tape.watch([state_t, *skips_t, *values])
                    out = tick(t, state_t, skips_t, values)
                g = tape.gradient(
                    [out[0], *out[1]],
                    [state_t, *skips_t, *values],
                    output_gradients=[d_state, *d_skips],
                    unconnected_gradients=tf.UnconnectedGradients.ZERO,
                )
                d_values = [a + b for a, b in zip(d_values, g[1 + n :])]
                return t - 1, g[0], tuple(g[1 : 1 + n]), d_values

            _, d_state, d_skips, d_values = tf.while_loop(
                lambda t, *_: t >= 0,
                backward,
                (tf.constant(steps - 1), d_state, tuple(d_skips), [tf.zeros_like(v) for v in values]),
                maximum_iterations=steps,
            )
            # The initial skips are copies of state0: their gradients add to its gradient.
            return [d_state + sum(d_skips)] + list(d_values)

        return (state, *skips), grad

    out = dynamics(state, *values)
    return out[0], tuple(out[1:])
