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
        levels, d, k = input_shape[3], input_shape[4], 9
        # Inside the step the networks see level-major rows of cells, (L, N, .) with
        # N = B*H*W: the networks of one kind then run over their levels as one batched
        # matmul, and every tensor has rank <= 5 (TFLite's limit for several ops).
        self.neighbourhood = Neighbourhood(1, axes=(2, 3), name="neighbourhood")
        self.bottom_up = LevelMLP(levels - 1, d, self.dropout, self.output_scale, name="bottom_up")
        self.bottom_up.build((levels - 1, None, k * d))
        self.top_down_mlp = None
        if self.top_down and levels > 2:
            self.top_down_mlp = LevelMLP(levels - 2, d, self.dropout, self.output_scale, name="top_down")
            self.top_down_mlp.build((levels - 2, None, k * d))
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
            self.same_level.build((levels - 1, None, k, d))

    def call(self, state, seed=None, training=False):
        seeds = [None] * 4
        if training and seed is not None:
            seeds = [stateless.offset_seed(seed, 0, 16 * i) for i in range(4)]
        b, h, w = ops.shape(state)[0], state.shape[1], state.shape[2]
        levels, d = state.shape[3], state.shape[4]
        x = ops.transpose(state, (3, 0, 1, 2, 4))  # (L, B, H, W, D)
        if self.normalize:  # the networks read RMS-normalised level vectors
            x = x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + 1e-6)
        nbhd = self.neighbourhood(x)  # (L, B, H, W, 9D): the 9 torus neighbours, concatenated
        rows = ops.reshape(nbhd, (levels, -1, 9 * d))  # (L, N, 9D), N = B*H*W cells

        # Bottom-up: level l-1's neighbourhood -> level l, for l = 1..L-1.
        delta = self.bottom_up(rows[:-1], seed=seeds[0], training=training)  # (L-1, N, D)
        # Top-down: level l+1's neighbourhood -> level l, for l = 1..L-2 (none for the top).
        if self.top_down_mlp is not None:
            down = self.top_down_mlp(rows[2:], seed=seeds[1], training=training)  # (L-2, N, D)
            delta = delta + ops.concatenate([down, ops.zeros_like(delta[-1:])], axis=0)
        # Same level: attention over level l's own neighbourhood, l = 1..L-1.
        if self.same_level is not None:
            neighbours = ops.reshape(rows[1:], (levels - 1, -1, 9, d))  # (L-1, N, 9, D)
            update, weights = self.same_level(neighbours, seed=seeds[2], training=training)
            delta = delta + update
        else:
            weights = ops.ones_like(rows[1:, :, :9]) / 9.0  # (L-1, N, 9)

        delta = ops.reshape(delta, (levels - 1, b, h, w, d))  # (L-1, B, H, W, D)
        delta = ops.transpose(delta, (1, 2, 3, 0, 4))  # (B, H, W, L-1, D)
        bottom = ops.zeros_like(state[:, :, :, :1])  # level 0 is never updated
        state = state + ops.concatenate([bottom, delta], axis=3)  # (B, H, W, L, D)
        if training and self.noise > 0.0 and seed is not None:
            state = state + self.noise * stateless.uniform(ops.shape(state), seeds[3], state.dtype)
        weights = ops.reshape(weights, (levels - 1, b, h, w, 9))  # (L-1, B, H, W, 9)
        return state, ops.transpose(weights, (1, 2, 3, 0, 4))  # (B, H, W, L-1, 9)

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
