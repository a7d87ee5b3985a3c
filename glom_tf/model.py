"""The GLOM model: embed the image into level 0, iterate GlomStep, read the top level."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops

from glom_tf import islands, objectives, stateless, time_loop
from glom_tf.config import ModelConfig
from glom_tf.readout import readout
from glom_tf.step import LOCATION_STD, GlomStep

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

    def __init__(self, **kwargs):
        fields = {k: kwargs.pop(k) for k in ModelConfig.field_names() if k in kwargs}
        super().__init__(**kwargs)
        self.spec = ModelConfig.from_dict(fields)  # validated; defaults from ModelConfig
        for name, value in dataclasses.asdict(self.spec).items():
            setattr(self, name, value)  # model.dim, model.readout, ... (read-only by convention)
        self.grid = self.spec.grid
        self.seed_generator = keras.random.SeedGenerator(self.seed, name="seed_generator")
        if self.island_weight:
            self.island_tracker = keras.metrics.Mean(name="island_loss")
        if self.denoise_weight:
            self.denoise_tracker = keras.metrics.Mean(name="denoise_loss")

    def build(self, input_shape=None):
        g, levels, d = self.grid, self.levels, self.dim
        self.embed = None
        if self.embedding == "linear":
            self.embed = keras.layers.Dense(d, name="embed")
            self.embed.build((None, g, g, self.patch_size**2 * self.channels))
        self.location = None
        if self.position == "input":  # each cell's learned location, added to level 0
            self.location = self.add_weight(
                shape=(g, g, d),
                initializer=keras.initializers.RandomNormal(stddev=LOCATION_STD),
                name="location",
            )
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
            self.radius,
            self.attention,
            self.attention_dim,
            self.attention_beta,
            self.same_level,
            self.update,
            self.learned_update_weights,
            self.state_norm,
            self.top_down,
            self.dropout,
            self.hidden_scale,
            self.noise,
            self.normalize,
            self.position == "top_down",
            self.activation,
            self.mlp_ratio,
            name="step",
        )
        self.step.build((None, g, g, levels, d))
        self.classifier = None
        if self.head:
            self.classifier = keras.layers.Dense(self.num_classes, name="head")
            self.classifier.build((None, g, g, d))
        self.decoder = None
        if self.denoise_weight:  # reconstructs a cell's patch from all its level vectors
            self.decoder = keras.layers.Dense(self.patch_size**2 * self.channels, name="decoder")
            self.decoder.build((None, g, g, levels * d))
        self.built = True

    # Forward pass -------------------------------------------------------------------------

    def patches(self, images):
        """(B, H, W[, C]) in [0, 1] -> normalised patch pixels (B, h, w, p*p*C)."""
        if len(images.shape) == 3:
            images = images[..., None]  # (B, H, W, 1)
        x = (ops.cast(images, self.compute_dtype) - PIXEL_MEAN) / PIXEL_STD
        p, g, c = self.patch_size, self.grid, self.channels
        x = ops.reshape(x, (-1, g, p, g, p, c))  # (B, h, p, w, p, C)
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # (B, h, w, p, p, C)
        return ops.reshape(x, (-1, g, g, p * p * c))  # (B, h, w, p*p*C)

    def embed_patches(self, patches):
        """Level 0: (B, h, w, p*p*C) -> (B, h, w, D) (with `position="input"`, plus each cell's location)."""
        if self.embed is None:  # the original: each pixel's value repeated D times
            bottom = patches * ops.ones((self.dim,), patches.dtype)  # (B, H, W, D)
        else:
            bottom = self.embed(patches)  # (B, h, w, D)
        if self.location is not None:
            bottom = bottom + ops.cast(self.location, bottom.dtype)  # (B, h, w, D) + (h, w, D)
        return bottom

    def embed_images(self, images):
        """Level 0: (B, H, W[, C]) in [0, 1] -> (B, h, w, D)."""
        return self.embed_patches(self.patches(images))

    def object_mask(self, images):
        """Cells whose patch holds a pixel above 0.5: (B, H, W[, C]) -> (B, h, w) bool."""
        return islands.object_mask(images, self.grid)

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

    def tick(self, t, state, skips, base_seed, training):
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
        return state, tuple(saved), weights  # weights: (B, h, w, L-1, K)

    def unroll(self, images, training=False, record=True):
        """Runs the dynamics. Returns a dict: scores (B, h, w, C), state (B, h, w, L, D)
        (final, after the skip sum); when `record` also states (T+1, B, h, w, L, D) (before
        the final skip sum) and attention (T, B, h, w, L-1, K). Without `record` the steps
        run as a symbolic loop (unless `unroll_steps`); recording unrolls them in Python.
        Training with `denoise_weight` masks a random `mask_ratio` of the patches; the dict
        then holds `patches` (B, h, w, P) and `masked` (B, h, w).
        """
        base_seed = self.seed_generator.next() if training else None
        patches = self.patches(images)  # (B, h, w, P)
        out = {}
        if training and self.decoder is not None:  # hide a random fraction of the patches
            seed = stateless.offset_seed(base_seed, 0, 7)
            draw = stateless.uniform(ops.shape(patches)[:3], seed, patches.dtype)  # (B, h, w)
            out["masked"] = draw < self.mask_ratio  # (B, h, w)
            out["patches"] = patches
            patches = ops.where(out["masked"][..., None], ops.zeros_like(patches), patches)
        state = self.initial_state(self.embed_patches(patches), training)  # (B, h, w, L, D)
        states, weights = [state], []
        if record or self.unroll_steps:
            tick = time_loop.tick_fn(self, base_seed, training)
            skips = time_loop.start_skips(self, state)  # the original's saved states
            for t in range(self.steps):
                state, skips, w = tick(t, state, skips)
                if record:
                    states.append(state)
                    weights.append(w)
        else:
            state, skips = time_loop.run_steps(self, state, base_seed, training)
        for saved in skips:
            state = state + self.skip_weight * saved
        top = state[:, :, :, -1]  # (B, h, w, D)
        out["scores"] = self.classifier(top) if self.classifier is not None else top  # (B, h, w, C)
        out["state"] = state
        if record:
            out["states"] = ops.stack(states, axis=0)
            out["attention"] = ops.stack(weights, axis=0)
        return out

    def call(self, images, training=False):
        out = self.unroll(images, training=training, record=False)
        scores = out["scores"]  # (B, h, w, C)
        if not training and self.tta_flip:
            scores = (scores + self.mirrored_scores(images)) / 2
        if self.island_weight:  # in training and evaluation (a figure of the islands)
            scales = self.spec.resolved_island_scales
            mask = self.object_mask(images)  # (B, h, w)
            term = objectives.island_loss(
                out["state"], mask, scales, self.island_temperature,
                self.island_sharpness, (1.0 + self.island_threshold) / 2, self.island_nesting,
            )  # fmt: skip
            self.add_loss(self.island_weight * term)
        if training and self.decoder is not None:
            b, g = ops.shape(out["state"])[0], self.grid
            columns = ops.reshape(out["state"], (b, g, g, self.levels * self.dim))  # (B, h, w, L*D)
            term = objectives.denoise_loss(self.decoder(columns), out["patches"], out["masked"])
            self.add_loss(self.denoise_weight * term)
        return scores

    def mirrored_scores(self, images):
        """`tta_flip`: the per-cell scores of the left-right mirrored image, mirrored back:
        (B, H, W[, C]) -> (B, h, w, C). A patch grid mirrors exactly (patch_size divides
        image_size), so each cell gets the scores of its own pixels, seen mirrored."""
        mirrored = self.unroll(ops.flip(images, axis=2), record=False)["scores"]  # W: axis 2
        return ops.flip(mirrored, axis=2)  # (B, h, w, C): cells back in place

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss plus the objectives' terms, each logged as its own metric."""
        total = super().compute_loss(x, y, y_pred, sample_weight, training)
        if not self.losses:  # Keras's symbolic build (JAX) calls this without a forward pass
            return total
        terms = iter(self.losses)  # in the order `call` adds them
        if self.island_weight:
            self.island_tracker.update_state(next(terms) / self.island_weight)
        if self.denoise_weight and training:
            self.denoise_tracker.update_state(next(terms) / self.denoise_weight)
        return total

    def predict_readout(self, images):
        """Per-image (probabilities (B, C), classes (B,), agreement (B,)) at inference."""
        return readout(self(images, training=False), self.readout)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.grid, self.grid, self.num_classes)

    def get_config(self):
        return {**super().get_config(), **self.spec.to_dict()}


def build_model(config: ModelConfig) -> GlomModel:
    """An uncompiled, built GlomModel from the model fields of `config`."""
    config.validate()
    model = GlomModel(**config.model_config().to_dict(), name="glom")
    model.build((None, config.image_size, config.image_size, config.channels))
    return model
