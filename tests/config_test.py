import json

from glom_tf.config import Config, ConfigError, get_preset, presets
from tests.test_case import GlomTestCase


class ConfigTest(GlomTestCase):
    def test_presets_are_valid_and_serialisable(self):
        for name, config in presets().items():
            config.validate()
            again = Config.from_dict(json.loads(config.to_json()))
            self.assertEqual(again, config, name)

    def test_seed_is_the_original(self):
        c = get_preset("seed")
        self.assertEqual((c.image_size, c.levels, c.dim, c.steps), (28, 4, 10, 30))
        self.assertEqual((c.skip_periods, c.skip_weight, c.noise), ((15, 7, 3), 0.1, 1e-4))
        self.assertEqual((c.loss, c.readout, c.learning_rate, c.batch_size), ("mse", "vote", 0.01, 60))

    def test_string_overrides_are_typed(self):
        c = get_preset("tiny").with_strings(["dim=12", "remat=false", "skip_periods=5,2", "loss=mse"])
        self.assertEqual((c.dim, c.remat, c.skip_periods, c.loss), (12, False, (5, 2), "mse"))
        self.assertEqual(get_preset("tiny").with_strings(["skip_periods="]).skip_periods, ())

    def test_bad_values_are_one_line_errors(self):
        cases = {
            "nope=1": "unknown config key: nope",
            "dim=abc": "dim expects a int",
            "epochs=-1": "epochs must be >= 0",
            "patch_size=5": "must divide image_size",
            "loss=hinge": "loss must be",
            "dim": "expects key=value",
        }
        for item, message in cases.items():
            with self.assertRaisesRegex(ConfigError, message):
                get_preset("tiny").with_strings([item])
        with self.assertRaisesRegex(ConfigError, "unknown preset"):
            get_preset("huge")
