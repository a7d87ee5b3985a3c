"""Command-line plumbing shared by the entry points: one-line errors and exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: keep stderr to our lines

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line."""

    def error(self, message):
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def run(main: Callable[[], int | None]) -> None:
    """Runs `main`, turning known bad-input errors into one line on stderr and exit code 2."""
    from glom_tf.config import ConfigError
    from training.data import DataError

    try:
        code = main()
    except (UserError, ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    raise SystemExit(code or 0)


def write_atomic(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
