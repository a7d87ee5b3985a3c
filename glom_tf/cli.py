"""Command-line plumbing shared by every entry point (training/ and export/).

One-line errors with exit code 2 for bad input, TensorFlow's C++ start-up lines kept off
stderr, `--set key=value` parsing, and atomic writes. Imports nothing heavy: TensorFlow is
loaded by `run`, quietly, before the command's own code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line."""

    def error(self, message):
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Sends file descriptor 2 to /dev/null (C++ logging included) for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quiet_tensorflow() -> None:
    """Imports TensorFlow with its C++ start-up lines (oneDNN, absl) kept off stderr.

    TensorFlow 2.21 prints them whatever TF_CPP_MIN_LOG_LEVEL says; they come at import.
    An import that fails is imported again with stderr open, so its error is seen.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    try:
        with stderr_silenced():
            import tensorflow  # noqa: F401
    except ImportError:
        pass  # a backend without TensorFlow (KERAS_BACKEND=jax) still runs the command


def run(main: Callable[[], int | None]) -> None:
    """Runs `main` after a quiet TensorFlow import; bad input is one line and exit code 2."""
    quiet_tensorflow()
    try:
        code = main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    except OSError as e:  # a file the command was pointed at cannot be read or written
        if e.filename is None:
            raise
        print(f"error: {e.filename}: {e.strerror or type(e).__name__}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    raise SystemExit(code or 0)


def parse_assignments(config, assignments: list[str]):
    """A copy of a config dataclass with `key=value` strings applied, parsed to each field's type."""
    from glom_tf.config import ConfigError

    current = config.to_dict()
    values: dict[str, Any] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        if key not in current:
            raise ConfigError(f"unknown config key: {key}")
        values[key] = _parse(key, text.strip(), getattr(config, key))
    return config.with_overrides(**values)


def _parse(key: str, text: str, current: Any) -> Any:
    from glom_tf.config import ConfigError

    try:
        if isinstance(current, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            value = float(text)
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError
            return value
        if isinstance(current, tuple):
            return tuple(int(p) for p in text.replace(",", " ").split())
        return text
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a finite number"}.get(
            type(current), "a list of integers"
        )
        raise ConfigError(f"{key} expects {kind}, got {text!r}") from None


def _umask_mode() -> int:
    """The mode a plain `open(path, "w")` would give a new file (mkstemp's is 0600)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _replace_atomic(path: str, suffix: str, write: Callable[[str], None]) -> None:
    """`write(tmp)` to a temporary file beside `path`, then a rename onto `path`; the
    temporary file is removed on failure and gets the mode a plain `open` would give."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_atomic(path: str, data: str | bytes) -> None:
    """Writes `data` to `path` through a temporary file in the same directory and a rename."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())

    _replace_atomic(path, ".tmp", write)


def check_out_file(out: str, overwrite: bool, kind: str, source: str | None = None) -> None:
    """Refuses an --out file (`kind`: ".json", ".tflite", ...) that is a directory, lies in a
    missing directory, is the `source` model, or exists without --overwrite: before any work."""
    if os.path.isdir(out):
        raise UserError(f"--out {out}: is a directory; name a {kind} file")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise UserError(f"--out {out}: no directory {parent}")
    if source and os.path.exists(out) and os.path.realpath(out) == os.path.realpath(source):
        raise UserError(f"--out {out}: is the source model")
    if os.path.exists(out) and not overwrite:
        raise UserError(f"--out {out}: exists; pass --overwrite to replace it")


def save_model_atomic(model, path: str) -> None:
    """`model.save(path)` through a temporary `.keras` file and a rename (removed on failure)."""
    _replace_atomic(path, ".tmp.keras", model.save)


def load_glom_model(path: str):
    """A GlomModel from a `.keras` file; a missing, corrupt or foreign file is a UserError."""
    if not os.path.isfile(path) or not path.endswith(".keras"):
        raise UserError(f"--model {path}: not a .keras file")
    import keras

    from glom_tf.model import GlomModel

    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as e:  # a corrupt or truncated file
        raise UserError(f"--model {path}: cannot load ({type(e).__name__})") from None
    if not isinstance(model, GlomModel):
        raise UserError(f"--model {path}: not a GLOM model ({type(model).__name__})")
    return model
