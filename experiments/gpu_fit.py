"""Train one GLOM config on an accelerator under Keras 3's JAX backend, for a wall-clock budget.

`training.fit` needs TensorFlow (tf.data, TensorBoard); the lent GPU machine has JAX and no
TensorFlow, so this trains there instead, on the same data, split and augmentation:
`training.train.load_data` (the data and seeded split of training.fit), `augment_numpy` (the same
affine draw as tf.data's, checked against it in tests/data_test.py), `build_model` and the
config's loss, metrics, AdamW and clipping. What differs is the schedule: the run gets a
deadline instead of an epoch count, and the learning rate is a cosine over the wall-clock time
left (one warm-up chunk at a fifth of the peak, then set between chunks of half an epoch), so
a run always ends annealed whatever the machine's speed. The held-out figures are logged after
every epoch and the model is saved after every epoch (PREFIX.keras) and at the end.

    KERAS_BACKEND=jax python experiments/gpu_fit.py --preset mnist --set dim=64 \
        --data-dir DIR --out OUTDIR/NAME --deadline UNIX_SECONDS

writes OUTDIR/NAME.keras, NAME.jsonl (one line per epoch) and NAME.json (the summary).
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from glom_tf.cli import ArgumentParser, parse_assignments, run, save_model_atomic, write_atomic  # noqa: E402


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", required=True, help="path prefix of the files written")
    p.add_argument("--deadline", type=float, required=True, help="unix time by which to be done")
    p.add_argument("--reserve", type=float, default=25.0, help="seconds kept for the final save")
    p.add_argument("--chunks-per-epoch", type=int, default=2)
    p.add_argument("--require-gpu", action="store_true", help="exit 2 unless JAX sees a GPU")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import keras
    import numpy as np

    from glom_tf.cli import UserError
    from glom_tf.model import build_model
    from glom_tf.presets import get_preset
    from training import data
    from training.recipe import compile_model
    from training.train import initial_weights, load_data

    if args.require_gpu:
        if keras.backend.backend() != "jax":
            raise UserError(f"--require-gpu: needs KERAS_BACKEND=jax, not {keras.backend.backend()}")
        import jax

        if jax.default_backend() != "gpu":
            raise UserError(f"--require-gpu: JAX runs on {jax.default_backend()}")
    config = parse_assignments(get_preset(args.preset), args.set)
    config.validate()
    train, validation = load_data(config, args.data_dir)  # training.fit's data and split
    if train.images.shape[1] != config.image_size:  # numpy augmentation: no resizing here
        raise UserError(
            f"image_size {config.image_size}: this trainer needs the data's {train.images.shape[1]}"
        )
    if args.deadline - args.reserve <= time.time():
        raise UserError(f"--deadline {args.deadline:.0f} minus --reserve {args.reserve:g} s has passed")
    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    batch = config.batch_size
    steps_per_epoch = len(train.labels) // batch
    chunk_steps = steps_per_epoch // args.chunks_per_epoch
    if chunk_steps < 1:
        raise UserError(
            f"{len(train.labels)} training examples make no chunk of --chunks-per-epoch "
            f"{args.chunks_per_epoch} x batch_size {batch}"
        )
    model = build_model(config)
    if config.init_from:  # a second stage: start from a finished run's weights
        initial_weights(config).assign_to(model)
    compile_model(model, config, steps_per_epoch, jit_compile=True, constant_rate=True)
    val_x = validation.images.astype(np.float32) / 255.0
    val_y = validation.labels.astype(np.int32)

    def chunks():
        """(images, labels) of chunk_steps batches each, an epoch's permutation at a time."""
        while True:
            order = rng.permutation(len(train.labels))
            for c in range(args.chunks_per_epoch):
                idx = order[c * chunk_steps * batch : (c + 1) * chunk_steps * batch]
                yield data.augment_numpy(train.images[idx], rng, config), train.labels[idx].astype(np.int32)

    source = chunks()
    pool = concurrent.futures.ThreadPoolExecutor(1)
    pending = pool.submit(next, source)
    log_path, start = args.out + ".jsonl", time.time()
    end = args.deadline - args.reserve
    lr_trace, done_chunks, anneal_start, chunk_seconds = [], 0, None, []
    history: list[dict] = []
    while True:
        now = time.time()
        if anneal_start is not None:
            typical = float(np.median(chunk_seconds[-5:])) if chunk_seconds else 0.0
            if now + typical > end:
                break
            fraction = (now - anneal_start) / max(end - anneal_start, 1e-6)
            lr = 0.5 * config.learning_rate * (1 + math.cos(math.pi * min(fraction, 1.0)))
        else:
            lr = 0.2 * config.learning_rate  # the warm-up chunk (it also compiles)
        model.optimizer.learning_rate = lr
        x, y = pending.result()
        pending = pool.submit(next, source)
        t = time.time()
        out = model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        chunk_seconds.append(time.time() - t)
        lr_trace.append(round(lr, 7))
        done_chunks += 1
        if anneal_start is None:
            anneal_start, compile_chunk_seconds = time.time(), chunk_seconds.pop()  # compile included
        if done_chunks % args.chunks_per_epoch == 0:
            figures = model.evaluate(val_x, val_y, batch_size=500, verbose=0, return_dict=True)
            row = {
                "epoch": done_chunks // args.chunks_per_epoch,
                "seconds": round(time.time() - start, 1),
                "lr": round(lr, 7),
                **{f"train_{k}": round(float(v[-1]), 5) for k, v in out.history.items()},
                **{f"val_{k}": round(float(v), 5) for k, v in figures.items()},
            }
            history.append(row)
            with open(log_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
            save_model_atomic(model, args.out + ".keras")
    pool.shutdown(cancel_futures=True)
    save_model_atomic(model, args.out + ".keras")
    figures = model.evaluate(val_x, val_y, batch_size=500, verbose=0, return_dict=True)
    typical = float(np.median(chunk_seconds)) if chunk_seconds else None
    summary = {
        "config": config.to_dict(),
        "backend": keras.backend.backend(),
        "epochs": round(done_chunks / args.chunks_per_epoch, 2),
        "chunks": done_chunks,
        "steps": done_chunks * chunk_steps,
        "train_examples": len(train.labels),
        "validation_examples": len(val_y),
        "seconds": round(time.time() - start, 1),
        "first_chunk_seconds": round(compile_chunk_seconds, 1),
        "median_chunk_seconds": typical and round(typical, 2),
        "images_per_second": typical and round(chunk_steps * batch / typical, 1),
        "parameters": int(model.count_params()),
        "validation": {k: round(float(v), 5) for k, v in figures.items()},
        "lr_per_chunk": lr_trace,
        "history": history,
    }
    write_atomic(args.out + ".json", json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: summary[k] for k in ("epochs", "seconds", "images_per_second", "validation")}))
    return 0


if __name__ == "__main__":
    run(main)
