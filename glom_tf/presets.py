"""The named presets: `Config` values. Commands, runtimes, results: README.md and docs/results.md."""

from __future__ import annotations

from glom_tf.config import Config, ConfigError


def presets() -> dict[str, Config]:
    """The named presets (built on call, no work at import time)."""
    # The original notebook (RedRyan111/GLOM): 28x28 cells, 4 levels x 10 dims, 30 steps, the
    # plain concatenated neighbourhood into the same-level networks, MSE to one-hot, Adam(0.01),
    # batch 60: the ModelConfig/Config defaults.
    seed = Config()
    # The README's main command: 4x4 patches (7x7 grid), 4 levels x 32 dims, 6 steps, learned
    # attention, cross-entropy at every cell, mean readout, cosine schedule.
    default = seed.with_overrides(
        patch_size=4,
        embedding="linear",
        dim=32,
        steps=6,
        hidden_scale=0.1,
        dropout=0.1,  # the main command's 4,500 digits overfit without it (docs/results.md)
        attention="learned",
        attention_dim=16,
        init_state="learned",
        noise=0.0,
        skip_periods=(),
        head=True,
        loss="crossentropy",
        readout="mean",
        batch_size=64,
        epochs=14,
        learning_rate=0.01,
        warmup_steps=50,
        cosine_decay=True,
        unroll_steps=True,  # 6 steps: the unrolled graph compiles in ~20 s and trains faster
    )
    # The paper's dynamics: the same-level term is the similarity-weighted average of the
    # neighbours' vectors, each level's new vector the (learned) weighted average of its
    # previous value and the bottom-up, top-down and consensus terms, layer-normalised.
    consensus = default.with_overrides(
        same_level="consensus",
        attention="similarity",
        update="average",
        learned_update_weights=True,
        state_norm=True,
        hidden_scale=1.0,
        dropout=0.0,  # (bottom-up and top-down networks) as pretrained/mnist_consensus
    )
    # The recipe of the committed full-dataset models: 8 steps (the recipe search's faster-learning
    # row on both datasets), no dropout, no remat (faster at batch 64). At Adam 0.01 without
    # weight decay the 8-step model diverged in its second epoch on Fashion-MNIST (its weights
    # grew ~5x: docs/results.md), so the peak rate is halved, weights decay (AdamW) and
    # gradients are clipped.
    full_training = dict(steps=8, learning_rate=0.005, weight_decay=0.05, clipnorm=1.0, remat=False)
    full = default.with_overrides(dropout=0.0, **full_training)
    # Islands at every level (pretrained/mnist_islands; docs/islands.md): `consensus` with the
    # four terms' weights fixed and equal, and the island objective with its sharpness term
    # (parts at level 1 against cells 3 apart, one island per object at the top), the consensus
    # weighted by learned 16-dim queries and keys, trained like `mnist` (the same steps,
    # optimizer and 2-pixel shifts) for 15 epochs.
    islands = consensus.with_overrides(
        attention="learned",
        attention_dim=16,
        learned_update_weights=False,
        island_weight=3.0,
        island_scales=(3, 3, 0),
        island_sharpness=1.0,
        augment_shift=2,
        epochs=15,
        **full_training,
    )
    # Quick runs and tests: no schedule, no dropout.
    quick = default.with_overrides(batch_size=32, warmup_steps=0, cosine_decay=False, dropout=0.0)
    return {
        "seed": seed,
        "default": default,
        "consensus": consensus,
        "islands": islands,
        # pretrained/mnist, stage 1 (its stage 2 continues at peak 0.001: MODEL_CARD.md): 64 dims,
        # 23 epochs of 55,000 MNIST digits (5,000 held out) at batch 128, each moved by up to 2
        # pixels, turned by up to 10 degrees and zoomed by up to 10%.
        "mnist": full.with_overrides(
            epochs=23,
            dim=64,
            attention_dim=32,
            batch_size=128,
            validation_size=5000,
            augment_shift=2,
            augment_rotate=10.0,
            augment_scale=0.1,
        ),
        # pretrained/fashion_mnist's recipe: 64 dims, GELU networks, 20 epochs of 55,000 Fashion-MNIST
        # images (5,000 held out) at batch 128, mirrored left-right and moved by up to 2 pixels
        # (the model is this run continued from its checkpoint to 40 epochs: `--epochs 40`).
        # (Until 2026-12-05: 48 dims, tanh, flips only, batch 64, 500 held out; the runs that
        # docs/results.md dates before then name this preset with those values.)
        "fashion_mnist": full.with_overrides(
            dataset="fashion_mnist",
            epochs=20,
            dim=64,
            attention_dim=32,
            activation="gelu",
            batch_size=128,
            validation_size=5000,
            augment_flip=True,
            augment_shift=2,
        ),
        # Quick runs: 3 levels x 16 dims, 4 steps.
        "small": quick.with_overrides(
            levels=3, dim=16, steps=4, attention_dim=8, epochs=2, learning_rate=3e-3
        ),
        # Tests: 7x7 patches (4x4 grid), 3 levels x 8 dims, 2 steps, the symbolic time loop.
        "tiny": quick.with_overrides(
            patch_size=7, levels=3, dim=8, steps=2, attention_dim=4, epochs=1, unroll_steps=False
        ),
    }


def get_preset(name: str) -> Config:
    table = presets()
    if name not in table:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(sorted(table))}")
    return table[name]
