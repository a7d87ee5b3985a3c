"""Benchmark a GLOM training or inference step: `python -m training.benchmark [--preset seed]`.

Prints one JSON line: preset, backend, device, batch size, compile seconds, median seconds
per step, images/s, peak memory (process RSS on CPU, device peak on GPU) in all and per image,
analytic FLOPs per image and achieved GFLOP/s. The backend comes from KERAS_BACKEND. Never a
test: speed is compared as a ratio against a reference run in the same session
(benchmarks/compare_seed.sh).
"""

from __future__ import annotations

import json
import resource
import time

import numpy as np

from glom_tf.cli import ArgumentParser, parse_assignments, run
from glom_tf.config import Config


def forward_flops(config: Config) -> int:
    """Multiply-adds x 2 of one image's forward pass through the networks (all steps).

    Counts the Dense layers of every network at every cell and step, as the original's
    reference does (1.24 GFLOP per training image for `seed` = 3 x forward).
    """
    from glom_tf.neighbourhood import neighbour_count

    d, cells, levels = config.dim, config.grid**2, config.levels
    k = neighbour_count(config.radius)  # neighbours
    network = k * d * d + 2 * d * d  # Dense(KD -> D), Dense(D -> D), Dense(D -> D)
    groups = (levels - 1) + (levels - 2 if config.top_down else 0)
    per_cell = groups * network
    if config.attention != "none":
        if config.same_level == "mlp":
            per_cell += (levels - 1) * network
        else:  # consensus: the weighted average of K neighbours
            per_cell += (levels - 1) * k * d
        if config.attention == "similarity":
            per_cell += (levels - 1) * k * d
        elif config.attention == "learned":
            e = config.attention_dim
            per_cell += (levels - 1) * ((k + 1) * d * e + k * e)
    total = per_cell * cells * config.steps
    if config.embedding == "linear":
        total += cells * config.patch_size**2 * config.channels * d
    if config.head:
        total += cells * d * config.num_classes
    return 2 * total


def peak_memory_gib(backend: str) -> tuple[float, str]:
    if backend == "jax":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return stats["peak_bytes_in_use"] / 2**30, "device"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "process_rss"


def device_name(backend: str) -> str:
    if backend == "jax":
        import jax

        return f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind}"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"gpu:{gpus[0].name}" if gpus else "cpu"


def benchmark(config: Config, batch_size: int, steps: int, mode: str, precision: str) -> dict:
    """Times `steps` calls of a compiled train (or predict) step after one warm-up call."""
    import keras

    from glom_tf.model import build_model
    from training.recipe import compile_model

    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(config.seed)
    model = compile_model(build_model(config), config)
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, config.image_size, config.image_size, config.channels), dtype=np.float32)
    y = rng.integers(0, config.num_classes, batch_size)
    step = (lambda: model.train_on_batch(x, y)) if mode == "train" else (lambda: model.predict_on_batch(x))
    start = time.perf_counter()
    step()
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        out = step()
        np.asarray(keras.tree.flatten(out)[0])  # wait for the device
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    backend = keras.backend.backend()
    flops = forward_flops(config) * (3 if mode == "train" else 1)
    peak, peak_kind = peak_memory_gib(backend)
    return {
        "preset_config": {
            "dim": config.dim,
            "steps": config.steps,
            "grid": config.grid,
            "levels": config.levels,
        },
        "backend": backend,
        "device": device_name(backend),
        "mode": mode,
        "batch_size": batch_size,
        "remat": config.remat,
        "unroll_steps": config.unroll_steps,
        "jit": config.jit_compile,
        "precision": precision,
        "compile_s": round(compile_s, 2),
        "step_s_median": round(median, 4),
        "images_per_s": round(batch_size / median, 2),
        "peak_gib": round(peak, 3),
        "peak_kind": peak_kind,
        "peak_mib_per_image": round(1024 * peak / batch_size, 1),
        "flops_per_image": flops,
        "gflops_per_s": round(flops * batch_size / median / 1e9, 2),
        "parameters": int(model.count_params()),
    }


def main(argv=None) -> int:
    from glom_tf.presets import get_preset

    p = ArgumentParser(prog="python -m training.benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="seed")
    p.add_argument("--batch-size", type=int, default=0, help="default: the preset's")
    p.add_argument("--steps", type=int, default=5, help="measured steps after the warm-up")
    p.add_argument("--remat", choices=["on", "off"], help="default: the preset's")
    p.add_argument("--jit", choices=["on", "off"], help="default: the preset's")
    p.add_argument("--precision", choices=["float32", "mixed_bfloat16"], default="float32")
    p.add_argument("--mode", choices=["train", "infer"], default="train")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    config = parse_assignments(get_preset(args.preset), args.set)
    if args.remat:
        config = config.with_overrides(remat=args.remat == "on")
    if args.jit:
        config = config.with_overrides(jit_compile=args.jit == "on")
    if args.steps < 1:
        p.error("--steps must be >= 1")
    if args.batch_size < 0:
        p.error("--batch-size must be >= 1 (or 0: the preset's)")
    result = benchmark(config, args.batch_size or config.batch_size, args.steps, args.mode, args.precision)
    print(json.dumps({"preset": args.preset, **result}), flush=True)
    return 0


if __name__ == "__main__":
    run(main)
