"""The ``trtdsl`` command: build, info, run, compare, bench.

trtdsl build examples/resnet18.py -o resnet18.plan
trtdsl info resnet18.plan
trtdsl run examples/resnet18.py --input images=x.npy --reference --save out.npz
trtdsl compare out.npz golden.npz
trtdsl bench resnet18.plan --shapes images:1x3x224x224 --iterations 200
"""

from __future__ import annotations

import argparse
import logging
import runpy
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .errors import TrtdslError


def load_network(script: str | Path) -> Any:
    """Run a network script and return what its ``build_network()`` returns.

    The script is the user's own code, run as ``python SCRIPT`` would run it;
    trtdsl never runs code found in model or weight files.
    """
    from .network import Network

    path = Path(script)
    if not path.is_file():
        raise TrtdslError(f"no network script {str(path)!r}")
    namespace = runpy.run_path(str(path), run_name="__trtdsl__")
    fn = namespace.get("build_network")
    if not callable(fn):
        raise TrtdslError(f"{path.name} defines no build_network() function; it must return a trtdsl.Network")
    net = fn()
    if not isinstance(net, Network):
        raise TrtdslError(f"{path.name}: build_network() returned {type(net).__name__}, expected trtdsl.Network")
    return net


def _parse_inputs(items: list[str]) -> dict[str, np.ndarray]:
    feeds = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep:
            raise TrtdslError(f"--input {item!r}: expected name=file.npy")
        feeds[name] = np.load(file, allow_pickle=False)
    return feeds


def _random_feeds(
    specs: dict[str, tuple], dtypes_: dict[str, str], profile: Any, seed: int = 0
) -> dict[str, np.ndarray]:
    """Inputs at the first profile's opt shape, for a quick run without data."""
    from . import dtypes

    rng = np.random.default_rng(seed)
    feeds = {}
    for name, spec in specs.items():
        shape = profile.shapes(spec)[1] if profile is not None else spec
        dt = dtypes.to_numpy(dtypes_[name])
        if dt.kind == "f":
            feeds[name] = rng.standard_normal(shape).astype(dt)
        elif dt.kind == "b":
            feeds[name] = rng.random(shape) > 0.5
        else:
            feeds[name] = rng.integers(0, 10, shape).astype(dt)
    return feeds


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build

    net = load_network(args.script)
    plan = build(
        net,
        optimization_level=args.opt_level,
        workspace=None if args.workspace is None else int(args.workspace * (1 << 20)),
        timing_cache=args.timing_cache,
        tf32=not args.no_tf32,
        refit=args.refit,
        strip_plan=args.strip_plan,
        progress=False if args.no_progress else None,
    )
    out = args.output or Path(args.script).with_suffix(".plan").name
    plan.save(out)
    print(plan.summary())
    print(f"wrote {out} and {out}.json in {plan.build_seconds:.1f}s")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .build import Plan

    plan = Plan.load(args.plan)
    print(plan.summary())
    if getattr(args, "layers", False):
        from .layerinfo import engine_layers, format_engine_layers, format_layers

        if plan.layers:
            print(f"network layers ({len(plan.layers)}):")
            print(format_layers(plan.layers))
        else:
            print("network layers: not recorded (plan saved by a trtdsl without layer metadata; rebuild it)")
        found, why = engine_layers(plan)
        print(format_engine_layers(found) if found is not None else f"engine inspector: not available: {why}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    feeds = _parse_inputs(args.input)
    if args.target.endswith(".py"):
        from . import reference

        net = load_network(args.target)
        if not args.reference:
            print("note: running the network definition on the CPU with the reference interpreter", file=sys.stderr)
        profiles = net.profiles()
        missing = {n: s for n, s in net.input_specs.items() if n not in feeds}
        feeds.update(_random_feeds(missing, net.input_dtypes, profiles[0] if profiles[0].ranges else None))
        outputs = reference.run(net, feeds)
    else:
        from .build import Plan

        if args.reference:
            raise TrtdslError("--reference needs the network script (SCRIPT.py): a plan holds no network definition")
        from .runtime import Session

        plan = Plan.load(args.target)
        missing = {n: s.shape for n, s in plan.inputs.items() if n not in feeds}
        dts = {n: s.dtype for n, s in plan.inputs.items()}
        feeds.update(_random_feeds(missing, dts, plan.profiles[0] if plan.profiles[0].ranges else None))
        outputs = Session(plan).run(feeds)
    for name, value in outputs.items():
        flat = value.reshape(-1)
        preview = np.array2string(flat[:6], precision=5, separator=", ")
        print(f"{name}: {value.dtype} {value.shape} {preview}{' ...' if flat.size > 6 else ''}")
    if args.save:
        from . import golden

        golden.record(outputs, args.save, metadata={"source": str(args.target)})
        print(f"wrote {args.save}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from . import golden

    actual, _ = golden.load(args.a)
    expected, meta = golden.load(args.b)
    tol = None
    if args.atol is not None or args.rtol is not None:
        default = golden.Tolerance.for_precision(meta.get("precision", "float32"))
        tol = golden.Tolerance(
            atol=default.atol if args.atol is None else args.atol, rtol=default.rtol if args.rtol is None else args.rtol
        )
    report = golden.compare(actual, expected, tolerance=tol)
    print(report)
    return 0 if report.ok else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from .runtime.bench import bench_main

    return bench_main(args.argv)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trtdsl", description="Write, build, run and check TensorRT networks.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="TensorRT log detail (-v info, -vv verbose)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="run SCRIPT.py's build_network() and write a plan")
    p.add_argument("script")
    p.add_argument("-o", "--output", help="plan path (default: SCRIPT name with .plan)")
    p.add_argument("--opt-level", type=int, default=None, help="builder optimization level 0-5")
    p.add_argument("--workspace", type=float, default=None, help="workspace pool limit in MiB")
    p.add_argument("--timing-cache", help="timing cache file to read and update")
    p.add_argument("--no-tf32", action="store_true", help="disable TF32 for float32 matmul/convolution")
    p.add_argument("--refit", action="store_true", help="build a refittable engine")
    p.add_argument("--strip-plan", action="store_true", help="leave refittable weights out of the plan")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_build)

    p = sub.add_parser("info", help="print a plan's inputs, outputs and profiles")
    p.add_argument("plan")
    p.add_argument("--layers", action="store_true", help="also list the layers (and the engine's, where a GPU allows)")
    p.set_defaults(fn=cmd_info)

    p = sub.add_parser("run", help="run a network script (reference interpreter) or a plan (GPU)")
    p.add_argument("target", help="SCRIPT.py or model.plan")
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy", help="missing inputs are random")
    p.add_argument("--reference", action="store_true", help="run on the CPU with the reference interpreter")
    p.add_argument("--save", help="write the outputs to this npz")
    p.set_defaults(fn=cmd_run)

    p = sub.add_parser("compare", help="compare two output npz files")
    p.add_argument("a")
    p.add_argument("b", help="the reference")
    p.add_argument("--atol", type=float)
    p.add_argument("--rtol", type=float)
    p.set_defaults(fn=cmd_compare)

    p = sub.add_parser("bench", help="latency and throughput of a plan on the GPU", add_help=False)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(fn=cmd_bench)

    from .demo import add_demo_parser
    from .triton import add_export_parser

    add_export_parser(sub)
    add_demo_parser(sub)

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # bench parses its own options, --help included
        args = argparse.Namespace(fn=cmd_bench, argv=argv[1:], verbose=0)
    elif argv[:1] == ["demo"]:  # so does the demo script
        from .demo import cmd_demo

        args = argparse.Namespace(fn=cmd_demo, argv=argv[1:], verbose=0)
    else:
        args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.fn(args)
    except TrtdslError as e:
        print(f"trtdsl: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
