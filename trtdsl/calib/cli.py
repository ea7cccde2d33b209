"""The calibration side of the ``trtdsl`` command.

trtdsl build SCRIPT.py --int8 --calib data.npz [--algo entropy] [--calib-cache c.cache] [--exclude 'head.*'] -o model.plan
trtdsl build SCRIPT.py --fp8 --calib data.npz --algo mse -o model.plan
trtdsl build SCRIPT.py --int8 --calib-cache trt10.cache -o model.plan   # a TensorRT <= 10 cache, no data
trtdsl calib report c.cache
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..cli import number, register
from ..errors import CalibrationError


def add_build_options(p: argparse.ArgumentParser) -> None:
    """The quantization options of ``trtdsl build``."""
    g = p.add_argument_group("quantization (explicit Q/DQ, see docs/calibration.md)")
    kind = g.add_mutually_exclusive_group()
    kind.add_argument("--int8", action="store_true", help="quantize to INT8 with explicit Q/DQ")
    kind.add_argument("--fp8", action="store_true", help="quantize to FP8 E4M3 with explicit Q/DQ")
    g.add_argument("--calib", metavar="DATA", help="calibration data: .npz (keys = input names) or .npy")
    g.add_argument(
        "--algo", default="entropy", help="entropy, entropy-legacy, percentile, mse or max (default entropy)"
    )
    g.add_argument("--percentile", type=float, default=99.99, help="for --algo percentile (default 99.99)")
    g.add_argument(
        "--calib-batch", type=number(int, "an int", 1), metavar="N",
        help="calibration batch size (default: the network's batch if static, else up to 32 within its profile)",
    )  # fmt: skip
    g.add_argument(
        "--calib-cache", metavar="FILE", help="read ranges from this cache if it exists, else write it (.json: JSON)"
    )
    g.add_argument("--exclude", action="append", default=[], metavar="PATTERN", help="layers kept in float (glob)")
    g.add_argument("--calib-report", metavar="FILE.json", help="save the quantization report as JSON")


def quantize_for_build(net: Any, args: argparse.Namespace) -> None:
    """Quantize ``net`` in place when ``--int8``/``--fp8`` was given (``trtdsl build``)."""
    if not (getattr(args, "int8", False) or getattr(args, "fp8", False)):
        for opt in ("calib", "calib_cache"):
            if getattr(args, opt, None):
                raise CalibrationError(f"--{opt.replace('_', '-')} needs --int8 or --fp8")
        return
    from .calibrators import ArrayCalibrator
    from .quantize import quantize

    dtype = "fp8" if args.fp8 else "int8"
    cache = Path(args.calib_cache) if args.calib_cache else None
    report = args.calib_report or True
    if args.calib is None:
        if cache is None or not cache.is_file():
            raise CalibrationError(
                f"--{dtype} needs calibration data (--calib data.npz) or an existing calibration cache (--calib-cache)"
            )
        quantize(net, cache, dtype=dtype, algorithm=args.algo, exclude=args.exclude, report=report)
        return
    batch = args.calib_batch if args.calib_batch is not None else default_batch(net)
    calibrator = ArrayCalibrator(
        args.calib, batch_size=batch, algorithm=args.algo, percentile=args.percentile, cache=cache
    )
    quantize(net, calibrator, dtype=dtype, algorithm=args.algo, exclude=args.exclude, report=report)


DEFAULT_BATCH = 32


def default_batch(net: Any) -> int:
    """The calibration batch a network takes: its inputs' static first dim (an ONNX model's batch 1), or for a
    named first dim ``DEFAULT_BATCH`` within every profile's range of it; ``DEFAULT_BATCH`` otherwise."""
    firsts = {shape[0] for shape in net.input_specs.values() if len(shape)}
    if len(firsts) != 1:
        return DEFAULT_BATCH
    (first,) = firsts
    if isinstance(first, int):
        return first if first > 0 else DEFAULT_BATCH
    ranges = [p.ranges[first] for p in net.profiles() if first in p.ranges]
    if not ranges:
        return DEFAULT_BATCH
    lo, hi = max(r[0] for r in ranges), min(r[2] for r in ranges)
    return min(max(DEFAULT_BATCH, lo), hi) if lo <= hi else DEFAULT_BATCH


def cmd_calib_report(args: argparse.Namespace) -> int:
    from .cache import load_cache

    c = load_cache(args.cache)
    where = f"{c.format} cache" + (f" TRT-{c.version}-{c.legacy_algorithm}" if c.format == "legacy" else "")
    print(f"{args.cache}: {where}, {len(c.ranges)} tensors, algorithm {c.algorithm}, dtype {c.dtype}")
    head = ("tensor", "amax", "int8 scale", "algorithm")
    rows = [
        (n, f"{a:.6g}", f"{c.scale(n):.6g}", str(c.tensors.get(n, {}).get("algorithm", c.algorithm)))
        for n, a in c.ranges.items()
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    for i, row in enumerate((head, *rows)):
        print("  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0


def _add_calib(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="calib_command", required=True)
    r = sub.add_parser("report", help="print a calibration cache's ranges (legacy TensorRT or JSON)")
    r.add_argument("cache")


def _run_calib(args: argparse.Namespace) -> int:
    return cmd_calib_report(args)  # the one calib subcommand so far


register("calib", "calibration caches: trtdsl calib report CACHE", _add_calib, _run_calib)
