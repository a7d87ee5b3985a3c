"""glom_tf: GLOM (Hinton 2021) as Keras 3 layers, for the TensorFlow and JAX backends.

The names below load on first use, so `import glom_tf.cli` or `glom_tf.config` does not
import Keras or TensorFlow.
"""

import importlib

_EXPORTS = {
    "CellLoss": "glom_tf.readout",
    "Config": "glom_tf.config",
    "ConfigError": "glom_tf.config",
    "GlomModel": "glom_tf.model",
    "GlomStep": "glom_tf.step",
    "LevelMLP": "glom_tf.level_mlp",
    "ModelConfig": "glom_tf.config",
    "Neighbourhood": "glom_tf.neighbourhood",
    "ReadoutMetric": "glom_tf.readout",
    "SameLevelAttention": "glom_tf.attention",
    "agreement": "glom_tf.readout",
    "build_model": "glom_tf.model",
    "class_probabilities": "glom_tf.readout",
    "get_preset": "glom_tf.presets",
    "presets": "glom_tf.presets",
    "readout": "glom_tf.readout",
    "torus_shift": "glom_tf.neighbourhood",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'glom_tf' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
