"""glom_tf: GLOM (Hinton 2021) as Keras 3 layers, for the TensorFlow and JAX backends.

Names load on first use, so `glom_tf.config` (plain data) is importable without Keras.
"""

import importlib

_EXPORTS = {
    "SameLevelAttention": "glom_tf.attention",
    "Config": "glom_tf.config",
    "ConfigError": "glom_tf.config",
    "get_preset": "glom_tf.config",
    "presets": "glom_tf.config",
    "LevelMLP": "glom_tf.level_mlp",
    "GlomModel": "glom_tf.model",
    "build_model": "glom_tf.model",
    "compile_model": "glom_tf.model",
    "Neighbourhood": "glom_tf.neighbourhood",
    "torus_shift": "glom_tf.neighbourhood",
    "CellLoss": "glom_tf.readout",
    "ReadoutMetric": "glom_tf.readout",
    "agreement": "glom_tf.readout",
    "class_probabilities": "glom_tf.readout",
    "GlomStep": "glom_tf.step",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'glom_tf' has no attribute {name!r}")
