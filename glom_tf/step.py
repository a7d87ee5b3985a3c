"""One GLOM time step, top to bottom.

For every cell and every updated level l >= 1, with N(.) the torus neighbourhood of radius r:
    BU_l   = bottom_up_l(N(level l-1))                  a prediction from the part below
    TD_l   = top_down_l(N(level l+1 [+ P]))             from the whole above (none at the top);
             with `position`, each neighbour's vector carries its cell's learned location P
    SAME_l = the same-level term over N(level l): a network on the attention-weighted
             neighbourhood ("mlp", the original), or the attention-weighted average of the
             neighbours' vectors ("consensus", the paper's islands-forming term)
    update "residual" (the original): x_l <- x_l + BU_l + TD_l + SAME_l
    update "average"  (the paper):    x_l <- w0 x_l + w1 BU_l + w2 TD_l + w3 SAME_l,
             the weights equal (or a learned softmax per level) over the terms present
    state_norm: x_l <- layer-normalised x_l (zero mean, unit variance, no parameters)
Level 0 (the embedded input) gets no update; training noise (uniform [0, noise)) is added to
every level, level 0 included, as in the original notebook.
"""

from __future__ import annotations

import keras
from keras import ops

from glom_tf import stateless
from glom_tf.attention import SameLevelAttention
from glom_tf.level_mlp import LevelMLP
from glom_tf.neighbourhood import Neighbourhood, neighbour_count

TERMS = 4  # previous vector, bottom-up, top-down, same level
LOCATION_STD = 0.02  # initial draw of a learned location (GlomStep here, GlomModel for level 0)


def layer_norm(x, epsilon: float = 1e-5):
    """Zero mean, unit variance over the last axis (no parameters)."""
    mean = ops.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    return centred * ops.rsqrt(ops.mean(ops.square(centred), axis=-1, keepdims=True) + epsilon)


@keras.saving.register_keras_serializable(package="glom_tf")
class GlomStep(keras.layers.Layer):
    """Maps a state (B, H, W, L, D) to the next state, and the same-level attention weights.

    Returns (state, weights) with weights (B, H, W, L-1, K), K = (2 radius + 1)^2, for levels
    1..L-1 (uniform 1/K for "plain" and "none"). `seed` (shape (2,)) drives dropout and noise,
    so a rematerialised step recomputes the same draws. The arguments are the ModelConfig
    fields of the same names (`output_scale` is `hidden_scale`).
    """

    def __init__(
        self,
        radius: int,
        attention: str,
        attention_dim: int,
        attention_beta: float,
        same_level: str,
        update: str,
        learned_update_weights: bool,
        state_norm: bool,
        top_down: bool,
        dropout: float,
        output_scale: float,
        noise: float,
        normalize: bool,
        position: bool = False,
        activation: str = "tanh",
        mlp_ratio: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.radius = radius
        self.attention = attention
        self.attention_dim = attention_dim
        self.attention_beta = attention_beta
        self.same_level_mode = same_level  # (self.same_level is the layer, as in saved files)
        self.update = update
        self.learned_update_weights = learned_update_weights
        self.state_norm = state_norm
        self.top_down = top_down
        self.dropout = dropout
        self.output_scale = output_scale
        self.noise = noise
        self.normalize = normalize
        self.position = position  # the top-down networks read each cell's learned location
        self.activation = activation  # the networks' (LevelMLP's)
        self.mlp_ratio = mlp_ratio

    def build(self, input_shape):
        levels, d, k = input_shape[3], input_shape[4], neighbour_count(self.radius)
        # Inside the step the networks see level-major rows of cells, (L, N, .) with
        # N = B*H*W: the networks of one kind then run over their levels as one batched
        # matmul, and every tensor has rank <= 5 (TFLite's limit for several ops).
        self.neighbourhood = Neighbourhood(self.radius, axes=(2, 3), name="neighbourhood")
        mlp = dict(dropout=self.dropout, output_scale=self.output_scale)
        mlp.update(activation=self.activation, mlp_ratio=self.mlp_ratio)
        self.bottom_up = LevelMLP(levels - 1, d, **mlp, name="bottom_up")
        self.bottom_up.build((levels - 1, None, k * d))
        self.top_down_mlp = None
        if self.top_down and levels > 2:
            self.top_down_mlp = LevelMLP(levels - 2, d, **mlp, name="top_down")
            self.top_down_mlp.build((levels - 2, None, k * d))
        self.location = None
        if self.position:
            self.location = self.add_weight(
                shape=(input_shape[1], input_shape[2], d),
                initializer=keras.initializers.RandomNormal(stddev=LOCATION_STD),
                name="location",
            )
        self.same_level = None
        if self.attention != "none":
            self.same_level = SameLevelAttention(
                levels - 1,
                d,
                self.attention,
                self.attention_dim,
                self.attention_beta,
                self.same_level_mode == "consensus",
                self.dropout,
                self.output_scale,
                self.activation,
                self.mlp_ratio,
                name="same_level",
            )
            self.same_level.build((levels - 1, None, k, d))
        self.update_logits = None
        if self.update == "average" and self.learned_update_weights:
            self.update_logits = self.add_weight(
                shape=(levels - 1, TERMS), initializer="zeros", name="update_logits"
            )

    def term_weights(self, levels: int):
        """(L-1, 4) weights of (previous, bottom-up, top-down, same level) per updated level."""
        has_same = float(self.same_level is not None)
        present = [
            [1.0, 1.0, float(self.top_down_mlp is not None and level < levels - 1), has_same]
            for level in range(1, levels)
        ]
        present = ops.convert_to_tensor(present, self.compute_dtype)  # (L-1, 4)
        if self.update_logits is None:
            return present / ops.sum(present, axis=-1, keepdims=True)
        logits = ops.where(present > 0, ops.cast(self.update_logits, self.compute_dtype), -1e9)
        return ops.softmax(logits, axis=-1)

    def call(self, state, seed=None, training=False):
        seeds = [None] * 4
        if training and seed is not None:
            seeds = [stateless.offset_seed(seed, 0, 16 * i) for i in range(4)]
        b, h, w = ops.shape(state)[0], state.shape[1], state.shape[2]
        levels, d = state.shape[3], state.shape[4]
        k = neighbour_count(self.radius)
        x = ops.transpose(state, (3, 0, 1, 2, 4))  # (L, B, H, W, D)
        if self.normalize:  # the networks read RMS-normalised level vectors
            x = x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + 1e-6)
        nbhd = self.neighbourhood(x)  # (L, B, H, W, K*D): the K torus neighbours, concatenated
        rows = ops.reshape(nbhd, (levels, -1, k * d))  # (L, N, K*D), N = B*H*W cells

        # Bottom-up: level l-1's neighbourhood -> level l, for l = 1..L-1.
        up = self.bottom_up(rows[:-1], seed=seeds[0], training=training)  # (L-1, N, D)
        # Top-down: level l+1's neighbourhood -> level l, for l = 1..L-2 (none for the top).
        down = ops.zeros_like(up)
        if self.top_down_mlp is not None:
            above = rows[2:]  # (L-2, N, K*D)
            if self.location is not None:  # each neighbour's location beside its vector
                where = ops.cast(self.location, x.dtype)[None, None]  # (1, 1, H, W, D)
                where = ops.broadcast_to(self.neighbourhood(where), (1, b, h, w, k * d))
                above = above + ops.reshape(where, (1, -1, k * d))  # (L-2, N, K*D)
            down = self.top_down_mlp(above, seed=seeds[1], training=training)  # (L-2, N, D)
            down = ops.concatenate([down, ops.zeros_like(up[-1:])], axis=0)  # (L-1, N, D)
        # Same level: attention over level l's own neighbourhood, l = 1..L-1.
        if self.same_level is not None:
            neighbours = ops.reshape(rows[1:], (levels - 1, -1, k, d))  # (L-1, N, K, D)
            same, weights = self.same_level(neighbours, seed=seeds[2], training=training)  # (L-1, N, D)
        else:
            same = ops.zeros_like(up)
            weights = ops.ones_like(rows[1:, :, :k]) / k  # (L-1, N, K)

        upper = ops.transpose(state[:, :, :, 1:], (3, 0, 1, 2, 4))  # (L-1, B, H, W, D)
        upper = ops.reshape(upper, (levels - 1, -1, d))  # (L-1, N, D)
        if self.update == "residual":
            upper = upper + (up + down + same)
        else:
            mix = self.term_weights(levels)[:, None, :, None]  # (L-1, 1, 4, 1)
            terms = ops.stack([upper, up, down, same], axis=2)  # (L-1, N, 4, D)
            upper = ops.sum(mix * terms, axis=2)  # (L-1, N, D)
        if self.state_norm:
            upper = layer_norm(upper)

        upper = ops.reshape(upper, (levels - 1, b, h, w, d))  # (L-1, B, H, W, D)
        upper = ops.transpose(upper, (1, 2, 3, 0, 4))  # (B, H, W, L-1, D)
        state = ops.concatenate([state[:, :, :, :1], upper], axis=3)  # (B, H, W, L, D)
        if training and self.noise > 0.0 and seed is not None:
            state = state + self.noise * stateless.uniform(ops.shape(state), seeds[3], state.dtype)
        weights = ops.reshape(weights, (levels - 1, b, h, w, k))  # (L-1, B, H, W, K)
        return state, ops.transpose(weights, (1, 2, 3, 0, 4))  # (B, H, W, L-1, K)

    def compute_output_shape(self, input_shape):
        k = neighbour_count(self.radius)
        return tuple(input_shape), tuple(input_shape[:3]) + (input_shape[3] - 1, k)

    def get_config(self):
        return {
            **super().get_config(),
            "radius": self.radius,
            "attention": self.attention,
            "attention_dim": self.attention_dim,
            "attention_beta": self.attention_beta,
            "same_level": self.same_level_mode,
            "update": self.update,
            "learned_update_weights": self.learned_update_weights,
            "state_norm": self.state_norm,
            "top_down": self.top_down,
            "dropout": self.dropout,
            "output_scale": self.output_scale,
            "noise": self.noise,
            "normalize": self.normalize,
            "position": self.position,
            "activation": self.activation,
            "mlp_ratio": self.mlp_ratio,
        }
