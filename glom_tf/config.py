"""Plain-data configuration: `ModelConfig` (the model's fields) and `Config` (model + training).

`ModelConfig` is the one definition of a GLOM model's fields: `GlomModel` takes exactly these
as keyword arguments, stores them as `model.spec`, and `get_config` returns them, so a field
added here reaches the config, `--set`, the saved `.keras` file and the exports with no other
edit. `Config` adds the training recipe. Both validate themselves, raising `ConfigError`
(a one-line message) for unknown keys and bad values. Presets: glom_tf/presets.py.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

from glom_tf.cli import UserError

T = TypeVar("T", bound="ModelConfig")


class ConfigError(UserError, ValueError):
    """A configuration value is unknown, mistyped or out of range."""


def _typed(key: str, value: Any, default: Any) -> Any:
    """`value` as the type of the field's default (JSON lists become tuples, whole numbers
    floats); a ConfigError for a value of another type (e.g. a hand-edited config.json)."""
    kind = type(default)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is tuple:
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, kind)
    if not ok:
        expected = {bool: "true or false", int: "an integer", float: "a number", tuple: "a list of integers"}
        raise ConfigError(f"{key} expects {expected.get(kind, 'a string')}, got {value!r}")
    return value


ATTENTIONS = ("similarity", "learned", "plain", "none")
SAME_LEVEL = ("mlp", "consensus")
UPDATES = ("residual", "average")
POSITIONS = ("none", "top_down", "input")
ACTIVATIONS = ("tanh", "gelu")  # the networks' nonlinearity: keras.ops functions of these names
# The fields that change only how a trained model answers, not its weights or its training:
# `python -m training.reconfigure` may change these in a saved model.
INFERENCE_FIELDS = ("readout", "tta_flip")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The fields of a GLOM model; defaults are the original notebook's (the `seed` preset)."""

    # The grid of columns.
    image_size: int = 28  # input height = width (MNIST: 28)
    channels: int = 1
    patch_size: int = 1  # 1 = one column per pixel (the original); p = non-overlapping p x p patches
    levels: int = 4  # level 0 holds the embedded input, levels 1.. are updated
    dim: int = 10  # vector size per level
    steps: int = 30  # time steps of the dynamics
    num_classes: int = 10
    # The networks.
    embedding: str = "repeat"  # "repeat" (pixel value repeated dim times, the original) or "linear"
    hidden_scale: float = 0.01  # output scale of each network (the original's 0.01 * v)
    activation: str = "tanh"  # the networks' nonlinearity: "tanh" (the original) or "gelu"
    mlp_ratio: int = 1  # each network's hidden width in units of dim (1: the original's dim wide)
    dropout: float = 0.1  # before each Dense of each network
    radius: int = 1  # neighbourhood radius: (2r+1)^2 torus neighbours (1 = 3x3)
    # Same-level weights over the neighbours: "similarity" (softmax of dot products), "learned"
    # (learned queries/keys), "plain" (equal weights: the original's plain concatenation), "none"
    # (no same-level term).
    attention: str = "plain"
    attention_dim: int = 0  # width of learned queries/keys (attention="learned")
    attention_beta: float = 1.0  # inverse temperature of the attention softmax
    # What the same-level term is: "mlp" (the weighted neighbourhood through a network, the
    # original) or "consensus" (the paper: the weighted average of the neighbours' vectors).
    same_level: str = "mlp"
    # How the terms combine: "residual" (state + sum of the networks' outputs, the original) or
    # "average" (the paper: a weighted average of the previous vector, bottom-up, top-down and
    # same-level terms).
    update: str = "residual"
    learned_update_weights: bool = False  # "average": per-level softmax weights of the terms
    state_norm: bool = False  # layer-normalise every updated level vector after each step
    top_down: bool = True
    # Where each column's location enters (a learned (grid, grid, dim) embedding): "none" (the
    # original: the networks see no location; the torus has no edges), "top_down" (the paper:
    # added to the top-down networks' input, as glom-pytorch does) or "input" (added to level 0).
    position: str = "none"
    init_state: str = "uniform"  # "uniform" [0, 0.1), "zeros", "learned"
    noise: float = 1e-4  # uniform [0, noise) added to the state each training step (level 0 too)
    skip_periods: tuple[int, ...] = (15, 7, 3)  # the original's "saved states" accumulators; () = off
    skip_weight: float = 0.1
    normalize: bool = False  # networks read RMS-normalised level vectors (not in the original)
    head: bool = False  # Dense(dim -> classes) on the top level; False reads the top level itself
    readout: str = "vote"  # "vote" (majority of per-cell argmax) or "mean" (mean of cell scores)
    # Test-time augmentation: at inference each cell's scores are averaged with those its mirror
    # cell gets from the left-right mirrored image, so the answer is mirror-invariant. For data
    # whose labels a mirror keeps (garments, not digits); twice the inference cost; no weights.
    # The per-step figures (`unroll`: states, pictures, island figures, settling curves and
    # their answers) are the image's own pass; the model's answer (`call`) is the average.
    tta_flip: bool = False
    # The island objective (glom_tf/objectives.py), added to the loss when island_weight > 0.
    island_weight: float = 0.0
    island_temperature: float = 0.1
    # Per updated level (1..L-1): negatives are object cells at Chebyshev distance >= scale;
    # 0 = the whole object is one island (negatives: other images). () = 2, 3, ..., then 0 at the top.
    island_scales: tuple[int, ...] = ()
    island_threshold: float = 0.9  # cosine above which two neighbouring cells share an island
    # Part levels: weight of the term that pushes each 4-neighbouring pair of object cells out of
    # cosine (0.5, (1 + island_threshold) / 2): one island or distinct (objectives.sharpness_loss).
    island_sharpness: float = 0.0
    # Weight of the term asking each island of an updated level to lie within one island of the
    # level above (objectives.nesting_loss): neighbouring object cells agree no more at a level
    # than above it (every pair's cosines ordered by level, which nesting follows from).
    island_nesting: float = 0.0
    # Denoising: mask this fraction of patches in training and reconstruct them from the columns.
    denoise_weight: float = 0.0
    mask_ratio: float = 0.25
    remat: bool = True  # rematerialise each time step in the backward pass
    unroll_steps: bool = False  # Python-unroll the T steps (T compiled copies) instead of a symbolic loop
    seed: int = 0

    # Construction ---------------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls: type[T], values: dict[str, Any]) -> T:
        """Validated instance from a dict (JSON lists become tuples); unknown keys are errors."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
        values = {k: _typed(k, v, fields[k].default) for k, v in values.items()}
        config = cls(**values)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def with_overrides(self: T, **values: Any) -> T:
        """A validated copy with values replaced."""
        return type(self).from_dict({**dataclasses.asdict(self), **values})

    def model_config(self) -> ModelConfig:
        """The model's fields only."""
        return ModelConfig(**{k: getattr(self, k) for k in ModelConfig.field_names()})

    # Derived values -------------------------------------------------------------------------

    @property
    def grid(self) -> int:
        """Cells per side of the column grid."""
        return self.image_size // max(self.patch_size, 1)  # validate() rejects patch_size < 1

    @property
    def resolved_island_scales(self) -> tuple[int, ...]:
        """One scale per updated level (see `island_scales`)."""
        if self.island_scales:
            return tuple(self.island_scales)
        return tuple(range(2, self.levels)) + (0,)

    # Validation -----------------------------------------------------------------------------

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.image_size >= 3, "image_size must be >= 3"),
            (self.channels >= 1, "channels must be >= 1"),
            (self.patch_size >= 1, "patch_size must be >= 1"),
            (
                self.patch_size >= 1 and self.image_size % self.patch_size == 0,
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
            (self.activation in ACTIVATIONS, f"activation must be one of {', '.join(ACTIVATIONS)}"),
            (self.mlp_ratio >= 1, "mlp_ratio must be >= 1"),
            (self.radius >= 1, "radius must be >= 1"),
            (2 * self.radius + 1 <= self.grid, "radius too large: 2 * radius + 1 must be <= the grid size"),
            (self.attention in ATTENTIONS, f"attention must be one of {', '.join(ATTENTIONS)}"),
            (
                self.attention != "learned" or self.attention_dim >= 1,
                "attention='learned' needs attention_dim >= 1",
            ),
            (self.attention_beta > 0.0, "attention_beta must be > 0"),
            (self.same_level in SAME_LEVEL, f"same_level must be one of {', '.join(SAME_LEVEL)}"),
            (
                self.same_level != "consensus" or self.attention != "none",
                "same_level='consensus' needs an attention other than 'none'",
            ),
            (self.update in UPDATES, f"update must be one of {', '.join(UPDATES)}"),
            (self.position in POSITIONS, f"position must be one of {', '.join(POSITIONS)}"),
            (
                self.position != "top_down" or (self.top_down and self.levels > 2),
                "position='top_down' needs top_down=true and levels > 2",
            ),
            (
                self.init_state in ("uniform", "zeros", "learned"),
                "init_state must be 'uniform', 'zeros' or 'learned'",
            ),
            (self.noise >= 0.0, "noise must be >= 0"),
            (all(p >= 1 for p in self.skip_periods), "skip_periods must be >= 1"),
            (self.head or self.dim == self.num_classes, "head=False needs dim == num_classes"),
            (self.readout in ("vote", "mean"), "readout must be 'vote' or 'mean'"),
            (self.island_weight >= 0.0, "island_weight must be >= 0"),
            (self.island_temperature > 0.0, "island_temperature must be > 0"),
            (
                not self.island_scales or len(self.island_scales) == self.levels - 1,
                f"island_scales needs {self.levels - 1} values (one per updated level)",
            ),
            (all(s >= 0 for s in self.island_scales), "island_scales must be >= 0"),
            (-1.0 < self.island_threshold < 1.0, "island_threshold must be in (-1, 1)"),
            (self.island_sharpness >= 0.0, "island_sharpness must be >= 0"),
            (
                not self.island_sharpness or (self.island_weight > 0 and self.island_threshold > 0),
                "island_sharpness needs island_weight > 0 and island_threshold > 0",
            ),
            (self.island_nesting >= 0.0, "island_nesting must be >= 0"),
            (not self.island_nesting or self.island_weight > 0, "island_nesting needs island_weight > 0"),
            (
                not self.island_nesting or self.levels > 2,
                "island_nesting needs levels > 2 (two updated levels)",
            ),
            (self.denoise_weight >= 0.0, "denoise_weight must be >= 0"),
            (0.0 < self.mask_ratio < 1.0, "mask_ratio must be in (0, 1)"),
        ]

    def validate(self) -> None:
        """Raises ConfigError naming the first invalid value."""
        for ok, message in self.checks():
            if not ok:
                raise ConfigError(message)


LOSSES = ("mse", "crossentropy", "mean_crossentropy", "none")


@dataclasses.dataclass(frozen=True)
class Config(ModelConfig):
    """A model's fields and its training recipe; plain data, JSON-serialisable."""

    # "mse" to one-hot at every cell (the original), "crossentropy" at every cell,
    # "mean_crossentropy" of the mean readout (the cells' mean score), or "none"
    # (self-supervised: only the island and denoising objectives train the model)
    loss: str = "mse"
    dataset: str = "mnist"
    batch_size: int = 60
    epochs: int = 1
    learning_rate: float = 0.01
    warmup_steps: int = 0
    # Cosine decay to 0 over `decay_epochs` epochs (0 = over `epochs`). The schedule is a
    # function of the step alone, so a run continued with more epochs keeps training at the
    # rate the config states; set decay_epochs to plan a schedule longer than one sitting.
    cosine_decay: bool = False
    decay_epochs: int = 0
    weight_decay: float = 0.0
    clipnorm: float = 0.0  # 0 = no clipping
    validation_size: int = 500  # held out from the training split
    train_size: int = 0  # 0 = all remaining training examples
    augment_shift: int = 0  # random shifts of up to this many pixels
    augment_rotate: float = 0.0  # random rotations of up to this many degrees
    augment_scale: float = 0.0  # random zoom by a factor in [1 - s, 1 + s]
    augment_flip: bool = False  # mirror left-right with probability 1/2 (garments, not digits)
    jit_compile: bool = True
    # A trained model's .keras file whose weights start the run instead of a fresh initialisation
    # (fine-tuning, e.g. with other augmentation); the optimizer and schedule start fresh. Weights
    # are matched by path (training.train.initial_weights). "" = a fresh initialisation.
    init_from: str = ""

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.loss in LOSSES, f"loss must be one of {', '.join(LOSSES)}"),
            (
                self.loss != "none" or self.island_weight > 0 or self.denoise_weight > 0,
                "loss='none' needs island_weight or denoise_weight > 0",
            ),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.epochs >= 0, "epochs must be >= 0"),
            (0.0 < self.learning_rate < 1e3, "learning_rate must be in (0, 1000)"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (self.decay_epochs >= 0, "decay_epochs must be >= 0"),
            (self.weight_decay >= 0.0, "weight_decay must be >= 0"),
            (self.clipnorm >= 0.0, "clipnorm must be >= 0"),
            (self.validation_size >= 0, "validation_size must be >= 0"),
            (self.train_size >= 0, "train_size must be >= 0"),
            (self.augment_shift >= 0, "augment_shift must be >= 0"),
            (0.0 <= self.augment_rotate <= 180.0, "augment_rotate must be in [0, 180]"),
            (0.0 <= self.augment_scale < 1.0, "augment_scale must be in [0, 1)"),
            (not self.init_from or self.init_from.endswith(".keras"), "init_from must name a .keras file"),
        ]
