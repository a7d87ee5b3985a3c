"""Same-level attention: each cell weighs its 3x3 neighbours by agreement, then updates."""

from __future__ import annotations

import keras
from keras import ops

from glom_tf.level_mlp import LevelMLP


@keras.saving.register_keras_serializable(package="glom_tf")
class SameLevelAttention(keras.layers.Layer):
    """Hinton's consensus attention over the torus neighbourhood, one per level.

    Input: the neighbourhood of each updated level, (G, N, K, D) with the cell
    itself at K // 2. Logits are dot products between the cell and each neighbour,
    either of the raw vectors (`key_dim=0`: parameter-free, neighbours with similar
    vectors get more weight) or of learned per-level queries and keys (`key_dim>0`),
    scaled by 1/sqrt(width). The softmax weights (G, N, K) rescale the neighbours
    (times K, so equal weights give the original's plain concatenation) and a LevelMLP
    turns the weighted neighbourhood into the level's update (G, N, units).
    Returns (update, weights).
    """

    def __init__(
        self,
        groups: int,
        units: int,
        key_dim: int = 0,
        dropout: float = 0.0,
        output_scale: float = 0.01,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.groups = groups
        self.units = units
        self.key_dim = key_dim
        self.dropout = dropout
        self.output_scale = output_scale

    def build(self, input_shape):
        k, d = input_shape[-2], input_shape[-1]
        if self.key_dim:
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
        self.mlp = LevelMLP(self.groups, self.units, self.dropout, self.output_scale, name="mlp")
        self.mlp.build(tuple(input_shape[:-2]) + (k * d,))

    def attention_weights(self, neighbours):
        """Softmax weights over the K neighbours: (G, N, K, D) -> (G, N, K)."""
        k = neighbours.shape[-2]
        centre = neighbours[:, :, k // 2, :]  # (G, N, D)
        if self.key_dim:
            q = self.query(centre)  # (G, N, E)
            keys = self.key(neighbours)  # (G, N, K, E)
        else:
            q, keys = centre, neighbours
        logits = ops.sum(q[..., None, :] * keys, axis=-1)  # (G, N, K)
        logits = logits / ops.sqrt(ops.cast(q.shape[-1], logits.dtype))
        return ops.softmax(logits, axis=-1)

    def call(self, neighbours, seed=None, training=False):
        weights = self.attention_weights(neighbours)  # (G, N, K)
        k, d = neighbours.shape[-2], neighbours.shape[-1]
        weighted = neighbours * (k * weights[..., None])  # (G, N, K, D)
        flat = ops.reshape(weighted, (self.groups, -1, k * d))  # (G, N, K*D)
        return self.mlp(flat, seed=seed, training=training), weights

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-2]) + (self.units,), tuple(input_shape[:-1])

    def get_config(self):
        return {
            **super().get_config(),
            "groups": self.groups,
            "units": self.units,
            "key_dim": self.key_dim,
            "dropout": self.dropout,
            "output_scale": self.output_scale,
        }
