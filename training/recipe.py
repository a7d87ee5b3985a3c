"""The training recipe's Keras objects: the optimizer with its schedule, and compilation."""

from __future__ import annotations

import keras

from glom_tf.config import Config
from glom_tf.readout import CellLoss, ReadoutMetric


def learning_rate(config: Config, steps_per_epoch: int):
    """The config's learning rate: a float, or warm-up then cosine decay to 0 over
    `decay_epochs` (or `epochs`) epochs. A function of the optimizer step alone."""
    lr = config.learning_rate
    if not config.cosine_decay:
        return lr
    total = max((config.decay_epochs or config.epochs) * steps_per_epoch - config.warmup_steps, 1)
    return keras.optimizers.schedules.CosineDecay(
        0.0 if config.warmup_steps else lr,
        total,
        warmup_target=lr if config.warmup_steps else None,
        warmup_steps=config.warmup_steps,
    )


def make_optimizer(
    config: Config, steps_per_epoch: int, constant_rate: bool = False
) -> keras.optimizers.Optimizer:
    """Adam (AdamW with weight decay), each gradient clipped to norm `clipnorm` > 0; with
    `constant_rate`, the peak rate as a plain value (a trainer that sets it itself)."""
    kwargs = {"clipnorm": config.clipnorm} if config.clipnorm else {}
    lr = config.learning_rate if constant_rate else learning_rate(config, steps_per_epoch)
    if config.weight_decay:
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay, **kwargs)
    return keras.optimizers.Adam(lr, **kwargs)


def compile_model(
    model,
    config: Config,
    steps_per_epoch: int = 1,
    jit_compile: bool | None = None,
    constant_rate: bool = False,
):
    """Compiles with the config's optimizer and schedule (or, with `constant_rate`, its peak
    rate as a value the caller sets), loss and the readout metrics."""
    if jit_compile is None:
        jit_compile = config.jit_compile and keras.backend.backend() != "torch"
    model.compile(
        optimizer=make_optimizer(config, steps_per_epoch, constant_rate),
        loss=CellLoss(config.loss),
        metrics=[
            ReadoutMetric("vote_accuracy"),
            ReadoutMetric("mean_accuracy"),
            ReadoutMetric("agreement", readout=config.readout),
        ],
        jit_compile=jit_compile,
    )
    return model
