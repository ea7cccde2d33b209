"""The ``trtdsl`` command: build, info, run, compare, bench, and the subcommands other packages register.

trtdsl build examples/resnet18.py -o resnet18.plan -- --batch 8
trtdsl info resnet18.plan
trtdsl run examples/resnet18.py --input images=x.npy --reference --save out.npz
trtdsl run bert.py --shapes ids:2x128 --profile 1
trtdsl compare out.npz golden.npz --tolerance float16
trtdsl bench resnet18.plan --shapes images:1x3x224x224 --iterations 200

A subcommand is one registration: ``register(name, help, add_arguments, run)``,
called by the module that implements it; :data:`COMMAND_MODULES` lists the
modules ``main`` imports so that they can register. Ordinary bad input (a
missing or malformed file, a bad number) is one line on stderr and exit status
2, never a traceback; ``--traceback`` shows one for a real bug.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from . import _cli_inputs as inputs
from .errors import ProfileError, TrtdslError

# Kept importable from here: scripts and tests call it.
load_network = inputs.load_network


class Command(NamedTuple):
    """One subcommand: its help line, what it adds to its parser, and what it runs (exit status)."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}

# Modules that register subcommands when imported (other packages add theirs here).
COMMAND_MODULES: list[str] = ["trtdsl.keras.cli", "trtdsl.calib.cli", "trtdsl.triton", "trtdsl.demo"]


def register(
    name: str,
    help: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
) -> None:
    """Add subcommand ``name``; ``run(args)`` returns the exit status, and raises TrtdslError for bad input.

    Example::

        def add_arguments(p):
            p.add_argument("model")

        register("keras", "convert a Keras model", add_arguments, lambda args: convert(args.model))
    """
    if name in COMMANDS:
        raise TrtdslError(f"trtdsl subcommand {name!r} is registered twice")
    COMMANDS[name] = Command(help, add_arguments, run)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (argparse prints the whole usage first)."""

    def error(self, message: str) -> Any:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def number(kind: type, what: str, minimum: float | None = None) -> Callable[[str], Any]:
    """argparse type for a subcommand's options: a finite number of ``kind`` >= ``minimum``.

    Example: ``p.add_argument("--iterations", type=number(int, "an int", 0))``.
    """

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or (minimum is not None and value < minimum):
            bound = f" >= {minimum:g}" if minimum is not None else ""
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number{bound}")
        return value

    return parse


# ---------------------------------------------------------------------- build
def _add_script_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="keyword for build_network()")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=MIN,OPT,MAX",
                   help="range of an ONNX model's dynamic dim (NAME=N for one size)")  # fmt: skip
    p.epilog = (
        "Arguments after -- go to build_network(): -- 8 --fp16 is build_network(8, fp16=True). "
        "An ONNX model (MODEL.onnx) is parsed by TensorRT's ONNX parser (trtdsl.onnx.parse); "
        "its dynamic dims take --dim batch=1,8,32."
    )


def _is_onnx(path: str) -> bool:
    return path.lower().endswith(".onnx")


def _refuse_keras(path: str) -> None:
    """A Keras model given to build, run or info: say which command converts it."""
    if path.lower().endswith((".keras", ".h5", ".hdf5")):
        raise TrtdslError(
            f"{path}: is a Keras model: trtdsl keras {path} converts it (-o model.plan builds it; --summary lists "
            "what each layer became; --int8 --calib data.npz quantizes it), or in Python trtdsl.keras.load_model()"
        )


def _is_network(path: str) -> bool:
    """Whether ``path`` names a network (a script or an ONNX model) rather than a plan."""
    _refuse_keras(path)
    return path.endswith(".py") or _is_onnx(path)


def _network(args: argparse.Namespace, source: str) -> tuple[Any, dict[str, Any]]:
    """The network of a script's build_network(), or of an ONNX model; and the script's namespace."""
    if _is_onnx(source):
        if args.script_args or args.arg:
            raise TrtdslError(
                f"{source}: --arg and arguments after -- are for network scripts; an ONNX model takes --dim"
            )
        from . import onnx

        return onnx.parse(source, dims=inputs.dim_ranges(args.dim)), {}
    if args.dim:
        raise TrtdslError(f"--dim is for ONNX models; {source} declares its dims in build_network() (net.dim)")
    positional, kwargs = inputs.parse_script_args(args.script_args, args.arg)
    return inputs.load_script(source, positional, kwargs)


def _add_build(p: argparse.ArgumentParser) -> None:
    p.add_argument("script", help="SCRIPT.py (its build_network()) or MODEL.onnx")
    p.add_argument("-o", "--output", help="plan path (default: SCRIPT name with .plan)")
    p.add_argument("--opt-level", type=int, choices=range(6), metavar="0-5", help="builder optimization level")
    p.add_argument("--workspace", type=inputs.workspace_mib, help="workspace pool limit in MiB")
    p.add_argument("--timing-cache", help="timing cache file to read and update")
    p.add_argument("--no-tf32", action="store_true", help="disable TF32 for float32 matmul/convolution")
    p.add_argument("--refit", action="store_true", help="build a refittable engine")
    p.add_argument("--strip-plan", action="store_true", help="leave refittable weights out of the plan")
    p.add_argument("--profiling-verbosity", choices=["layer_names_only", "detailed", "none"])
    p.add_argument("--aux-streams", type=number(int, "an int", 0), help="max auxiliary streams (0: none)")
    p.add_argument("--sparsity", action="store_true", help="allow 2:4 structured-sparse kernels")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    from .calib.cli import add_build_options

    add_build_options(p)
    _add_script_arguments(p)


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build

    out = inputs.writable_file(args.output or Path(args.script).with_suffix(".plan").name, "-o")
    inputs.writable_file(str(out) + ".json", "-o")
    _refuse_keras(args.script)
    net, namespace = _network(args, args.script)
    from .calib.cli import quantize_for_build

    quantize_for_build(net, args)  # --int8 / --fp8: calibrate and write Q/DQ (trtdsl/calib/cli.py)
    hook = namespace.get("configure_builder")  # the script may edit the builder config itself
    plan = build(
        net,
        optimization_level=args.opt_level,
        workspace=None if args.workspace is None else int(args.workspace * (1 << 20)),
        timing_cache=args.timing_cache,
        tf32=not args.no_tf32,
        refit=args.refit,
        strip_plan=args.strip_plan,
        profiling_verbosity=args.profiling_verbosity,
        max_aux_streams=args.aux_streams,
        sparsity=args.sparsity,
        configure=hook if callable(hook) else None,
        progress=False if args.no_progress else None,
    )
    plan.save(out)
    print(plan.summary())
    print(f"wrote {out} and {out}.json in {plan.build_seconds:.1f}s")
    return 0


# ----------------------------------------------------------------------- info
def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("plan", help="model.plan, or a network: SCRIPT.py or MODEL.onnx")
    p.add_argument("--layers", action="store_true", help="also list the layers (and the engine's, where a GPU allows)")
    _add_script_arguments(p)


def _network_info(net: Any) -> str:
    """A network's inputs, outputs and profiles, as ``Plan.summary`` lists a plan's."""
    lines = [f"network {net.name!r} ({net.dtype}): {net.trt.num_layers} layers"]
    lines.append("inputs:")
    lines += [f"  {n}: {net.input_dtypes[n]} ({', '.join(map(str, s))})" for n, s in net.input_specs.items()]
    lines.append("outputs:")
    lines += [f"  {n}: {t.dtype} ({', '.join(map(str, t.shape))})" for n, t in net.outputs.items()]
    for i, p in enumerate(net.profiles()):
        ranges = ", ".join(f"{d} {lo}..{opt}..{hi}" for d, (lo, opt, hi) in p.ranges.items())
        lines.append(f"profile {i}: {ranges or 'static shapes'}")
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    from .build import Plan

    if _is_network(args.plan):
        net, _ = _network(args, args.plan)
        print(_network_info(net))
        if args.layers:
            print(net.summary())
        return 0
    plan = Plan.load(args.plan)
    print(plan.summary())
    if getattr(args, "layers", False):
        from .planinfo import engine_layers, format_engine_layers, format_layers

        if plan.layers:
            print(f"network layers ({len(plan.layers)}):")
            print(format_layers(plan.layers))
        else:
            print("network layers: not recorded (plan saved by a trtdsl without layer metadata; rebuild it)")
        found, why = engine_layers(plan)
        print(format_engine_layers(found) if found is not None else f"engine inspector: not available: {why}")
    return 0


# ------------------------------------------------------------------------ run
def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target", help="SCRIPT.py, MODEL.onnx (both on the CPU, with the reference interpreter) or model.plan"
    )
    p.add_argument("--input", action="append", default=[], metavar="NAME=FILE", help="a .npy/.npz file; or FILE.npz")
    p.add_argument("--shapes", action="append", metavar="NAME:1x3x224x224", help="shapes of the random inputs")
    p.add_argument("--profile", type=number(int, "an int", 0), default=0, help="profile for the random inputs")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--reference", action="store_true", help="run on the CPU with the reference interpreter")
    p.add_argument("--save", help="write the outputs to this npz")
    _add_script_arguments(p)


def _complete_feeds(
    feeds: dict[str, np.ndarray], specs: dict[str, tuple], dtypes_: dict[str, str], profiles: Sequence[Any],
    args: argparse.Namespace, highs: dict[str, int],
) -> dict[str, np.ndarray]:  # fmt: skip
    """The given feeds plus random ones for the missing inputs, their named dims agreeing with the given."""
    from .runtime.bench import parse_shapes

    if args.profile >= len(profiles):
        raise TrtdslError(
            f"--profile {args.profile}: the network has {len(profiles)} profile(s), 0..{len(profiles) - 1}"
        )
    shapes = parse_shapes(args.shapes)
    for name, shape in shapes.items():
        if name in feeds and tuple(feeds[name].shape) != tuple(shape):
            raise TrtdslError(f"--shapes {name}: {shape} disagrees with --input {name} of shape {feeds[name].shape}")
    given = {n: np.shape(a) for n, a in feeds.items() if n in specs} | shapes
    bound = inputs.bind_dims(specs, given, "--input/--shapes")
    missing = {n: s for n, s in specs.items() if n not in feeds}
    profile = profiles[args.profile] if profiles[args.profile].ranges else None
    for dim, n in bound.items():  # before any random array is made at that size
        lo, _, hi = profile.ranges.get(dim, (n, n, n)) if profile is not None else (n, n, n)
        if not lo <= n <= hi and missing:
            raise ProfileError(
                f"dim {dim!r} = {n} (from --input/--shapes) is outside profile {args.profile}: {lo}..{hi}"
            )
    return feeds | inputs.random_feeds(missing, dtypes_, profile, bound, highs, seed=args.seed)


def cmd_run(args: argparse.Namespace) -> int:
    if args.save:
        inputs.writable_file(args.save, "--save")
    feeds = inputs.read_inputs(args.input)
    if _is_network(args.target):
        from . import reference

        net, _ = _network(args, args.target)
        feeds = _complete_feeds(feeds, net.input_specs, net.input_dtypes, net.profiles(), args, net.index_ranges())
        outputs = reference.run(net, feeds)
        if not args.reference:
            print("note: ran the network definition on the CPU with the reference interpreter", file=sys.stderr)
    else:
        from .build import Plan

        if args.reference:
            raise TrtdslError(
                "--reference needs the network (SCRIPT.py or MODEL.onnx): a plan holds no network definition"
            )
        plan = Plan.load(args.target)
        specs = {n: s.shape for n, s in plan.inputs.items()}
        saved = plan.options.get("index_ranges") if isinstance(plan.options, dict) else None
        highs = {k: v for k, v in (saved or {}).items() if type(v) is int and v > 0} if isinstance(saved, dict) else {}
        feeds = _complete_feeds(feeds, specs, {n: s.dtype for n, s in plan.inputs.items()}, plan.profiles, args, highs)
        from .runtime import Session

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


# -------------------------------------------------------------------- compare
def _add_compare(p: argparse.ArgumentParser) -> None:
    from .golden import DEFAULT_TOLERANCES

    p.add_argument("a")
    p.add_argument("b", help="the reference")
    p.add_argument("--tolerance", choices=sorted(DEFAULT_TOLERANCES), help="preset atol/rtol of a precision")
    p.add_argument("--atol", type=number(float, "a number", 0.0), help="overrides the preset's atol")
    p.add_argument("--rtol", type=number(float, "a number", 0.0), help="overrides the preset's rtol")


def cmd_compare(args: argparse.Namespace) -> int:
    from . import golden

    actual, _ = golden.load(args.a)
    expected, meta = golden.load(args.b)
    tol = None
    if args.tolerance or args.atol is not None or args.rtol is not None:
        precision = args.tolerance or meta.get("precision", "float32")
        if not args.tolerance and (not isinstance(precision, str) or precision not in golden.DEFAULT_TOLERANCES):
            raise TrtdslError(
                f"{args.b}: metadata precision {precision!r} has no preset; pass --tolerance "
                f"({', '.join(sorted(golden.DEFAULT_TOLERANCES))}) or --atol and --rtol"
            )
        default = golden.Tolerance.for_precision(precision)
        tol = golden.Tolerance(
            atol=default.atol if args.atol is None else args.atol, rtol=default.rtol if args.rtol is None else args.rtol
        )
    report = golden.compare(actual, expected, tolerance=tol)
    print(report)
    return 0 if report.ok else 1


# ---------------------------------------------------------------------- bench
def _add_bench(p: argparse.ArgumentParser) -> None:
    from .runtime.bench import add_arguments

    add_arguments(p)


def cmd_bench(args: argparse.Namespace) -> int:
    from .runtime.bench import run_args

    return run_args(args)


register("build", "run SCRIPT.py's build_network() and write a plan", _add_build, cmd_build)
register("info", "print a plan's inputs, outputs and profiles", _add_info, cmd_info)
register("run", "run a network script (reference interpreter) or a plan (GPU)", _add_run, cmd_run)
register("compare", "compare two output npz files", _add_compare, cmd_compare)
register("bench", "latency and throughput of a plan on the GPU", _add_bench, cmd_bench)


# ----------------------------------------------------------------------- main
def parser() -> argparse.ArgumentParser:
    """The ``trtdsl`` argument parser with every registered subcommand."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    top = _Parser(prog="trtdsl", description="Write, build, run and check TensorRT networks.")
    top.add_argument("-v", "--verbose", action="count", default=0, help="TensorRT log detail (-v info, -vv verbose)")
    top.add_argument("--traceback", action="store_true", help="show the Python traceback of an unexpected error")
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(fn=command.run)
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Everything after the first "--" belongs to the script (argparse cannot tell once
    # a subcommand has positionals of its own).
    script_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    try:
        args = parser().parse_args(argv)
        args.script_args = script_args
    except SystemExit as e:  # --help, or a usage error already printed as one line
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        with warnings.catch_warnings():  # restores the default display when the command is done
            warnings.showwarning = functools.partial(_warning, args.command)
            return args.fn(args)
    except TrtdslError as e:
        print(f"trtdsl {args.command}: {type(e).__name__}: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"trtdsl {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader stopped (`trtdsl info x.plan --layers | head`): not an error of ours
        # Python would report the pipe again when it flushes stdout at exit: point stdout at nothing first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a process ended by SIGPIPE (128 + 13)
    except Exception as e:
        if args.traceback:
            raise
        print(
            f"trtdsl {args.command}: unexpected {type(e).__name__}: {_one_line(e)} "
            "(a bug in the script or in trtdsl; rerun with --traceback to see where)",
            file=sys.stderr,
        )
        return 70


def _warning(command: str, message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """A warning as one line, as errors are: 'trtdsl build: CalibrationWarning: exclude pattern ...'."""
    print(f"trtdsl {command}: {category.__name__}: {_one_line(Exception(str(message)))}", file=sys.stderr)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
