"""Same-level term: each cell weighs its neighbours by agreement, then updates from them."""

from __future__ import annotations

import keras
from keras import ops

from glom_tf.level_mlp import LevelMLP

WEIGHTINGS = ("similarity", "learned", "plain")


@keras.saving.register_keras_serializable(package="glom_tf")
class SameLevelAttention(keras.layers.Layer):
    """Attention over the torus neighbourhood of each level, one set of weights per level.

    Input: the neighbourhood of each updated level, (G, N, K, D) with the cell itself at
    K // 2. The weights (G, N, K) are a softmax over the K neighbours of `beta` times the
    dot products between the cell and each neighbour, scaled by 1/sqrt(width):
    `weighting="similarity"` uses the raw vectors (parameter-free: Hinton's consensus
    attention), "learned" uses learned per-level queries and keys of width `key_dim`, and
    "plain" gives every neighbour 1/K.

    `consensus=False` (the original): the neighbours rescaled by K * weights (so "plain" is
    the original's plain concatenation) go through a LevelMLP: update (G, N, units).
    `consensus=True` (the paper): the update is the weighted average of the neighbours'
    own vectors, sum_k w_k x_k (G, N, D); no network, so `units`, `dropout`, `output_scale`,
    `activation` and `mlp_ratio` (the LevelMLP's) are not read (kept in the config so that
    one constructor serves both).
    Returns (update, weights).
    """

    def __init__(
        self,
        groups: int,
        units: int,
        weighting: str,
        key_dim: int,
        beta: float,
        consensus: bool,
        dropout: float,
        output_scale: float,
        activation: str = "tanh",
        mlp_ratio: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.groups = groups
        self.units = units
        self.weighting = weighting
        self.key_dim = key_dim
        self.beta = beta
        self.consensus = consensus
        self.dropout = dropout
        self.output_scale = output_scale
        self.activation = activation
        self.mlp_ratio = mlp_ratio

    def build(self, input_shape):
        k, d = input_shape[-2], input_shape[-1]
        if self.weighting == "learned":
            self.query = keras.layers.EinsumDense(
                "gnd,gde->gne",  # (G, N, D) -> (G, N, key_dim)
                output_shape=(None, self.key_dim),
                name="query",
            )
            self.query.build(tuple(input_shape[:-2]) + (d,))
            self.key = keras.layers.EinsumDense(
                "gnkd,gde->gnke",  # (G, N, K, D) -> (G, N, K, key_dim)
                output_shape=(None, k, self.key_dim),
                name="key",
            )
            self.key.build(tuple(input_shape))
        if not self.consensus:
            self.mlp = LevelMLP(
                self.groups, self.units, self.dropout, self.output_scale,
                self.activation, self.mlp_ratio, name="mlp",
            )  # fmt: skip
            self.mlp.build(tuple(input_shape[:-2]) + (k * d,))

    def attention_weights(self, neighbours):
        """Softmax weights over the K neighbours: (G, N, K, D) -> (G, N, K)."""
        k = neighbours.shape[-2]
        if self.weighting == "plain":
            return ops.ones_like(neighbours[..., 0]) / k  # (G, N, K)
        centre = neighbours[:, :, k // 2, :]  # (G, N, D)
        if self.weighting == "learned":
            q = self.query(centre)  # (G, N, E)
            keys = self.key(neighbours)  # (G, N, K, E)
        else:
            q, keys = centre, neighbours
        logits = ops.sum(q[..., None, :] * keys, axis=-1)  # (G, N, K)
        logits = logits * (self.beta / ops.sqrt(ops.cast(q.shape[-1], logits.dtype)))
        return ops.softmax(logits, axis=-1)

    def call(self, neighbours, seed=None, training=False):
        weights = self.attention_weights(neighbours)  # (G, N, K)
        if self.consensus:
            return ops.sum(neighbours * weights[..., None], axis=-2), weights  # (G, N, D)
        k, d = neighbours.shape[-2], neighbours.shape[-1]
        weighted = neighbours * (k * weights[..., None])  # (G, N, K, D)
        flat = ops.reshape(weighted, (self.groups, -1, k * d))  # (G, N, K*D)
        return self.mlp(flat, seed=seed, training=training), weights

    def compute_output_shape(self, input_shape):
        units = input_shape[-1] if self.consensus else self.units
        return tuple(input_shape[:-2]) + (units,), tuple(input_shape[:-1])

    def get_config(self):
        return {
            **super().get_config(),
            "groups": self.groups,
            "units": self.units,
            "weighting": self.weighting,
            "key_dim": self.key_dim,
            "beta": self.beta,
            "consensus": self.consensus,
            "dropout": self.dropout,
            "output_scale": self.output_scale,
            "activation": self.activation,
            "mlp_ratio": self.mlp_ratio,
        }
