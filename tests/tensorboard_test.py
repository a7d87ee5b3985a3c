"""TensorBoard output of training runs, read back from their event files.

Two short runs of the tiny preset on real digits share one log directory (`runs/a`, `runs/b`,
the second with another `dim` and the island and denoising objectives), as a researcher
comparing runs would open it with `tensorboard --logdir runs`. The tests read what TensorBoard
reads: the event files, and the HParams plugin's own answers for that directory.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

from tests.test_case import GlomTestCase, mnist_dir

EPOCHS = 2
STEPS = 300 // 32  # optimizer steps per epoch (train_size 300, batch 32, remainder dropped)
RUNS = {
    "runs/a": {},
    "runs/b": {"dim": 12, "island_weight": 0.1, "denoise_weight": 0.1},
}
VALIDATION_METRICS = {"epoch_loss", "epoch_vote_accuracy", "epoch_mean_accuracy", "epoch_agreement"}


def accumulator(run_dir: str):
    from tensorboard.backend.event_processing import event_accumulator

    guidance = {"tensors": 0, "images": 0, "scalars": 0}
    acc = event_accumulator.EventAccumulator(run_dir, size_guidance=guidance)
    acc.Reload()
    return acc


def series(acc, tag: str) -> list[tuple[int, float]]:
    """[(step, value)] of a scalar tag (TF2 summaries are tensors)."""
    import tensorflow as tf

    return [(e.step, float(tf.make_ndarray(e.tensor_proto).reshape(-1)[0])) for e in acc.Tensors(tag)]


def hparams_plugin_answers(logdir: str) -> tuple[dict, dict]:
    """(experiment, session groups) as TensorBoard's HParams dashboard receives them."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import hparams_plugin
    from werkzeug.test import Client

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, logdir)
    context = base_plugin.TBContext(logdir=logdir, data_provider=provider, multiplexer=mux)
    apps = hparams_plugin.HParamsPlugin(context).get_plugin_apps()
    experiment = Client(apps["/experiment"]).post("/", json={"experimentName": "", "hparamsLimit": 1000})
    statuses = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
    request = {"experimentName": "", "allowedStatuses": statuses, "startIndex": 0, "sliceSize": 100}
    groups = Client(apps["/session_groups"]).post("/", json={**request, "aggregationType": "AGGREGATION_AVG"})
    return json.loads(experiment.get_data()), json.loads(groups.get_data())


class TensorBoardTest(GlomTestCase):
    root = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from glom_tf.presets import get_preset
        from training.train import fit

        cls.root = tempfile.mkdtemp()
        cwd = os.getcwd()
        os.chdir(cls.root)  # the workdirs as a user gives them: relative paths
        try:
            for workdir, values in RUNS.items():
                config = get_preset("tiny").with_overrides(
                    train_size=300, validation_size=100, epochs=EPOCHS, jit_compile=False, **values
                )
                fit(config, workdir, mnist_dir(), verbose=0)
        finally:
            os.chdir(cwd)

    @classmethod
    def tearDownClass(cls):
        if cls.root:
            shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def run_dir(self, workdir: str, run: str) -> str:
        return os.path.join(self.root, workdir, "tensorboard", run)

    def test_hparams_one_trial_per_workdir_with_validation_metrics(self):
        from tensorboard.plugins.hparams import metadata

        from glom_tf.config import Config

        for workdir, values in RUNS.items():
            acc = accumulator(self.run_dir(workdir, "validation"))
            content = acc.SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
            start = metadata.parse_session_start_info_plugin_data(content)
            self.assertEqual(start.group_name, workdir)
            self.assertEqual(set(start.hparams), set(Config.field_names()))
            self.assertEqual(start.hparams["dim"].number_value, values.get("dim", 8))
            self.assertEqual(start.hparams["attention"].string_value, "learned")
            # The session's metric columns are the scalars of its run: validation figures only.
            self.assertEqual(set(acc.Tags()["tensors"]) - {metadata.SESSION_START_INFO_TAG},
                             VALIDATION_METRICS | ({"epoch_island_loss"} if values else set()))  # fmt: skip

        # What the HParams dashboard gets for `tensorboard --logdir runs`: one table, two trials
        # named after their workdirs, the differing config values first (it shows five).
        experiment, groups = hparams_plugin_answers(os.path.join(self.root, "runs"))
        hparams = [h["name"] for h in experiment["hparamInfos"]]
        differ = [h["name"] for h in experiment["hparamInfos"] if h.get("differs")]
        self.assertEqual(set(differ), {"dim", "island_weight", "denoise_weight"})
        self.assertEqual(set(hparams[:3]), set(differ))
        metrics = [(m["name"].get("group", ""), m["name"]["tag"]) for m in experiment["metricInfos"]]
        self.assertEqual({tag for _, tag in metrics[:5]}, VALIDATION_METRICS | {"epoch_island_loss"})
        by_name = {g["name"]: g for g in groups["sessionGroups"]}
        self.assertEqual(set(by_name), set(RUNS))
        for workdir, group in by_name.items():
            self.assertEqual(group["hparams"]["dim"], RUNS[workdir].get("dim", 8))
            shown = {m["name"]["tag"]: m for m in group["metricValues"]}
            self.assertTrue(VALIDATION_METRICS <= set(shown), shown.keys())
            final = dict(series(accumulator(self.run_dir(workdir, "validation")), "epoch_vote_accuracy"))
            self.assertAlmostEqual(shown["epoch_vote_accuracy"]["value"], final[EPOCHS - 1], places=5)
            self.assertEqual(shown["epoch_vote_accuracy"]["trainingStep"], EPOCHS - 1)

    def test_training_loss_is_live_within_the_first_epoch(self):
        train = accumulator(self.run_dir("runs/a", "train"))
        batch = series(train, "batch_loss")
        first_epoch = [(s, v) for s, v in batch if s <= STEPS]
        self.assertGreaterEqual(len(first_epoch), 4)
        self.assertEqual(batch[0][0], 1)  # every step here: 9 steps per epoch, at least 4 points
        # Each point is the mean loss of the batches since the previous one: over the first
        # epoch they average to Keras' epoch loss.
        epoch_loss = dict(series(train, "epoch_loss"))
        self.assertAllClose(np.mean([v for _, v in first_epoch]), epoch_loss[0], atol=1e-4)
        rates = series(train, "batch_learning_rate")
        self.assertEqual([s for s, _ in rates], [s for s, _ in batch])
        self.assertAllClose([v for _, v in rates], np.full(len(rates), 0.01))

    def test_every_custom_tag_has_a_description(self):
        from tensorboard.plugins.hparams import metadata

        names = ("levels", "similarity", "votes", "attention", "islands", "parse", "curves")
        parts = {f"parts/{name}" for name in names}
        islands = {"islands/agreement_object_cells", "islands/level1/islands", "islands/level2/largest"}
        islands |= {"islands/level1/neighbour_cosine", "islands/level2/distinct", "islands/level0/similarity"}
        islands |= {"islands/level0/nesting", "islands/level1/nesting"}  # not the top's (level 2)
        expected = {
            "train": {"batch_loss", "batch_learning_rate", "epoch_loss", "epoch_learning_rate"}
            | {"images_per_second"},
            "validation": VALIDATION_METRICS,
            "pictures": {"validation_panel"} | parts | islands,
        }
        for workdir in RUNS:
            runs = sorted(os.listdir(os.path.join(self.root, workdir, "tensorboard")))
            self.assertEqual(runs, ["pictures", "train", "validation"])
            for run, tags in expected.items():
                acc = accumulator(self.run_dir(workdir, run))
                written = set(acc.Tags()["tensors"]) - {metadata.SESSION_START_INFO_TAG}
                self.assertTrue(tags <= written, tags - written)
                self.assertNotIn("islands/level2/nesting", written)  # no level above the top
                for tag in written:
                    description = acc.SummaryMetadata(tag).summary_description
                    self.assertGreater(len(description.strip()), 20, f"{workdir} {run} {tag}")

    def test_per_epoch_tags_at_keras_epoch_steps(self):
        """keras.callbacks.TensorBoard logs epoch figures at step = epoch (0-based): so does
        everything per epoch here, each once; only batch_* tags use the optimizer's step."""
        epochs = list(range(EPOCHS))
        for workdir in RUNS:
            for run in ("train", "validation", "pictures"):
                acc = accumulator(self.run_dir(workdir, run))
                for tag in acc.Tags()["tensors"]:
                    steps = [e.step for e in acc.Tensors(tag)]
                    if tag.startswith("batch_"):
                        self.assertEqual(steps, list(range(1, EPOCHS * STEPS + 1)), tag)
                    elif tag.startswith("_hparams_/"):
                        self.assertEqual(steps, [0], tag)
                    elif tag.endswith("/mean_cosine"):  # absent at epochs where no image has 2 islands
                        self.assertTrue(set(steps) <= set(epochs) and len(set(steps)) == len(steps), tag)
                    else:
                        self.assertEqual(steps, epochs, f"{workdir} {run} {tag}")
            # The learning rate is logged once per epoch, in train/ only.
            tags = {
                run: {
                    t
                    for t in accumulator(self.run_dir(workdir, run)).Tags()["tensors"]
                    if "learning_rate" in t
                }
                for run in ("train", "validation", "pictures")
            }
            self.assertEqual(tags, {"train": {"epoch_learning_rate", "batch_learning_rate"},
                                    "validation": set(), "pictures": set()})  # fmt: skip
            speed = series(accumulator(self.run_dir(workdir, "train")), "images_per_second")
            self.assertTrue(all(v > 0 for _, v in speed), speed)

    def test_objective_losses_are_logged(self):
        a_train = set(accumulator(self.run_dir("runs/a", "train")).Tags()["tensors"])
        b_train = set(accumulator(self.run_dir("runs/b", "train")).Tags()["tensors"])
        b_val = set(accumulator(self.run_dir("runs/b", "validation")).Tags()["tensors"])
        self.assertFalse({"epoch_island_loss", "epoch_denoise_loss"} & a_train)
        self.assertTrue({"epoch_island_loss", "epoch_denoise_loss"} <= b_train)
        self.assertIn("epoch_island_loss", b_val)
        self.assertNotIn("epoch_denoise_loss", b_val)  # denoising is a training-only objective

    def test_pictures_fit_a_card(self):
        import tensorflow as tf

        acc = accumulator(self.run_dir("runs/a", "pictures"))
        for tag in acc.Tags()["tensors"]:
            if tag == "validation_panel" or tag.startswith("parts/"):
                proto = acc.Tensors(tag)[-1].tensor_proto
                width, height = int(proto.string_val[0]), int(proto.string_val[1])
                png = tf.io.decode_png(proto.string_val[2]).numpy()
                self.assertEqual(png.shape[:2], (height, width))
                self.assertLessEqual(width, 700, tag)  # TensorBoard's cards are about 400 px wide


class PanelTest(GlomTestCase):
    """The validation panel marks wrong answers: a model stub that answers class 3 everywhere."""

    class Stub:
        readout = "vote"

        def __call__(self, images, training=False):
            scores = np.zeros((len(images), 4, 4, 10), np.float32)
            scores[..., 3] = 1.0
            return scores

    def shaded(self, labels) -> int:
        from training.visualize import vote_panel

        images = np.random.default_rng(0).random((len(labels), 28, 28, 1)).astype(np.float32)
        panel = vote_panel(self.Stub(), images, np.array(labels), title="test")
        self.assertEqual(panel.dtype, np.uint8)
        return int(np.all(np.abs(panel.astype(int) - [0xF4, 0xB6, 0xB6]) <= 2, axis=-1).sum())

    def test_wrong_answers_are_shaded(self):
        self.assertEqual(self.shaded([3] * 8), 0)
        one, five = self.shaded([3, 3, 3, 3, 3, 3, 3, 1]), self.shaded([3, 3, 3, 0, 1, 2, 4, 5])
        self.assertGreater(one, 1000)
        self.assertAllClose(five / one, 5.0, rtol=0.05)


class PictureScheduleTest(GlomTestCase):
    def test_picture_epochs_and_batch_points(self):
        from training.callbacks import batch_log_every, picture_epochs

        self.assertEqual(picture_epochs(3), {0, 1, 2})
        many = picture_epochs(14)
        self.assertEqual(len(many), 10)  # TensorBoard keeps 10 images per tag by default
        self.assertTrue({0, 13} <= many)
        self.assertEqual(batch_log_every(9, 2), 1)
        self.assertEqual(batch_log_every(70, 14), 2)  # the main command: 490 points
        self.assertEqual(batch_log_every(930, 7), 14)  # full MNIST: 465 points
