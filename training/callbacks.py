"""Keras callbacks for training: atomic checkpoints with NaN stop, and TensorBoard logging."""

from __future__ import annotations

import dataclasses
import math
import os
import time

import keras
import numpy as np

from glom_tf.cli import save_model_atomic
from training import data


class Checkpointer(keras.callbacks.Callback):
    """Saves model + optimizer after each finite epoch, atomically; stops on a diverged loss.

    A loss is diverged when it is NaN or Inf, or when it exceeds `explode` times the first
    batch's loss. A killed run loses at most the epoch in progress; a diverged run keeps
    the checkpoint of the last good epoch (the diverged epoch is never written).
    """

    def __init__(self, path: str, explode: float = 1e3):
        super().__init__()
        self.path = path
        self.explode = explode
        self.diverged = None
        self.diverged_epoch = None
        self.last_logs = {}
        self._epoch = 0
        self._first_loss = None

    def _check(self, loss) -> str | None:
        loss = float(loss)
        if math.isnan(loss):
            return "nan"
        if math.isinf(loss):
            return "inf"
        if self._first_loss is None:
            self._first_loss = abs(loss)
        elif abs(loss) > self.explode * max(self._first_loss, 1e-3):
            return f"{loss:.3g} ({self.explode:g}x the first batch's {self._first_loss:.3g})"
        return None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and self.diverged is None:
            self.diverged = self._check(loss)
            if self.diverged:
                self.diverged_epoch = self._epoch
                self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged is not None:
            return
        self.last_logs = dict(logs or {})
        losses = [v for k, v in (logs or {}).items() if k.endswith("loss")]
        if any(not math.isfinite(float(v)) for v in losses):
            self.diverged, self.diverged_epoch = "nan", epoch
            self.model.stop_training = True
            return
        save_model_atomic(self.model, self.path)


# TensorBoard ---------------------------------------------------------------------------------

# What each epoch figure of the Keras logs means ("val_" dropped), for the tags' descriptions.
LOG_DESCRIPTIONS = {
    "loss": "The compiled loss (the `loss` config at every cell, averaged over cells: MSE to the "
    "one-hot target, cross-entropy, or none), plus island_weight x island_loss and "
    "denoise_weight x denoise_loss when those weights are > 0.",
    "vote_accuracy": "Fraction of images whose majority vote is the true class (each cell votes "
    "for the argmax of its top-level class scores).",
    "mean_accuracy": "Fraction of images whose mean of the cells' class scores peaks at the true class.",
    "agreement": "Fraction of an image's cells whose own vote is the class the model answers (its "
    "`readout`), averaged over images; all cells, not only the digit's.",
    "island_loss": "The island objective (glom_tf/objectives.py: contrastive loss pulling neighbouring "
    "object cells of each level together, plus island_sharpness x the term pushing neighbouring "
    "pairs to share an island or be distinct, plus island_nesting x the term asking each island to lie "
    "within one island of the level above), unweighted by island_weight.",
    "denoise_loss": "The denoising objective: mean squared error of the reconstructed masked patches, "
    "unweighted (training only).",
}
SPLITS = {
    "train": "Training: mean over the epoch's batches, in training mode (dropout, noise, "
    "augmentation and denoising masks on), while the weights change.",
    "validation": "Validation: the held-out validation images after the epoch, in inference mode.",
}


def picture_epochs(epochs: int, limit: int = 10) -> set[int]:
    """The epochs (0-based) that get pictures: all when `epochs` <= `limit`, else `limit` spread
    evenly from the first to the last, so TensorBoard's default sampling (10 images per tag)
    keeps them all."""
    if epochs <= limit:
        return set(range(epochs))
    return {int(round(e)) for e in np.linspace(0, epochs - 1, limit)}


def batch_log_every(steps_per_epoch: int, epochs: int, points: int = 500) -> int:
    """Batch-level points every N optimizer steps: at most about `points` in the run (TensorBoard
    keeps 1,000 per scalar tag) and at least 4 per epoch."""
    return max(1, min(math.ceil(steps_per_epoch * max(epochs, 1) / points), steps_per_epoch // 4))


def hparam_values(config) -> dict:
    """Every config field as an HParams value (tuples as text: "(15, 7, 3)", "()")."""
    return {
        k: v if isinstance(v, (bool, int, float, str)) else str(tuple(v))
        for k, v in dataclasses.asdict(config).items()
    }


class TensorBoardLogger(keras.callbacks.Callback):
    """Everything the run shows in TensorBoard, one writer per run directory under `logdir`:

    train/       epoch_<metric> of the training logs and epoch_learning_rate at step = epoch
                 (0-based, as keras.callbacks.TensorBoard); images_per_second at step = epoch;
                 batch_loss and batch_learning_rate every `batch_every` optimizer steps, at
                 step = the optimizer's step count, so the first epoch is visible live
    validation/  epoch_<metric> of the validation logs at step = epoch, and the HParams session:
                 the trial is `trial` (the workdir), its hyperparameters every config field; its
                 metric columns are validation/'s scalars (only those epoch figures live there)
    pictures/    at the epochs of `picture_epochs` (step = epoch): validation_panel, parts/*
                 (one validation image) and islands/* (the islands metrics of the panel's images)

    Every tag written has a description.
    """

    def __init__(
        self, logdir: str, config, validation, steps_per_epoch: int, trial: str,
        panel_size: int = 8, batch_every: int | None = None,
    ):  # fmt: skip
        super().__init__()
        self.logdir = logdir
        self.config = config
        self.trial = os.path.normpath(trial)
        self.images = data.model_images(validation, panel_size, config.image_size)  # (N, S, S, C)
        self.labels = validation.labels[:panel_size]
        self.steps_per_epoch = steps_per_epoch
        self.batch_every = batch_every or batch_log_every(steps_per_epoch, config.epochs)
        self.pictures = picture_epochs(config.epochs)
        self._writers = {}
        self._described = set()
        self._timing = None  # [seconds, batches] of the epoch's timed training batches
        self._batch_start = None
        self._untimed = True  # the first batch of a fit traces and compiles: not timed
        self._window = (0, 0.0)  # (batches, sum of their losses) at the last batch point this epoch

    # Writing --------------------------------------------------------------------------------

    def _writer(self, run: str):
        import tensorflow as tf

        if run not in self._writers:
            self._writers[run] = tf.summary.create_file_writer(os.path.join(self.logdir, run))
        return self._writers[run]

    def _scalar(self, run: str, tag: str, value, step: int, description: str):
        import tensorflow as tf

        with self._writer(run).as_default():
            tf.summary.scalar(tag, float(value), step=step, description=self._describe(run, tag, description))

    def _image(self, run: str, tag: str, pixels: np.ndarray, step: int, description: str):
        import tensorflow as tf

        with self._writer(run).as_default():
            tf.summary.image(tag, pixels[None], step=step, max_outputs=1,
                             description=self._describe(run, tag, description))  # fmt: skip

    def _describe(self, run: str, tag: str, description: str) -> str | None:
        """The description with the first event of a tag (TensorBoard reads it from there)."""
        if (run, tag) in self._described:
            return None
        self._described.add((run, tag))
        return description

    def _learning_rate(self) -> float:
        return float(np.asarray(self.model.optimizer.learning_rate))

    def _flush(self):
        for writer in self._writers.values():
            writer.flush()

    # Hooks ----------------------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        from tensorboard.plugins.hparams import api as hp

        with self._writer("validation").as_default():
            hp.hparams(hparam_values(self.config), trial_id=self.trial)
        self._untimed = True
        self._flush()

    def on_epoch_begin(self, epoch, logs=None):
        self._timing = [0.0, 0]
        self._window = (0, 0.0)

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        if "loss" not in logs:
            return
        loss = float(np.asarray(logs["loss"]))  # waits for the step to finish
        if self._batch_start is not None and not self._untimed:
            self._timing[0] += time.perf_counter() - self._batch_start
            self._timing[1] += 1
        self._untimed = False
        step = int(np.asarray(self.model.optimizer.iterations))
        if step % self.batch_every or not math.isfinite(loss):
            return
        # Keras logs the running mean over the epoch's batches (all of one size): the mean of
        # the batches since the last point is the difference of the running sums.
        done, total = batch + 1, (batch + 1) * loss
        since, before = self._window
        self._window = (done, total)
        n = self.batch_every
        self._scalar(
            "train", "batch_loss", (total - before) / max(done - since, 1), step,
            f"Training loss (as epoch_loss) averaged over the batches since the previous point "
            f"(every {n} optimizer steps; from the epoch's start for its first point), at the "
            "optimizer's step count: live values within an epoch.",
        )  # fmt: skip
        self._scalar(
            "train", "batch_learning_rate", self._learning_rate(), step,
            f"The optimizer's learning rate after this step (the schedule at the step count), "
            f"every {n} steps.",
        )  # fmt: skip

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        for key, value in logs.items():
            run, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            if run == "validation" and name == "denoise_loss":
                continue  # denoising runs in training only: Keras reports 0 here
            what = LOG_DESCRIPTIONS.get(name, f"The Keras log `{name}`.")
            self._scalar(run, f"epoch_{name}", value, epoch, f"{what} {SPLITS[run]} Step = epoch (0-based).")
        self._scalar(
            "train", "epoch_learning_rate", self._learning_rate(), epoch,
            "The optimizer's learning rate at the end of the epoch (the schedule at the step count). "
            "Step = epoch (0-based).",
        )  # fmt: skip
        seconds, batches = self._timing or (0.0, 0)
        if batches and seconds > 0:
            self._scalar(
                "train", "images_per_second", batches * self.config.batch_size / seconds, epoch,
                "Training images per second of this epoch: images of the timed training batches "
                "over the time spent inside them (from on_train_batch_begin until the batch's loss "
                "is available). Validation, pictures, checkpoints and other callbacks are not "
                "counted; the first batch of each training session (tracing and XLA compile) is "
                "left out. Step = epoch (0-based).",
            )  # fmt: skip
        if epoch in self.pictures and math.isfinite(float(logs.get("loss", 0.0))):
            self._pictures(epoch)
        self._flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # Pictures -------------------------------------------------------------------------------

    def _pictures(self, epoch: int):
        import tensorflow as tf

        from glom_tf.islands import OBJECT_THRESHOLD, settling_curves
        from training.visualize import figures, render, vote_panel

        n, step = len(self.labels), epoch
        title = f"{n} validation images, epoch {epoch}"
        panel = vote_panel(self.model, self.images, self.labels, title=title)
        self._image(
            "pictures", "validation_panel", panel, step,
            f"The first {n} validation images after epoch {epoch} (step = epoch, 0-based): each "
            "headed by its index, true label and the model's answer, with every cell's top-level "
            "vote coloured by class (legend at the bottom); wrong answers are shaded red. Logged at "
            f"{len(self.pictures)} epochs spread over the run.",
        )  # fmt: skip
        label = int(self.labels[0])
        figs, _ = figures(self.model, self.images[0], label=label, name=f"validation #0, epoch {epoch}")
        parts = {
            "levels": "each level's column vectors at a few time steps, coloured by a PCA per level "
            "(one colour = one vector: islands are patches of one colour)",
            "similarity": "each cell's mean cosine similarity with its 8 neighbours, per level, after "
            "the last step",
            "votes": "each cell's top-level vote, coloured by class",
            "attention": "the same-level attention weights of the centre cell over its "
            f"{2 * self.config.radius + 1}x{2 * self.config.radius + 1} neighbours, per level",
            "islands": "each updated level's islands at a few time steps (one colour per island, "
            "the object outlined), with the island count per panel",
            "parse": "the parse tree after the last step: each island under the island of the "
            "level above that covers most of it",
            "curves": "agreement, neighbour cosine, island count and largest island over the time steps",
        }
        for name, fig in figs.items():
            if name in parts:
                pixels = tf.image.decode_png(render(fig), channels=3).numpy()
                self._image(
                    "pictures", f"parts/{name}", pixels, step,
                    f"Validation image #0 (true label {label}) after epoch {epoch}: {parts[name]}.",
                )  # fmt: skip
            else:
                import matplotlib.pyplot as plt

                plt.close(fig)
        curves = settling_curves(self.model, self.images)
        keys = ("islands", "largest", "neighbour_cosine", "mean_cosine", "distinct", "nesting")
        final = {k: curves[k][-1] for k in keys}
        final["similarity"] = curves["similarity"][-1]
        over = f"mean over the first {n} validation images, after the last time step; step = epoch (0-based)"
        meaning = {
            "islands": "number of islands: connected groups of 4-neighbouring object cells whose vectors "
            f"have cosine > {curves['threshold']:g} (object cells: patches with a pixel > "
            f"{OBJECT_THRESHOLD:g})",
            "largest": "share of the object's cells in the largest island",
            "neighbour_cosine": "mean cosine of 4-neighbouring object cells",
            "mean_cosine": "mean cosine between the island mean vectors (images with >= 2 islands; "
            "absent when none has two)",
            "distinct": "1 - mean cosine between island means (0 for a single island)",
            "nesting": "share of the object's cells inside the island of the level above that covers "
            "most of their own island (1: every island lies within one island above, a parse tree)",
            "similarity": "mean cosine of every cell with its 8 torus neighbours, all cells",
        }
        for key, per_level in final.items():
            for level, value in enumerate(per_level):
                if value is not None:
                    where = "level 0 (the embedded input)" if level == 0 else f"level {level}"
                    self._scalar("pictures", f"islands/level{level}/{key}", value, step,
                                 f"{where}: {meaning[key]}; {over}.")  # fmt: skip
        self._scalar(
            "pictures", "islands/agreement_object_cells", curves["agreement_digit"][-1], step,
            f"Fraction of the object's cells whose top-level vote is the model's answer; {over}.",
        )  # fmt: skip
