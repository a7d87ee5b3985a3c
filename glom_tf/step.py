"""One GLOM time step, top to bottom.

For every cell and every level l >= 1 (level 0 is the input and gets no delta):
    delta_l = bottom_up_l(N(level l-1)) + top_down_l(N(level l+1)) + same_level_l(N(level l))
    state   = state + delta (+ uniform noise when training)
where N(.) is the 3x3 torus neighbourhood and the top level has no top-down term.
"""

from __future__ import annotations

import keras
from keras import ops

from glom_tf import stateless
from glom_tf.attention import SameLevelAttention
from glom_tf.level_mlp import LevelMLP
from glom_tf.neighbourhood import Neighbourhood


@keras.saving.register_keras_serializable(package="glom_tf")
class GlomStep(keras.layers.Layer):
    """Maps a state (B, H, W, L, D) to the next state, and the attention weights.

    With `normalize`, the networks read RMS-normalised level vectors (the state itself
    is not rescaled). Returns (state, weights) with weights (B, H, W, L-1, 9) for levels 1..L-1 (uniform
    1/9 when `attention="none"`). `seed` (shape (2,)) drives dropout and noise, so a
    rematerialised step recomputes the same draws.
    """

    def __init__(
        self,
        levels: int,
        dim: int,
        attention: str = "similarity",
        attention_dim: int = 0,
        top_down: bool = True,
        dropout: float = 0.0,
        output_scale: float = 0.01,
        noise: float = 0.0,
        normalize: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.levels = levels
        self.dim = dim
        self.attention = attention
        self.attention_dim = attention_dim
        self.top_down = top_down
        self.dropout = dropout
        self.output_scale = output_scale
        self.noise = noise
        self.normalize = normalize

    def build(self, input_shape):
        b, h, w, levels, d = input_shape
        k = 9
        self.neighbourhood = Neighbourhood(1, name="neighbourhood")
        self.bottom_up = LevelMLP(levels - 1, d, self.dropout, self.output_scale, name="bottom_up")
        self.bottom_up.build((b, h, w, levels - 1, k * d))
        self.top_down_mlp = None
        if self.top_down and levels > 2:
            self.top_down_mlp = LevelMLP(levels - 2, d, self.dropout, self.output_scale, name="top_down")
            self.top_down_mlp.build((b, h, w, levels - 2, k * d))
        self.same_level = None
        if self.attention != "none":
            self.same_level = SameLevelAttention(
                levels - 1,
                d,
                self.attention_dim if self.attention == "learned" else 0,
                self.dropout,
                self.output_scale,
                name="same_level",
            )
            self.same_level.build((b, h, w, levels - 1, k, d))

    def call(self, state, seed=None, training=False):
        seeds = [None] * 4
        if training and seed is not None:
            seeds = [stateless.offset_seed(seed, 0, 16 * i) for i in range(4)]
        inputs = state
        if self.normalize:  # RMS-normalise each level vector before the networks read it
            inputs = state * ops.rsqrt(ops.mean(ops.square(state), axis=-1, keepdims=True) + 1e-6)
        nbhd = self.neighbourhood(inputs)  # (B, H, W, L, 9, D)
        d = state.shape[-1]
        flat = ops.reshape(nbhd, ops.shape(nbhd)[:-2] + (9 * d,))  # (B, H, W, L, 9D)

        # Bottom-up: level l-1's neighbourhood -> level l, for l = 1..L-1.
        delta = self.bottom_up(flat[:, :, :, :-1], seed=seeds[0], training=training)
        # Top-down: level l+1's neighbourhood -> level l, for l = 1..L-2 (none for the top).
        if self.top_down_mlp is not None:
            down = self.top_down_mlp(flat[:, :, :, 2:], seed=seeds[1], training=training)
            top = ops.zeros_like(delta[:, :, :, -1:])  # (B, H, W, 1, D)
            delta = delta + ops.concatenate([down, top], axis=3)  # (B, H, W, L-1, D)
        # Same level: attention over level l's own neighbourhood, l = 1..L-1.
        if self.same_level is not None:
            update, weights = self.same_level(nbhd[:, :, :, 1:], seed=seeds[2], training=training)
            delta = delta + update
        else:
            weights = ops.ones_like(nbhd[:, :, :, 1:, :, 0]) / 9.0  # (B, H, W, L-1, 9)

        bottom = ops.zeros_like(state[:, :, :, :1])  # level 0 is never updated
        state = state + ops.concatenate([bottom, delta], axis=3)  # (B, H, W, L, D)
        if training and self.noise > 0.0 and seed is not None:
            state = state + self.noise * stateless.uniform(ops.shape(state), seeds[3], state.dtype)
        return state, weights

    def compute_output_shape(self, input_shape):
        return tuple(input_shape), tuple(input_shape[:3]) + (input_shape[3] - 1, 9)

    def get_config(self):
        return {
            **super().get_config(),
            "levels": self.levels,
            "dim": self.dim,
            "attention": self.attention,
            "attention_dim": self.attention_dim,
            "top_down": self.top_down,
            "dropout": self.dropout,
            "output_scale": self.output_scale,
            "noise": self.noise,
            "normalize": self.normalize,
        }
