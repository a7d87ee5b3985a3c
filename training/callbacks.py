"""Keras callbacks for training: atomic checkpoints with NaN stop, and TensorBoard extras."""

from __future__ import annotations

import dataclasses
import math
import os
import time

import keras
import numpy as np

from glom_tf.cli import save_model_atomic


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


class TensorBoardExtras(keras.callbacks.Callback):
    """Learning rate, images/s, hparams and an image panel of a fixed validation batch."""

    def __init__(self, logdir: str, config, validation, steps_per_epoch: int, panel_size: int = 8):
        super().__init__()
        self.logdir = os.path.join(logdir, "extras")
        self.config = config
        self.images = validation.images[:panel_size].astype("float32") / 255.0
        self.labels = validation.labels[:panel_size]
        self.steps_per_epoch = steps_per_epoch
        self._writer = None
        self._start = None

    def _summary(self):
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.logdir)
        return tf.summary, self._writer

    def on_train_begin(self, logs=None):
        from tensorboard.plugins.hparams import api as hp

        summary, writer = self._summary()
        hparams = {
            k: (v if isinstance(v, (int, float, str, bool)) else str(v))
            for k, v in dataclasses.asdict(self.config).items()
        }
        with writer.as_default():
            hp.hparams(hparams, trial_id=os.path.basename(os.path.dirname(self.logdir)))
        writer.flush()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        if not math.isfinite(float((logs or {}).get("loss", 0.0))):
            return  # a diverged epoch: nothing worth drawing

        from training.visualize import figures, render, vote_panel

        summary, writer = self._summary()
        seconds = time.perf_counter() - (self._start or time.perf_counter())
        optimizer = self.model.optimizer
        lr = optimizer.learning_rate
        lr_value = float(np.asarray(lr(optimizer.iterations) if callable(lr) else lr))
        panel = vote_panel(self.model, self.images, self.labels)  # (H, W, 3) uint8
        with writer.as_default(step=epoch + 1):
            summary.scalar("learning_rate", lr_value)
            if seconds > 0:
                summary.scalar("images_per_second", self.steps_per_epoch * self.config.batch_size / seconds)
            summary.image("validation_panel", panel[None], max_outputs=1)
            # The part-whole pictures of the first validation digit, and its settling figures.
            figs, curves = figures(self.model, self.images[0])
            for name, fig in figs.items():
                if name != "input":
                    summary.image(f"parts/{name}", tf.image.decode_png(render(fig))[None], max_outputs=1)
            summary.scalar("islands/agreement_digit_cells", curves["agreement_digit"][-1])
            for level, (sim, count) in enumerate(zip(curves["similarity"][-1], curves["islands"][-1])):
                summary.scalar(f"islands/neighbour_similarity_level{level}", sim)
                summary.scalar(f"islands/count_level{level}", count)
        writer.flush()
