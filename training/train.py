"""`fit(config, workdir)`: train a GLOM model with checkpoints, resume and TensorBoard.

Workdir layout:
    config.json            the resolved config (a rerun must match it, epochs aside)
    data.json              where the training data came from (a rerun must read the same)
    checkpoints/last.keras model + optimizer after the last finished epoch (atomic rename);
                           the optimizer's step count says which epoch it is, so the
                           checkpoint and its state are one file
    tensorboard/           train/ and validation/ scalars, hparams, image panels
    model.keras            the final model
    metrics.json           final validation figures; with model.keras it marks the run done
    .lock                  held (flock) while a training.fit process works in the workdir
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import json
import os
import time

import numpy as np

from glom_tf.cli import UserError, save_model_atomic, write_atomic
from glom_tf.config import Config, ModelConfig
from training import data

STRATEGIES = ("default", "mirrored", "multi_worker")


class Diverged(RuntimeError):
    """The loss became NaN, Inf or exploded; the last good checkpoint (if any) is kept."""


@dataclasses.dataclass
class Paths:
    workdir: str

    def __post_init__(self):
        w = self.workdir
        self.config = os.path.join(w, "config.json")
        self.checkpoints = os.path.join(w, "checkpoints")
        self.last = os.path.join(self.checkpoints, "last.keras")
        self.data = os.path.join(w, "data.json")
        self.lock = os.path.join(w, ".lock")
        self.tensorboard = os.path.join(w, "tensorboard")
        self.model = os.path.join(w, "model.keras")
        self.metrics = os.path.join(w, "metrics.json")


@contextlib.contextmanager
def locked_workdir(paths: Paths):
    """Holds an exclusive lock on the workdir; a second training.fit on it is refused."""
    if os.path.exists(paths.workdir) and not os.path.isdir(paths.workdir):
        raise UserError(f"--workdir {paths.workdir}: exists and is not a directory")
    try:
        os.makedirs(paths.checkpoints, exist_ok=True)
    except OSError as e:
        raise UserError(f"--workdir {paths.workdir}: cannot be created ({e.strerror})") from None
    with open(paths.lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(f"{paths.workdir} is in use by another training.fit process") from None
        # Temporary files of a process killed while writing: ours are named .NAME.XXXX.tmp*,
        # those of earlier versions checkpoints/last.tmpPID.keras.
        stale = glob.glob(os.path.join(paths.workdir, "**", ".*.tmp*"), recursive=True)
        stale += glob.glob(os.path.join(paths.checkpoints, "last.tmp*.keras"))
        for path in stale:
            with contextlib.suppress(OSError):
                os.remove(path)
        yield


def read_json(path: str) -> dict:
    """A JSON file of a run; an unreadable one is a UserError naming it."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot be read ({type(e).__name__}); fix or remove it") from None


def _check_workdir(paths: Paths, config: Config) -> dict | None:
    """The metrics of a finished run of `config` in the workdir, if any. Refuses a different
    config, fewer epochs than already trained, and a workdir whose saved files training would
    replace without continuing them: a model or metrics with no run's config beside them, or a
    model with no checkpoint to continue from (a finished run whose checkpoint was removed, a
    pretrained model's folder)."""
    if not os.path.exists(paths.config):
        saved = [p for p in (paths.model, paths.metrics, paths.last) if os.path.exists(p)]
        if saved:
            raise UserError(
                f"{paths.workdir} holds {os.path.relpath(saved[0], paths.workdir)} but no config.json: "
                "not a training.fit run; use another --workdir"
            )
        return None
    saved = read_json(paths.config)
    current = json.loads(config.to_json())
    # A field missing from a run saved before it existed has its default (fields are added with
    # the default that keeps the old behaviour), so older runs still resume.
    defaults = json.loads(Config().to_json())
    differ = sorted(k for k in current if k != "epochs" and saved.get(k, defaults[k]) != current[k])
    if differ:
        raise UserError(
            f"{paths.workdir} holds a run with a different config ({', '.join(differ)}); "
            "use another --workdir"
        )
    if saved.get("epochs", 0) > config.epochs:
        raise UserError(
            f"{paths.workdir} holds a run of {saved['epochs']} epochs; --epochs {config.epochs} is fewer "
            "(use another --workdir)"
        )
    metrics = read_json(paths.metrics) if os.path.exists(paths.metrics) else {}
    trained, has_model = metrics.get("epochs"), os.path.exists(paths.model)
    if has_model and trained == config.epochs:
        return metrics
    if not os.path.exists(paths.last):
        if has_model and trained != 0:  # a 0-epoch model is its start, made again
            raise UserError(
                f"{paths.model} has no checkpoint to continue from (checkpoints/last.keras); training "
                "would replace it: use another --workdir"
            )
        if not has_model and trained:
            raise UserError(
                f"{paths.workdir} holds a finished run of {trained} epochs whose model and checkpoint "
                "are gone (moved?); nothing to continue: use another --workdir"
            )
    return None


def data_record(train, validation) -> dict:
    """Where the training data came from and its fingerprint: the same digits in the same
    split give the same fingerprint, wherever the files are (a clone elsewhere resumes)."""
    digest = hashlib.sha256()
    for array in (train.images, train.labels, validation.images, validation.labels):
        digest.update(np.ascontiguousarray(array).tobytes())
    return {"source": train.source, "fingerprint": digest.hexdigest()[:16], "examples": len(train.labels)}


def check_same_data(paths: Paths, record: dict, hint: str = "use another --workdir") -> None:
    """A UserError unless the run's data.json (if any) has `record`'s fingerprint."""
    if not os.path.exists(paths.data):
        return
    saved = read_json(paths.data)
    if saved.get("fingerprint") != record["fingerprint"]:
        raise UserError(
            f"{paths.workdir} was trained on other data ({saved.get('source')}, fingerprint "
            f"{saved.get('fingerprint')}), not {record['source']} ({record['fingerprint']}); {hint}"
        )


def _check_data(paths: Paths, train, validation) -> None:
    """Records the training data's fingerprint; a rerun must train on the same data."""
    record = data_record(train, validation)
    check_same_data(paths, record)
    if not os.path.exists(paths.data):
        write_atomic(paths.data, json.dumps(record) + "\n")


def held_out(run_dir: str, data_dir: str | None) -> tuple[Config, data.Arrays]:
    """A finished or running run's config and the images it held out of the training split
    (its config.json: dataset, validation_size, seed); refuses data other than the run's."""
    paths = Paths(run_dir)
    if not os.path.isfile(paths.config):
        raise UserError(f"{run_dir}: no config.json (not a training.fit run)")
    config = Config.from_dict(read_json(paths.config))
    if not config.validation_size:
        raise UserError(f"{run_dir}: the run held out no images (validation_size 0)")
    train, validation = load_data(config, data_dir)
    check_same_data(paths, data_record(train, validation), "its held-out images would be others")
    return config, validation


def make_strategy(name: str):
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")


def load_data(config: Config, data_dir: str | None):
    """(train, validation) Arrays from the training split (the test split is never used)."""
    arrays = data.load_arrays(config.dataset, "train", data_dir)
    data.check_fits(arrays, config, config.dataset)
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
    config.validate()
    if not workdir.strip():
        raise UserError("--workdir is empty; name a directory")
    if config.validation_size == 0:
        raise UserError("validation_size must be > 0 for training")
    paths = Paths(workdir)
    existing = os.path.abspath(workdir)  # the workdir, or its nearest existing parent
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"--workdir {workdir}: {existing} exists and is not a directory")
    finished = _finished(paths, config)
    if finished is not None:
        return finished
    # Bad data, batch size or strategy fail here, before the workdir is touched.
    train, validation = load_data(config, data_dir)
    if len(train.labels) < config.batch_size:
        raise UserError(f"batch_size {config.batch_size} exceeds {len(train.labels)} training examples")
    dist = make_strategy(strategy)
    if config.batch_size % dist.num_replicas_in_sync:
        raise UserError(f"batch_size {config.batch_size} must divide by {dist.num_replicas_in_sync} replicas")
    # A run that resumes starts from its checkpoint; a new one from init_from's weights, if set.
    init_weights = initial_weights(config) if config.init_from and not os.path.exists(paths.last) else None
    with locked_workdir(paths):
        finished = _finished(paths, config)  # again: another process may have finished it
        if finished is not None:
            return finished
        _check_data(paths, train, validation)
        write_atomic(paths.config, config.to_json() + "\n")
        return _fit_locked(
            config, paths, train, validation, strategy, dist, verbose, deterministic, init_weights
        )


def _finished(paths: Paths, config: Config) -> dict | None:
    """The finished run's metrics (saying so), or None when the workdir still has epochs to train."""
    finished = _check_workdir(paths, config)
    if finished is not None:
        print(f"{paths.workdir}: already trained for {config.epochs} epochs (metrics.json); nothing to do")
    return finished


def initial_weights(config: Config) -> InitialWeights:
    """The weights of `config.init_from` that fit the model `config` builds, matched by path.

    A weight both models have must have the same shape in both. The config's model may have
    weights the source lacks (e.g. the learned location of `position=top_down`): they keep their
    fresh initialisation. The source may have weights the config's model lacks (e.g. a denoising
    decoder): they are not used. Both are named in `InitialWeights.note`.
    """
    from glom_tf.cli import load_glom_model
    from glom_tf.model import build_model

    path = config.init_from
    if not os.path.isfile(path):
        raise UserError(f"init_from {path}: no such file")
    try:
        source = load_glom_model(path)
    except UserError:
        raise UserError(f"init_from {path}: cannot be loaded as a GLOM model") from None
    found = dict(zip((v.path for v in source.weights), source.get_weights()))
    expected = {v.path: tuple(v.shape) for v in build_model(config).weights}
    misfit = [p for p in expected if p in found and found[p].shape != expected[p]]
    if misfit or not set(found) & set(expected):
        differ = [f for f in ModelConfig.field_names() if getattr(source.spec, f) != getattr(config, f)]
        raise UserError(
            f"init_from {path}: its weights do not fit this config's model "
            f"(fields that differ: {', '.join(differ) or 'none'})"
        )
    fresh = [p for p in expected if p not in found]
    unused = [p for p in found if p not in expected]
    note = "".join(
        f"; {label}: {', '.join(names)}"
        for label, names in (("initialised fresh", fresh), ("not used", unused))
        if names
    )
    return InitialWeights({p: found[p] for p in expected if p in found}, note)


@dataclasses.dataclass(frozen=True)
class InitialWeights:
    """Trained weights by variable path, for the model a config builds (see `initial_weights`)."""

    values: dict
    note: str = ""  # "; initialised fresh: ...; not used: ..." or ""

    def assign_to(self, model) -> None:
        """Copy the weights into `model`'s variables of the same path; the others are left as they are."""
        for variable in model.weights:
            if variable.path in self.values:
                variable.assign(self.values[variable.path])


def _fit_locked(
    config, paths, train, validation, strategy, dist, verbose, deterministic, init_weights
) -> dict:
    import keras
    import tensorflow as tf

    from glom_tf.cli import load_glom_model
    from glom_tf.model import build_model
    from training.callbacks import Checkpointer, TensorBoardLogger
    from training.metrics import readout_figures
    from training.recipe import compile_model, learning_rate

    keras.utils.set_random_seed(config.seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    replicas = dist.num_replicas_in_sync
    steps_per_epoch = len(train.labels) // config.batch_size
    val_ds = data.make_dataset(validation, max(config.batch_size, 100), config.image_size)

    # XLA inside MirroredStrategy fails on (logical) CPU devices; op determinism excludes it too.
    jit = config.jit_compile and replicas == 1 and not deterministic
    initial_epoch = 0
    with dist.scope():
        if os.path.exists(paths.last):
            try:
                model = load_glom_model(paths.last)
            except UserError:
                raise UserError(
                    f"{paths.last}: the checkpoint cannot be read (truncated or corrupt); "
                    "restore it or remove it to start over"
                ) from None
            # The checkpoint's optimizer step count says how many epochs it holds.
            initial_epoch = int(model.optimizer.iterations.numpy()) // steps_per_epoch
            # Continue on the schedule the config states (not the one saved with the optimizer).
            model.optimizer.learning_rate = learning_rate(config, steps_per_epoch)
            print(f"resuming {paths.workdir} from epoch {initial_epoch}", flush=True)
            # A sitting that starts at epoch e draws its shuffles and augmentations from seed + e.
            # From the seed alone, every sitting replayed the first sitting's images, epoch by epoch.
            keras.utils.set_random_seed(config.seed + initial_epoch)
        else:
            model = build_model(config)
            if init_weights is not None:
                init_weights.assign_to(model)
                print(f"starting from the weights of {config.init_from}{init_weights.note}", flush=True)
            compile_model(model, config, steps_per_epoch, jit)
        model.jit_compile = jit
    seed = config.seed + initial_epoch
    train_ds = data.make_dataset(train, config.batch_size, config.image_size, True, config, seed)

    checkpointer = Checkpointer(paths.last)
    callbacks = [
        checkpointer,
        TensorBoardLogger(paths.tensorboard, config, validation, steps_per_epoch, trial=paths.workdir),
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
        kept = (
            f"last good checkpoint kept at {paths.last}"
            if os.path.exists(paths.last)
            else "no checkpoint was written (no epoch finished)"
        )
        raise Diverged(
            f"loss became {checkpointer.diverged} at epoch {checkpointer.diverged_epoch + 1}; stopped, {kept}"
        )
    seconds = time.perf_counter() - start
    if initial_epoch >= config.epochs and os.path.exists(paths.last):
        print(f"{paths.model}: written from the checkpoint (its {initial_epoch} epochs are all trained)")
    previous = {}
    with contextlib.suppress(OSError, ValueError):
        with open(paths.metrics) as f:
            previous = json.load(f)
    if previous.get("epochs") != config.epochs:
        previous = {}
    save_model_atomic(model, paths.model)
    metrics = readout_figures(model, val_ds, config.num_classes, jit)
    trained = max(config.epochs - initial_epoch, 0) * steps_per_epoch * config.batch_size
    metrics.update(
        {
            "split": "validation",
            "train_loss": checkpointer.last_logs.get("loss", previous.get("train_loss")),
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
    if not trained:  # model.keras re-created from the finished checkpoint: keep the run's figures
        metrics.update(
            {k: previous[k] for k in ("train_seconds", "train_images_per_second") if k in previous}
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
