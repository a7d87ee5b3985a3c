"""Export a .keras model as a TensorFlow Serving SavedModel:
`python -m export.saved_model --model M.keras --out DIR [--version N] [--overwrite]` writes DIR/N/.
"""

from __future__ import annotations

import os
import shutil

from glom_tf.cli import ArgumentParser, UserError, load_glom_model, run


def export_saved_model(model, out: str, version: int = 1, overwrite: bool = False) -> str:
    """Writes `out/version` with the `serving_default` signature; returns that path."""
    import tensorflow as tf

    from export.serving import ServingModule

    target = os.path.join(out, str(version))
    if os.path.exists(target):
        if not overwrite:
            raise UserError(f"{target} exists; pass --overwrite or another --version")
    os.makedirs(out, exist_ok=True)
    module = ServingModule(model)
    tmp = os.path.join(out, f".tmp-{version}-{os.getpid()}")
    tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
    if os.path.exists(target):
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m export.saved_model", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True, help="model base path; the version goes in a subdirectory")
    p.add_argument("--version", type=int, default=1)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    if args.version < 1:
        raise UserError("--version must be >= 1")
    target = os.path.join(args.out, str(args.version))
    if os.path.exists(target) and not args.overwrite:
        raise UserError(f"{target} exists; pass --overwrite or another --version")
    model = load_glom_model(args.model)
    print(f"wrote {export_saved_model(model, args.out, args.version, args.overwrite)}")
    return 0


if __name__ == "__main__":
    run(main)
