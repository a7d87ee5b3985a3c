"""The GLOM model: embed the image into level 0, iterate GlomStep, read the top level."""

from __future__ import annotations

import inspect

import keras
import numpy as np
from keras import ops

from glom_tf import stateless, time_loop
from glom_tf.config import Config
from glom_tf.readout import CellLoss, ReadoutMetric, agreement, argmax, class_probabilities
from glom_tf.step import GlomStep

PIXEL_MEAN, PIXEL_STD = 0.1307, 0.3081  # MNIST's pixel mean and std, as the original normalises
INIT_HIGH = 0.1  # the original's initial state: uniform [0, 0.1)


@keras.saving.register_keras_serializable(package="glom_tf")
class GlomModel(keras.Model):
    """GLOM on a grid of columns; `call` returns per-cell class scores (B, h, w, C).

    Input: images (B, H, W, C) (or (B, H, W)) with pixel values in [0, 1]. The grid has
    one column per pixel (`patch_size=1`) or per p x p patch. Each column holds `levels`
    vectors of size `dim`; level 0 is the embedded input. `unroll` returns every step's
    state and attention weights. Training draws the initial state and noise at random;
    inference uses a fixed initial draw, so predictions are deterministic. The T steps run
    as one symbolic loop (glom_tf/time_loop.py), or unrolled in Python with `unroll_steps`;
    `remat` recomputes each step in the backward pass instead of storing its activations.
    """

    def __init__(
        self,
        image_size: int = 28,
        channels: int = 1,
        patch_size: int = 1,
        levels: int = 4,
        dim: int = 10,
        steps: int = 30,
        num_classes: int = 10,
        embedding: str = "repeat",
        hidden_scale: float = 0.01,
        dropout: float = 0.1,
        attention: str = "similarity",
        attention_dim: int = 0,
        top_down: bool = True,
        init_state: str = "uniform",
        noise: float = 1e-4,
        skip_periods: tuple[int, ...] = (15, 7, 3),
        skip_weight: float = 0.1,
        normalize: bool = False,
        head: bool = False,
        readout: str = "vote",
        remat: bool = True,
        unroll_steps: bool = False,
        seed: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_size = image_size
        self.channels = channels
        self.patch_size = patch_size
        self.levels = levels
        self.dim = dim
        self.steps = steps
        self.num_classes = num_classes
        self.embedding = embedding
        self.hidden_scale = hidden_scale
        self.dropout = dropout
        self.attention = attention
        self.attention_dim = attention_dim
        self.top_down = top_down
        self.init_state = init_state
        self.noise = noise
        self.skip_periods = tuple(skip_periods)
        self.skip_weight = skip_weight
        self.normalize = normalize
        self.head = head
        self.readout = readout
        self.remat = remat
        self.unroll_steps = unroll_steps
        self.seed = seed
        self.grid = image_size // patch_size
        self.seed_generator = keras.random.SeedGenerator(seed, name="seed_generator")

    def build(self, input_shape=None):
        g, levels, d = self.grid, self.levels, self.dim
        self.embed = None
        if self.embedding == "linear":
            self.embed = keras.layers.Dense(d, name="embed")
            self.embed.build((None, g, g, self.patch_size**2 * self.channels))
        self.initial = None
        if self.init_state == "learned":
            self.initial = self.add_weight(
                shape=(levels - 1, d),
                initializer=keras.initializers.RandomUniform(0.0, INIT_HIGH),
                name="initial_state",
            )
        # The fixed initial draw used at inference (a constant, not a weight).
        rng = np.random.default_rng(self.seed)
        self._fixed_init = rng.uniform(0.0, INIT_HIGH, (g, g, levels - 1, d)).astype("float32")
        self.step = GlomStep(
            levels,
            d,
            self.attention,
            self.attention_dim,
            self.top_down,
            self.dropout,
            self.hidden_scale,
            self.noise,
            self.normalize,
            name="step",
        )
        self.step.build((None, g, g, levels, d))
        self.classifier = None
        if self.head:
            self.classifier = keras.layers.Dense(self.num_classes, name="head")
            self.classifier.build((None, g, g, d))
        self.built = True

    # Forward pass -------------------------------------------------------------------------

    def embed_images(self, images):
        """Level 0: (B, H, W[, C]) in [0, 1] -> (B, h, w, D)."""
        if len(images.shape) == 3:
            images = images[..., None]  # (B, H, W, 1)
        x = (ops.cast(images, self.compute_dtype) - PIXEL_MEAN) / PIXEL_STD
        if self.embed is None:  # the original: each pixel's value repeated D times
            return x * ops.ones((self.dim,), x.dtype)  # (B, H, W, D)
        p, g, c = self.patch_size, self.grid, self.channels
        x = ops.reshape(x, (-1, g, p, g, p, c))  # (B, h, p, w, p, C)
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # (B, h, w, p, p, C)
        x = ops.reshape(x, (-1, g, g, p * p * c))  # (B, h, w, p*p*C)
        return self.embed(x)  # (B, h, w, D)

    def initial_state(self, bottom, training=False):
        """(B, h, w, D) level 0 -> (B, h, w, L, D) state."""
        shape = ops.shape(bottom)[:3] + (self.levels - 1, self.dim)  # (B, h, w, L-1, D)
        if self.init_state == "zeros":
            upper = ops.zeros(shape, bottom.dtype)
        elif self.init_state == "learned":
            upper = ops.broadcast_to(ops.cast(self.initial, bottom.dtype), shape)
        elif training:
            upper = keras.random.uniform(shape, 0.0, INIT_HIGH, bottom.dtype, seed=self.seed_generator)
        else:
            upper = ops.broadcast_to(ops.convert_to_tensor(self._fixed_init, bottom.dtype), shape)
        return ops.concatenate([ops.expand_dims(bottom, 3), upper], axis=3)  # (B, h, w, L, D)

    def _tick(self, t, state, skips, base_seed, training):
        """Time step t (int or scalar tensor): the GLOM step, then the skip accumulators.

        Every `period` steps the original adds a fraction of its saved state and saves
        the result; written with `where` so that t may be a loop counter.
        Returns (state, skips, attention weights).
        """
        seed = None if base_seed is None else stateless.offset_seed(base_seed, t + 1)
        state, weights = self.step(state, seed=seed, training=training)  # (B, h, w, L, D)
        saved = []
        for period, skip in zip(self.skip_periods, skips):
            due = ops.equal(t % period, 0)
            state = ops.where(due, state + self.skip_weight * skip, state)
            saved.append(ops.where(due, state, skip))
        return state, tuple(saved), weights  # weights: (B, h, w, L-1, 9)

    def _pure_tick(self, base_seed, training):
        """`_tick` that reads the step's variables from `values` (a list of tensors)."""
        variables = self.step.variables

        def tick(t, state, skips, values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return self._tick(t, state, skips, base_seed, training)

        return tick, [v.value for v in variables]

    def _tick_fn(self, base_seed, training):
        """tick(t, state, skips) -> (state, skips, weights), rematerialised when training
        with `remat` (the function then takes the variables' values as arguments, as
        JAX's remat requires)."""
        if not (self.remat and training):
            return lambda t, state, skips: self._tick(t, state, skips, base_seed, training)
        pure, values = self._pure_tick(base_seed, training)
        n = len(self.skip_periods)

        def tick(t, state, skips):
            def flat(state, *rest):  # remat takes flat tensor arguments
                return pure(t, state, rest[:n], list(rest[n:]))

            return keras.remat(flat)(state, *skips, *values)

        return tick

    def _run_steps(self, state, skips, base_seed, training):
        """The T steps as one symbolic loop (see glom_tf/time_loop.py)."""
        if training and self.remat and keras.backend.backend() == "tensorflow":
            pure, values = self._pure_tick(base_seed, training)
            return time_loop.run_remat_tensorflow(
                lambda *args: pure(*args)[:2], state, values, self.steps, self.skip_periods
            )
        tick = self._tick_fn(base_seed, training)
        return time_loop.run(lambda *args: tick(*args)[:2], state, skips, self.steps)

    def unroll(self, images, training=False, record=True):
        """Runs the dynamics. Returns a dict:
        scores (B, h, w, C); and when `record`: states (T+1, B, h, w, L, D) (before the final
        skip sum) and attention (T, B, h, w, L-1, 9). Without `record` the steps run as a
        symbolic loop (unless `unroll_steps`); recording unrolls them in Python.
        """
        state = self.initial_state(self.embed_images(images), training)  # (B, h, w, L, D)
        base_seed = self.seed_generator.next() if training else None
        states, weights = [state], []
        skips = tuple(state for _ in self.skip_periods)  # the original's saved states
        if record or self.unroll_steps:
            tick = self._tick_fn(base_seed, training)
            for t in range(self.steps):
                state, skips, w = tick(t, state, skips)
                if record:
                    states.append(state)
                    weights.append(w)
        else:
            state, skips = self._run_steps(state, skips, base_seed, training)
        for saved in skips:
            state = state + self.skip_weight * saved
        top = state[:, :, :, -1]  # (B, h, w, D)
        scores = self.classifier(top) if self.classifier is not None else top  # (B, h, w, C)
        out = {"scores": scores}
        if record:
            out["states"] = ops.stack(states, axis=0)
            out["attention"] = ops.stack(weights, axis=0)
        return out

    def call(self, images, training=False):
        return self.unroll(images, training=training, record=False)["scores"]

    def predict_readout(self, images):
        """Per-image (probabilities (B, C), classes (B,), agreement (B,)) at inference."""
        scores = self(images, training=False)
        probabilities = class_probabilities(scores, self.readout)
        classes = argmax(probabilities)
        return probabilities, classes, agreement(scores, classes)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.grid, self.grid, self.num_classes)

    def get_config(self):
        return {
            **super().get_config(),
            "image_size": self.image_size,
            "channels": self.channels,
            "patch_size": self.patch_size,
            "levels": self.levels,
            "dim": self.dim,
            "steps": self.steps,
            "num_classes": self.num_classes,
            "embedding": self.embedding,
            "hidden_scale": self.hidden_scale,
            "dropout": self.dropout,
            "attention": self.attention,
            "attention_dim": self.attention_dim,
            "top_down": self.top_down,
            "init_state": self.init_state,
            "noise": self.noise,
            "skip_periods": list(self.skip_periods),
            "skip_weight": self.skip_weight,
            "normalize": self.normalize,
            "head": self.head,
            "readout": self.readout,
            "remat": self.remat,
            "unroll_steps": self.unroll_steps,
            "seed": self.seed,
        }


# The Config fields that are GlomModel constructor arguments.
MODEL_FIELDS = tuple(
    p for p in inspect.signature(GlomModel.__init__).parameters if p not in ("self", "kwargs")
)


def build_model(config: Config) -> GlomModel:
    """An uncompiled, built GlomModel from the model fields of `config`."""
    config.validate()
    kwargs = {name: getattr(config, name) for name in MODEL_FIELDS}
    model = GlomModel(**kwargs, name="glom")
    model.build((None, config.image_size, config.image_size, config.channels))
    return model


def compile_model(model: GlomModel, config: Config, optimizer=None) -> GlomModel:
    """Compiles with the config's loss and the readout metrics (Adam by default)."""
    if optimizer is None:
        optimizer = keras.optimizers.Adam(config.learning_rate)
    model.compile(
        optimizer=optimizer,
        loss=CellLoss(config.loss),
        metrics=[
            ReadoutMetric("vote_accuracy"),
            ReadoutMetric("mean_accuracy"),
            ReadoutMetric("agreement"),
        ],
        jit_compile=config.jit_compile if keras.backend.backend() != "torch" else False,
    )
    return model
