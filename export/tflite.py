"""Export a .keras model to TFLite (builtin ops only, runs in the stock LiteRT interpreter):
`python -m export.tflite --model M.keras --out FILE.tflite [--quantize none|dynamic|float16] [--overwrite]`.
"""

from __future__ import annotations

from glom_tf.cli import ArgumentParser, check_out_file, load_glom_model, run, write_atomic

QUANTIZE = ("none", "dynamic", "float16")


def convert(model, quantize: str = "none") -> bytes:
    """The model's serving function as a TFLite flatbuffer (signature `serving_default`).

    The weights are frozen into constants first: converting a function that reads Keras 3
    variables leaves READ_VARIABLE ops on uninitialised variables (NaN outputs).
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from export.serving import ServingModule

    module = ServingModule(model)
    function = module.fixed_rank_function()
    frozen = convert_variables_to_constants_v2(function)  # returns the outputs as a list
    names = sorted(function.structured_outputs)  # the flattening order of the output dict

    @tf.function(input_signature=function.structured_input_signature[0])
    def serve(images):
        return dict(zip(names, frozen(images)))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize in ("dynamic", "float16"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m export.tflite", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--quantize", default="none", choices=QUANTIZE)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    args = p.parse_args(argv)
    check_out_file(args.out, args.overwrite, ".tflite", source=args.model)  # before the conversion
    model = load_glom_model(args.model)
    flatbuffer = convert(model, args.quantize)
    write_atomic(args.out, flatbuffer)  # a temporary file beside it and a rename
    print(f"wrote {args.out} ({len(flatbuffer) / 1024:.0f} KiB, quantize={args.quantize})")
    return 0


if __name__ == "__main__":
    run(main)
