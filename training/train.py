"""`fit(config, workdir)`: train a GLOM model with checkpoints, resume and TensorBoard.

Workdir layout:
    config.json            the resolved config (a rerun must match it, epochs aside)
    checkpoints/last.keras model + optimizer after the last finished epoch (atomic rename)
    checkpoints/state.json {"epoch": N} for that checkpoint
    tensorboard/           train/ and validation/ scalars, hparams, image panels
    model.keras            the final model
    metrics.json           final validation figures; its presence marks the run done
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np

from glom_tf.config import Config
from training import data
from training.cli import UserError, write_atomic

STRATEGIES = ("default", "mirrored", "multi_worker")


class Diverged(RuntimeError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


@dataclasses.dataclass
class Paths:
    workdir: str

    def __post_init__(self):
        w = self.workdir
        self.config = os.path.join(w, "config.json")
        self.checkpoints = os.path.join(w, "checkpoints")
        self.last = os.path.join(self.checkpoints, "last.keras")
        self.state = os.path.join(self.checkpoints, "state.json")
        self.tensorboard = os.path.join(w, "tensorboard")
        self.model = os.path.join(w, "model.keras")
        self.metrics = os.path.join(w, "metrics.json")


def save_model_atomic(model, path: str) -> None:
    tmp = path[: -len(".keras")] + f".tmp{os.getpid()}.keras"
    model.save(tmp)
    os.replace(tmp, path)


def _finished_run(paths: Paths, config: Config) -> dict | None:
    """The metrics of a finished run of `config` in the workdir, if any; refuses other configs."""
    if not os.path.exists(paths.config):
        return None
    with open(paths.config) as f:
        saved = json.load(f)
    current = json.loads(config.to_json())
    differ = sorted(k for k in current if k != "epochs" and saved.get(k) != current[k])
    if differ:
        raise UserError(
            f"{paths.workdir} holds a run with a different config ({', '.join(differ)}); "
            "use another --workdir"
        )
    if os.path.exists(paths.metrics):
        with open(paths.metrics) as f:
            metrics = json.load(f)
        if metrics.get("epochs") == config.epochs:
            return metrics
    return None


def make_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


def make_optimizer(config: Config, steps_per_epoch: int):
    import keras

    lr = config.learning_rate
    if config.cosine_decay:
        total = max(config.epochs * steps_per_epoch - config.warmup_steps, 1)
        lr = keras.optimizers.schedules.CosineDecay(
            0.0 if config.warmup_steps else lr,
            total,
            warmup_target=lr if config.warmup_steps else None,
            warmup_steps=config.warmup_steps,
        )
    kwargs = {"clipnorm": config.clipnorm} if config.clipnorm else {}
    if config.weight_decay:
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay, **kwargs)
    return keras.optimizers.Adam(lr, **kwargs)


def load_data(config: Config, data_dir: str | None):
    """(train, validation) Arrays from the training split (the test split is never used)."""
    arrays = data.load_arrays(config.dataset, "train", data_dir)
    if arrays.num_classes != config.num_classes:
        raise UserError(
            f"{config.dataset} has {arrays.num_classes} classes; set num_classes={arrays.num_classes}"
        )
    if arrays.images.shape[-1] != config.channels:
        raise UserError(
            f"{config.dataset} has {arrays.images.shape[-1]} channels; set channels={arrays.images.shape[-1]}"
        )
    return data.split_train_validation(arrays, config.validation_size, config.train_size, config.seed)


def fit(
    config: Config,
    workdir: str,
    data_dir: str | None = None,
    strategy: str = "default",
    verbose: int | str = "auto",
    deterministic: bool = False,
) -> dict:
    """Trains (or resumes) a run in `workdir`; returns the final validation metrics.

    Seeds are always set (two runs of one config on one CPU machine give equal metrics);
    `deterministic` also turns on TensorFlow op determinism, which makes Keras drop XLA.
    """
    import keras
    import tensorflow as tf

    from glom_tf.model import build_model, compile_model
    from training.callbacks import Checkpointer, TensorBoardExtras
    from training.metrics import readout_figures

    config.validate()
    if config.validation_size == 0:
        raise UserError("validation_size must be > 0 for training")
    paths = Paths(workdir)
    finished = _finished_run(paths, config)
    if finished is not None:
        print(f"{workdir}: already trained for {config.epochs} epochs (metrics.json); nothing to do")
        return finished
    train, validation = load_data(config, data_dir)  # bad data fails before the workdir is touched
    os.makedirs(paths.checkpoints, exist_ok=True)
    write_atomic(paths.config, config.to_json() + "\n")

    keras.utils.set_random_seed(config.seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    dist = make_strategy(strategy)
    replicas = dist.num_replicas_in_sync
    if config.batch_size % replicas:
        raise UserError(f"batch_size {config.batch_size} must divide by {replicas} replicas")
    steps_per_epoch = len(train.labels) // config.batch_size
    if steps_per_epoch == 0:
        raise UserError(f"batch_size {config.batch_size} exceeds {len(train.labels)} training examples")
    train_ds = data.make_dataset(
        train, config.batch_size, config.image_size, True, config.augment_shift, config.seed
    )
    val_ds = data.make_dataset(validation, max(config.batch_size, 100), config.image_size)

    # XLA inside MirroredStrategy fails on (logical) CPU devices; op determinism excludes it too.
    jit = config.jit_compile and replicas == 1 and not deterministic
    initial_epoch = 0
    with dist.scope():
        if os.path.exists(paths.last) and os.path.exists(paths.state):
            model = keras.saving.load_model(paths.last, safe_mode=True)
            with open(paths.state) as f:
                initial_epoch = json.load(f)["epoch"]
            print(f"resuming {workdir} from epoch {initial_epoch}", flush=True)
            model.jit_compile = jit
        else:
            model = build_model(config)
            compile_model(model, config, make_optimizer(config, steps_per_epoch))
            model.jit_compile = jit

    checkpointer = Checkpointer(paths.last, paths.state)
    callbacks = [
        checkpointer,
        keras.callbacks.TensorBoard(paths.tensorboard, update_freq="epoch", write_graph=False),
        TensorBoardExtras(paths.tensorboard, config, validation, steps_per_epoch),
    ]
    start = time.perf_counter()
    if initial_epoch < config.epochs and strategy == "multi_worker":
        run_with_strategy(model, dist, train_ds, val_ds, config.epochs, initial_epoch, callbacks, verbose)
    elif initial_epoch < config.epochs:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # tf.data already shuffles
        )
    if checkpointer.diverged:
        raise Diverged(
            f"loss became {checkpointer.diverged} at epoch {checkpointer.diverged_epoch + 1}; "
            f"stopped, last good checkpoint kept at {paths.last}"
        )
    seconds = time.perf_counter() - start
    save_model_atomic(model, paths.model)
    metrics = readout_figures(model, val_ds, config.num_classes, jit)
    trained = max(config.epochs - initial_epoch, 0) * steps_per_epoch * config.batch_size
    metrics.update(
        {
            "split": "validation",
            "train_loss": checkpointer.last_logs.get("loss"),
            "dataset": config.dataset,
            "source": train.source,
            "train_examples": int(len(train.labels)),
            "epochs": config.epochs,
            "train_seconds": round(seconds, 1),
            "train_images_per_second": round(trained / seconds, 1) if seconds > 0 and trained else None,
            "parameters": int(model.count_params()),
            "strategy": strategy,
            "replicas": replicas,
        }
    )
    write_atomic(paths.metrics, json.dumps(metrics, indent=2) + "\n")
    return metrics


def run_with_strategy(model, dist, train_ds, val_ds, epochs, initial_epoch, callbacks, verbose):
    """model.fit's epochs for MultiWorkerMirroredStrategy, where Keras 3.15's fit fails.

    The model's own train_step and test_step run under `strategy.run` (so the loss is
    scaled and unscaled for the replicas exactly as in fit), with the same callbacks.
    """
    import keras
    import tensorflow as tf

    steps = int(train_ds.cardinality())
    hooks = keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=verbose != 0, model=model,
        verbose=1 if verbose == "auto" else verbose, epochs=epochs, steps=steps,
    )  # fmt: skip
    train_dist = dist.experimental_distribute_dataset(train_ds)
    val_dist = dist.experimental_distribute_dataset(val_ds)

    @tf.function
    def train_step(iterator):
        dist.run(model.train_step, args=(next(iterator),))

    @tf.function
    def test_step(batch):
        dist.run(model.test_step, args=(batch,))

    def results(prefix=""):
        return {prefix + k: float(np.asarray(v)) for k, v in model.get_metrics_result().items()}

    logs = {}
    hooks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        hooks.on_epoch_begin(epoch)
        iterator = iter(train_dist)
        for step in range(steps):
            hooks.on_train_batch_begin(step)
            train_step(iterator)
            hooks.on_train_batch_end(step, results())
            if model.stop_training:
                break
        logs = results()
        model.reset_metrics()
        for batch in val_dist:
            test_step(batch)
        logs.update(results("val_"))
        hooks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    hooks.on_train_end(logs)
