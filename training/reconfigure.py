"""Change a trained model's inference-only fields:
`python -m training.reconfigure --model M.keras --set tta_flip=true --out N.keras [--overwrite]`.

The fields in `glom_tf.config.INFERENCE_FIELDS` (`readout`: vote or mean; `tta_flip`: average
with the mirror image's scores) change how the model answers, not its weights: N.keras holds
M's weights under the changed config. Any other field is refused (it would change what the
weights mean). Prints the changed fields; M is never written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from glom_tf.cli import (
    ArgumentParser,
    UserError,
    check_out_file,
    load_glom_model,
    parse_assignments,
    run,
    save_model_atomic,
)

if TYPE_CHECKING:
    from glom_tf.model import GlomModel


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m training.reconfigure", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a .keras file written by training.fit")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an inference-only field")
    p.add_argument("--out", required=True, help="the new .keras file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p.parse_args(argv)


def reconfigure(model: GlomModel, assignments: list[str]) -> tuple[GlomModel, list[str]]:
    """A GlomModel with `model`'s weights and the assignments (`key=value`) applied, and the
    names of the fields that changed; a UserError for a field outside INFERENCE_FIELDS, a bad
    value, or assignments that change nothing."""
    from glom_tf.config import INFERENCE_FIELDS
    from glom_tf.model import build_model

    keys = [item.partition("=")[0].strip().replace("-", "_") for item in assignments]
    other = [k for k in keys if k not in INFERENCE_FIELDS]
    if other:
        raise UserError(
            f"--set {', '.join(other)}: not an inference-only field ({', '.join(INFERENCE_FIELDS)})"
        )
    spec = parse_assignments(model.spec, assignments)  # a bad value: ConfigError
    changed = [k for k in spec.field_names() if getattr(spec, k) != getattr(model.spec, k)]
    if not changed:
        raise UserError(f"nothing to change: the model already has {', '.join(assignments)}")
    new = build_model(spec)
    new.set_weights(model.get_weights())  # the same weights: inference fields add none
    return new, changed


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.set:
        raise UserError("nothing to change: pass --set KEY=VALUE")
    if not args.out.endswith(".keras"):
        raise UserError(f"--out {args.out}: name a .keras file")
    check_out_file(args.out, args.overwrite, ".keras", source=args.model)
    model, changed = reconfigure(load_glom_model(args.model), args.set)
    save_model_atomic(model, args.out)
    print(f"wrote {args.out}: " + ", ".join(f"{k}={getattr(model.spec, k)}" for k in changed))
    return 0


if __name__ == "__main__":
    run(main)
