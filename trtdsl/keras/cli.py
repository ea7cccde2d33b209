"""``trtdsl keras MODEL``: build a plan from a Keras file, or print what each Keras layer became.

trtdsl keras model.keras -o model.plan --dtype float16 --batch 1,8,32 --layout NCHW
trtdsl keras model.keras --int8 --calib data.npz -o model_int8.plan   # calibrated Q/DQ, as trtdsl build
trtdsl keras model.keras --weights best.weights.h5 -o model.plan      # a ModelCheckpoint's weights
trtdsl keras model.h5 --summary
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cli import register
from ..errors import TrtdslError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``keras`` subcommand's arguments."""
    p.add_argument("model", help="MODEL.h5, MODEL.keras, or a folder Keras 3 saved with zipped=False")
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="weights to use instead of the model file's (x.weights.h5, or a sharded x.weights.json)",
    )
    p.add_argument("-o", "--output", help="plan path (default: MODEL name with .plan)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="compute dtype")
    p.add_argument("--batch", default="1,1,32", help="min,opt,max of the dynamic batch, or one fixed size")
    p.add_argument("--layout", choices=["NCHW"], help="feed and read image tensors channels-first")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=D1xD2...",
                   help="shape without the batch, for inputs whose config leaves dims open")  # fmt: skip
    p.add_argument("--backend", choices=["tensorflow", "jax", "torch"], help="Keras backend whose numerics to follow")
    p.add_argument("--summary", action="store_true", help="print the layer table instead of building")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from ..calib.cli import add_build_options

    add_build_options(p)  # --int8/--fp8 --calib ...: the same quantization as trtdsl build


def _batch(text: str) -> Any:
    try:
        vals = [int(v) for v in text.split(",")]
    except ValueError:
        raise TrtdslError(f"--batch {text!r}: expected MIN,OPT,MAX or one int") from None
    if len(vals) == 1:
        return vals[0]
    if len(vals) != 3:
        raise TrtdslError(f"--batch {text!r}: expected MIN,OPT,MAX or one int")
    return tuple(vals)


def _shapes(items: list[str]) -> dict[str, tuple[int, ...]] | None:
    out = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            out[name] = tuple(int(d) for d in dims.split("x"))
        except ValueError:
            raise TrtdslError(f"--input-shape {item!r}: expected NAME=D1xD2...") from None
        if not sep:
            raise TrtdslError(f"--input-shape {item!r}: expected NAME=D1xD2...")
    return out or None


def summary(net: Any) -> str:
    """A table like Keras' ``summary()``: layer, class, output shape, parameters, TensorRT layers."""
    rows = [("Layer", "Class", "Output shape", "Params", "TensorRT layers")]
    total = 0
    for r in net.keras_records:
        shapes = ", ".join(str(tuple(None if d < 0 else d for d in s)) for s in r.shapes)
        kinds: dict[str, int] = {}
        for k in r.trt_layers:
            kinds[k] = kinds.get(k, 0) + 1
        became = ", ".join(f"{k.lower()}" + (f" x{n}" if n > 1 else "") for k, n in kinds.items()) or "-"
        rows.append((r.where, r.class_name, shapes, f"{r.params:,}", became))
        total += r.params
    widths = [min(max(len(row[i]) for row in rows), 48) for i in range(4)]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[j][: widths[j]].ljust(widths[j]) for j in range(4)]
        lines.append("  ".join(cells) + "  " + row[4])
        if i == 0:
            lines.append("-" * (sum(widths) + 8 + 16))
    lines.append(f"Total params: {total:,}   TensorRT layers: {net.trt.num_layers}")
    lines.append(f"Inputs: {dict(net.input_specs)}   Outputs: {list(net.outputs)}")
    return "\n".join(lines)


def cmd_keras(args: argparse.Namespace) -> int:
    from .._cli_inputs import writable_file
    from ..build import build
    from .loader import load_model

    net = load_model(
        args.model, batch=_batch(args.batch), input_shapes=_shapes(args.input_shape), dtype=args.dtype,
        layout=args.layout, backend=args.backend, weights=args.weights,
    )  # fmt: skip
    if args.summary:
        print(summary(net))
        return 0
    out = str(writable_file(args.output or Path(args.model).with_suffix(".plan").name, "-o"))  # before building
    from ..calib.cli import quantize_for_build

    quantize_for_build(net, args)
    plan = build(net, weights=net.keras_weights, progress=False if args.no_progress else None)
    plan.save(out)
    print(plan.summary())
    print(f"wrote {out} and {out}.json in {plan.build_seconds:.1f}s")
    return 0


register("keras", "convert a Keras .h5/.keras model: build a plan, or --summary", add_arguments, cmd_keras)
