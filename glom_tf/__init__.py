"""glom_tf: GLOM (Hinton 2021) as Keras 3 layers, for the TensorFlow and JAX backends."""

from glom_tf.attention import SameLevelAttention
from glom_tf.config import Config, ConfigError, get_preset, presets
from glom_tf.level_mlp import LevelMLP
from glom_tf.model import GlomModel, build_model, compile_model
from glom_tf.neighbourhood import Neighbourhood, torus_shift
from glom_tf.readout import CellLoss, ReadoutMetric, agreement, class_probabilities
from glom_tf.step import GlomStep

__all__ = [
    "CellLoss",
    "Config",
    "ConfigError",
    "GlomModel",
    "GlomStep",
    "LevelMLP",
    "Neighbourhood",
    "ReadoutMetric",
    "SameLevelAttention",
    "agreement",
    "build_model",
    "class_probabilities",
    "compile_model",
    "get_preset",
    "presets",
    "torus_shift",
]
