"""Export a .keras model as a TensorFlow Serving SavedModel:
`python -m export.saved_model --model M.keras --out DIR [--version N] [--overwrite]` writes DIR/N/.
"""

from __future__ import annotations

import contextlib
import os
import shutil

from glom_tf.cli import ArgumentParser, UserError, load_glom_model, run


def _check_target(out: str, version: int, overwrite: bool) -> str:
    """DIR/N, or a UserError: DIR is a file, DIR/N exists (without --overwrite), bad version."""
    if version < 1:
        raise UserError("--version must be >= 1")
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out}: exists and is not a directory")
    target = os.path.join(out, str(version))
    if os.path.exists(target) and not os.path.isdir(target):
        raise UserError(f"{target} exists and is not a directory (a SavedModel is one)")
    if os.path.exists(target) and not overwrite:
        raise UserError(f"{target} exists; pass --overwrite or another --version")
    return target


def _missing_dirs(path: str) -> list[str]:
    """The directories that `os.makedirs(path)` would create, deepest first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def export_saved_model(model, out: str, version: int = 1, overwrite: bool = False) -> str:
    """Writes `out/version` with the `serving_default` signature; returns that path.

    Written to a temporary directory beside it and renamed; on failure nothing is left
    behind (not even `out`, when this call created it).
    """
    import tensorflow as tf

    from export.serving import ServingModule

    target = _check_target(out, version, overwrite)
    created = _missing_dirs(out)  # removed again on failure, deepest first
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, f".tmp-{version}-{os.getpid()}")
    old = os.path.join(out, f".old-{version}-{os.getpid()}")
    try:
        module = ServingModule(model)
        tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
        if os.path.exists(target):  # --overwrite: the old version is moved aside, then removed
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if os.path.exists(old) and not os.path.exists(target):
            os.replace(old, target)  # the old version back in place
        for path in created:
            with contextlib.suppress(OSError):
                os.rmdir(path)  # only when empty
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m export.saved_model", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True, help="model base path; the version goes in a subdirectory")
    p.add_argument("--version", type=int, default=1)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    _check_target(args.out, args.version, args.overwrite)  # before the model is loaded
    model = load_glom_model(args.model)
    print(f"wrote {export_saved_model(model, args.out, args.version, args.overwrite)}")
    return 0


if __name__ == "__main__":
    run(main)
