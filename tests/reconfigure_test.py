"""training.reconfigure: a trained model's inference-only fields changed, its weights kept."""

import os

import numpy as np

import glom_tf
from glom_tf.cli import load_glom_model
from tests.test_case import GlomTestCase, mnist_digits
from tests.training_test import call_main, one_line_error, plain_keras_model
from training.reconfigure import main


class ReconfigureTest(GlomTestCase):
    def saved_model(self):
        config = glom_tf.get_preset("tiny").with_overrides(steps=3, readout="mean")
        model = glom_tf.build_model(config)
        path = os.path.join(self.get_temp_dir(), "m.keras")
        model.save(path)
        return model, path

    def test_sets_tta_flip_and_keeps_the_weights(self):
        model, path = self.saved_model()
        out = os.path.join(self.get_temp_dir(), "tta.keras")
        run = call_main(main, "--model", path, "--set", "tta_flip=true", "--out", out)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("tta_flip=True", run.stdout)
        new = load_glom_model(out)
        self.assertTrue(new.tta_flip)
        self.assertEqual(new.spec, model.spec.with_overrides(tta_flip=True))  # nothing else changed
        self.assertEqual([w.path for w in new.weights], [w.path for w in model.weights])
        for a, b in zip(new.get_weights(), model.get_weights()):
            self.assertAllEqual(a, b)
        # Its answer is the mirror average of the source model's scores (numpy flips).
        x, _ = mnist_digits(4)
        expected = (np.asarray(model(x)) + np.asarray(model(x[:, :, ::-1]))[:, :, ::-1]) / 2
        self.assertAllClose(new(x), expected, atol=1e-5)

    def test_refuses_weight_fields_and_keeps_saved_files(self):
        _, path = self.saved_model()
        out = os.path.join(self.get_temp_dir(), "out.keras")
        with open(out, "w") as f:
            f.write("keep")
        for argv, needle in (
            (("--set", "dim=16", "--out", out + ".new.keras"), "not an inference-only field"),
            (("--set", "activation=gelu", "--out", out + ".new.keras"), "not an inference-only field"),
            (("--set", "epochs=3", "--out", out + ".new.keras"), "not an inference-only field"),
            (("--set", "nonsense=1", "--out", out + ".new.keras"), "not an inference-only field"),
            (("--set", "tta_flip=maybe", "--out", out + ".new.keras"), "tta_flip expects true or false"),
            (("--set", "readout=mean", "--out", out + ".new.keras"), "nothing to change"),
            (("--out", out + ".new.keras"), "nothing to change"),
            (("--set", "tta_flip=true", "--out", out), "exists"),
            (("--set", "tta_flip=true", "--out", path, "--overwrite"), "source model"),
            (("--set", "tta_flip=true", "--out", out + ".h5"), "name a .keras file"),
        ):
            with self.subTest(argv=argv):
                one_line_error(self, call_main(main, "--model", path, *argv), needle=needle)
        self.assertEqual(open(out).read(), "keep")
        self.assertFalse(os.path.exists(out + ".new.keras"))
        plain = plain_keras_model(os.path.join(self.get_temp_dir(), "plain.keras"))
        run = call_main(main, "--model", plain, "--set", "tta_flip=true", "--out", out + ".new.keras")
        one_line_error(self, run, needle="not a GLOM model")
