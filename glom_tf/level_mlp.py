"""The original notebook's per-cell network, one per level, run for all levels at once."""

from __future__ import annotations

import keras
from keras import ops

from glom_tf import stateless
from glom_tf.config import ACTIVATIONS


@keras.saving.register_keras_serializable(package="glom_tf")
class LevelMLP(keras.layers.Layer):
    """`groups` independent copies of the original's three-Dense residual network.

    For each group g (a level) and cell, with x of width `input_dim` and f the activation
    (tanh in the original, or GELU's tanh approximation):
        q = f(W1 x + b1); k = f(W2 q + b2) + q; v = f(W3 k + b3) + q + k     (width H)
        out = output_scale * v  (H = units, the original), or
        out = output_scale * (W4 v + b4)  (H = mlp_ratio * units: a wider hidden layer),
    dropout before each Dense (training only).
    Input (G, N, input_dim) -> output (G, N, units) for N cells, group-major so that one
    batched matmul runs the networks of one kind across levels with no transposes.
    """

    def __init__(
        self,
        groups: int,
        units: int,
        dropout: float = 0.0,
        output_scale: float = 0.01,
        activation: str = "tanh",
        mlp_ratio: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.groups = groups
        self.units = units
        self.dropout = dropout
        self.output_scale = output_scale
        self.activation = activation
        self.mlp_ratio = mlp_ratio

    def build(self, input_shape):
        if input_shape[0] != self.groups:  # the kernels' leading axis is the input's group axis
            raise ValueError(f"LevelMLP with groups={self.groups} got input of shape {tuple(input_shape)}")
        u = self.units * self.mlp_ratio  # the hidden width H
        shapes = {"q": (input_shape[-1], u), "k": (u, u), "v": (u, u)}
        if self.mlp_ratio != 1:
            shapes["out"] = (u, self.units)
        self.dense = {}
        for name, (fan_in, width) in shapes.items():
            layer = keras.layers.EinsumDense(
                "gni,gio->gno",  # (G, N, in) x (G, in, out) -> (G, N, out)
                output_shape=(None, width),  # all but the first (group) axis
                bias_axes="go",
                kernel_initializer=keras.initializers.VarianceScaling(
                    1.0 / 3.0, "fan_in", "uniform"
                ),  # PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
                bias_initializer=keras.initializers.RandomUniform(-(fan_in**-0.5), fan_in**-0.5),
                name=name,
            )
            in_shape = tuple(input_shape[:-1]) + (fan_in,)
            layer.build(in_shape)
            self.dense[name] = layer
        self.q, self.k, self.v = self.dense["q"], self.dense["k"], self.dense["v"]
        self.out = self.dense.get("out")

    def call(self, x, seed=None, training=False):
        seeds = [None] * 4
        if training and self.dropout > 0.0 and seed is not None:
            seeds = [stateless.offset_seed(seed, 0, i) for i in range(4)]
        f = getattr(ops, self.activation)  # ops.tanh, or ops.gelu (its tanh approximation)
        q = f(self.q(stateless.dropout(x, self.dropout, seeds[0])))  # (G, N, H)
        k = f(self.k(stateless.dropout(q, self.dropout, seeds[1]))) + q  # (G, N, H)
        v = f(self.v(stateless.dropout(k, self.dropout, seeds[2]))) + q + k  # (G, N, H)
        if self.out is not None:
            v = self.out(stateless.dropout(v, self.dropout, seeds[3]))  # (G, N, units)
        return self.output_scale * v

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {
            **super().get_config(),
            "groups": self.groups,
            "units": self.units,
            "dropout": self.dropout,
            "output_scale": self.output_scale,
            "activation": self.activation,
            "mlp_ratio": self.mlp_ratio,
        }
