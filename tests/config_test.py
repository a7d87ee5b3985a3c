import dataclasses
import json
import os
import re

import keras
import numpy as np

import glom_tf
from glom_tf.cli import UserError, parse_assignments
from glom_tf.config import (
    ACTIVATIONS,
    ATTENTIONS,
    POSITIONS,
    SAME_LEVEL,
    UPDATES,
    Config,
    ConfigError,
    ModelConfig,
)
from glom_tf.model import GlomModel, build_model
from glom_tf.presets import get_preset, presets
from tests.test_case import GlomTestCase

# Every string choice that ModelConfig accepts somewhere. A new string field whose choices are
# not here finds no valid non-default value, and the round-trip test says so.
STRING_CHOICES = (
    ATTENTIONS
    + SAME_LEVEL
    + UPDATES
    + POSITIONS
    + ACTIVATIONS
    + ("repeat", "linear", "uniform", "zeros", "learned", "vote", "mean")
)
DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)}


def candidates(value):
    """Values other than `value` of the same type, most natural first (validity unchecked)."""
    if isinstance(value, bool):
        out = [not value]
    elif isinstance(value, int):
        out = [value + 1, 2 * value, value + 2, value - 1, 1, 2, 0]
    elif isinstance(value, float):
        out = [2 * value if value else 0.5, value / 2, value + 0.1, 0.05, 0.5, 0.9]
    elif isinstance(value, tuple):
        out = [tuple([2] * n) for n in range(1, 7)] + [tuple([1] * n) for n in range(1, 7)] + [()]
    elif isinstance(value, str):
        out = list(STRING_CHOICES)
    else:
        raise AssertionError(f"no candidates for a {type(value).__name__}: extend this test")
    seen = []
    for v in out:
        if v != value and v not in seen and type(v) is type(value):
            seen.append(v)
    return seen


def valid(config, **overrides):
    try:
        return config.with_overrides(**overrides)
    except (ConfigError, TypeError):
        return None


def change(config, name):
    """{name: new value, ...}: a valid change of field `name` (with one companion field when no
    value is valid alone), preferring a value that differs from ModelConfig's default too."""
    options = sorted(candidates(getattr(config, name)), key=lambda v: v == DEFAULTS[name])
    for value in options:
        if valid(config, **{name: value}) is not None:
            return {name: value}
    for value in options:  # a companion field that makes the value valid
        for other in ModelConfig.field_names():
            if other == name:
                continue
            for companion in candidates(getattr(config, other)):
                if valid(config, **{name: value, other: companion}) is not None:
                    return {name: value, other: companion}
    raise AssertionError(f"no valid non-default value for field {name!r}: extend this test's candidates")


def as_text(value) -> str:
    """A value as `--set key=value` writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


class ConfigTest(GlomTestCase):
    def test_presets_are_valid_and_serialisable(self):
        table = presets()
        self.assertEqual(
            sorted(table),
            ["consensus", "default", "fashion_mnist", "islands", "mnist", "seed", "small", "tiny"],
        )
        for name, config in table.items():
            self.assertIsInstance(config, Config)
            config.validate()
            again = Config.from_dict(json.loads(config.to_json()))
            self.assertEqual(again, config, name)
        self.assertEqual(glom_tf.get_preset("tiny"), get_preset("tiny"))

    def test_seed_is_the_original(self):
        c = get_preset("seed")
        self.assertEqual((c.image_size, c.levels, c.dim, c.steps), (28, 4, 10, 30))
        self.assertEqual((c.skip_periods, c.skip_weight, c.noise), ((15, 7, 3), 0.1, 1e-4))
        self.assertEqual((c.loss, c.readout, c.learning_rate, c.batch_size), ("mse", "vote", 0.01, 60))
        self.assertEqual((c.attention, c.same_level, c.update, c.radius), ("plain", "mlp", "residual", 1))
        self.assertEqual((c.island_weight, c.denoise_weight, c.state_norm), (0.0, 0.0, False))
        self.assertEqual(c.model_config(), ModelConfig())  # the ModelConfig defaults are the seed

    def test_model_config_holds_the_model_fields_only(self):
        c = get_preset("tiny")
        model = c.model_config()
        self.assertIs(type(model), ModelConfig)
        self.assertEqual(set(model.to_dict()), set(ModelConfig.field_names()))
        self.assertIn("batch_size", c.to_dict())
        self.assertNotIn("batch_size", model.to_dict())
        for name in ModelConfig.field_names():
            self.assertEqual(getattr(model, name), getattr(c, name), name)
        self.assertEqual(ModelConfig.from_dict(model.to_dict()), model)
        self.assertEqual(c.with_overrides(dim=12).dim, 12)
        self.assertEqual(c.dim, 8)  # frozen: with_overrides returns a copy
        self.assertEqual(c.resolved_island_scales, (2, 0))
        self.assertEqual(c.with_overrides(levels=5).resolved_island_scales, (2, 3, 4, 0))
        self.assertEqual(c.grid, 4)

    def test_string_overrides_are_typed(self):
        c = parse_assignments(get_preset("tiny"), ["dim=12", "remat=false", "skip_periods=5,2", "loss=mse"])
        self.assertEqual((c.dim, c.remat, c.skip_periods, c.loss), (12, False, (5, 2), "mse"))
        self.assertEqual(parse_assignments(get_preset("tiny"), ["skip_periods="]).skip_periods, ())
        c = parse_assignments(
            get_preset("tiny"), ["attention-beta=2.5", "same_level=consensus", "state_norm=1"]
        )
        self.assertEqual((c.attention_beta, c.same_level, c.state_norm), (2.5, "consensus", True))

    def test_a_saved_config_of_the_wrong_types_is_refused(self):
        # config.json and the .keras file's config are JSON: a hand-edited value of another
        # type is a one-line error, not a crash later; JSON's lists and whole numbers convert.
        saved = json.loads(get_preset("mnist").to_json())
        self.assertEqual(Config.from_dict(saved), get_preset("mnist"))
        relaxed = Config.from_dict({**saved, "learning_rate": 1, "island_scales": [2, 3, 0]})
        self.assertEqual((relaxed.learning_rate, type(relaxed.learning_rate)), (1.0, float))
        self.assertEqual(relaxed.island_scales, (2, 3, 0))
        cases = {
            "levels": ("3", "levels expects an integer, got '3'"),
            "dim": (2.5, "dim expects an integer"),
            "remat": (1, "remat expects true or false"),
            "seed": (True, "seed expects an integer"),
            "learning_rate": ("0.1", "learning_rate expects a number"),
            "island_scales": ([2, "a"], "island_scales expects a list of integers"),
            "dataset": (3, "dataset expects a string"),
        }
        for key, (value, message) in cases.items():
            with self.subTest(key=key):
                with self.assertRaisesRegex(ConfigError, re.escape(message)):
                    Config.from_dict({**saved, key: value})
                if key in ModelConfig.field_names():  # a saved .keras file's config
                    with self.assertRaisesRegex(ConfigError, re.escape(message)):
                        ModelConfig.from_dict({**get_preset("mnist").model_config().to_dict(), key: value})

    def test_bad_values_are_one_line_errors(self):
        cases = {
            "nope=1": "unknown config key: nope",
            "dim=abc": "dim expects an integer, got 'abc'",
            "hidden_scale=nan": "hidden_scale expects a finite number, got 'nan'",
            "remat=maybe": "remat expects true or false, got 'maybe'",
            "skip_periods=a,b": "skip_periods expects a list of integers, got 'a,b'",
            "epochs=-1": "epochs must be >= 0",
            "patch_size=5": "must divide image_size",
            "patch_size=0": "patch_size must be >= 1",  # a one-line error, not ZeroDivisionError
            "loss=hinge": "loss must be",
            "attention=learned": None,  # valid: tiny sets attention_dim
            "attention_dim=0": "attention='learned' needs attention_dim >= 1",
            "radius=2": "radius too large",
            "island_scales=2": "island_scales needs 2 values",
            "mask_ratio=1": "mask_ratio must be in",
            "position=edges": "position must be one of none, top_down, input",
            "position=top_down": None,  # valid: tiny has 3 levels and top-down networks
            "dim": "expects key=value",
        }
        for item, message in cases.items():
            if message is None:
                parse_assignments(get_preset("tiny"), [item])
                continue
            with self.assertRaisesRegex(ConfigError, message):
                parse_assignments(get_preset("tiny"), [item])
        with self.assertRaisesRegex(ConfigError, "unknown preset"):
            get_preset("huge")
        with self.assertRaisesRegex(ConfigError, "unknown config key"):
            ModelConfig.from_dict({"batch_size": 3})  # a training field is not a model field
        with self.assertRaisesRegex(ConfigError, "same_level='consensus' needs"):
            ModelConfig().with_overrides(attention="none", same_level="consensus")
        with self.assertRaisesRegex(ConfigError, "position='top_down' needs"):
            get_preset("tiny").with_overrides(position="top_down", top_down=False)
        with self.assertRaisesRegex(ConfigError, "island_nesting needs island_weight > 0"):
            get_preset("tiny").with_overrides(island_nesting=1.0)
        with self.assertRaisesRegex(ConfigError, "island_nesting needs levels > 2"):
            get_preset("tiny").with_overrides(
                island_nesting=1.0, island_weight=1.0, levels=2, island_scales=()
            )
        get_preset("tiny").with_overrides(island_nesting=1.0, island_weight=1.0)  # 3 levels: valid
        self.assertTrue(issubclass(ConfigError, UserError) and issubclass(ConfigError, ValueError))


class FieldRoundTripTest(GlomTestCase):
    """Issue 16: every ModelConfig field reaches --set, get_config/from_config and a .keras file."""

    def test_every_model_field_round_trips(self):
        base = get_preset("tiny")
        names = ModelConfig.field_names()
        self.assertEqual(names, tuple(f.name for f in dataclasses.fields(ModelConfig)))
        self.assertGreaterEqual(len(names), 35)
        for name in names:
            overrides = change(base, name)
            config = base.with_overrides(**overrides)
            self.assertNotEqual(getattr(config, name), getattr(base, name), name)
            # The config, its dict and JSON forms.
            self.assertEqual(Config.from_dict(json.loads(config.to_json())), config, name)
            # --set: the string form parses back to the same typed value.
            parsed = parse_assignments(base, [f"{k}={as_text(v)}" for k, v in overrides.items()])
            self.assertEqual(parsed, config, name)
            self.assertEqual(type(getattr(parsed, name)), type(DEFAULTS[name]), name)
            # The model: GlomModel(**fields), model.spec, get_config and from_config (unbuilt: cheap).
            model = GlomModel(**config.model_config().to_dict())
            self.assertEqual(model.spec, config.model_config(), name)
            self.assertEqual(getattr(model, name), getattr(config, name), name)
            model_config = model.get_config()
            for key in names:
                self.assertIn(key, model_config)
            clone = GlomModel.from_config(json.loads(json.dumps(model_config)))
            self.assertEqual(clone.spec, config.model_config(), name)

        # A .keras save and load with (nearly) every field changed at once: greedy passes, each
        # changing every field not yet covered that stays valid, until every field has been saved
        # with a value other than its ModelConfig default.
        uncovered = list(names)
        passes = 0
        while uncovered:
            passes += 1
            self.assertLessEqual(passes, 3, f"fields never saved with a non-default value: {uncovered}")
            config = base
            for name in uncovered:
                if getattr(config, name) != DEFAULTS[name]:
                    continue
                value = next(
                    (
                        v
                        for v in candidates(getattr(config, name))
                        if v != DEFAULTS[name] and valid(config, **{name: v})
                    ),
                    None,
                )
                if value is not None:
                    config = config.with_overrides(**{name: value})
            self.assertLess(config.steps * config.grid, 40)  # keeps the model cheap
            self.check_keras_round_trip(config)
            uncovered = [n for n in uncovered if getattr(config, n) == DEFAULTS[n]]

    def check_keras_round_trip(self, config):
        model = build_model(config)
        x = np.random.default_rng(0).random((2, config.image_size, config.image_size, config.channels))
        x = x.astype("float32")
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        self.assertIsInstance(loaded, GlomModel)
        self.assertEqual(loaded.spec, config.model_config())
        for name in ModelConfig.field_names():
            self.assertEqual(getattr(loaded, name), getattr(config, name), name)
        self.assertEqual(loaded.get_config(), model.get_config())
        self.assertAllClose(loaded(x), model(x), atol=1e-6)
