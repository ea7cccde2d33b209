"""Latency of trtdsl.reference.run against ONNX Runtime CPU on the same networks.

torchvision models (random weights) are exported to ONNX once; TensorRT's ONNX
parser turns each into the network the interpreter runs, called as users call
it (``trtdsl.reference.run(parsed_network, feeds)``), and ONNX Runtime's CPU
provider runs the same file. Both get the same thread count, in one process,
timed interleaved. ``--suite`` runs the benchmark suite (bench/models.py SUITE)
and prints a table of medians and ratios; ``--memory`` also measures each
one's peak memory, each in a process of its own: above its size before the first run, and
its whole footprint for the model (from before the model is loaded, preparation included).

    python bench/reference.py --iterations 20 --threads 2                 # ResNet-50, batch 1
    python bench/reference.py --suite --threads 2 --iterations 10 --memory
    python bench/reference.py --suite --families --threads 2 --iterations 10   # ten more families
"""

from __future__ import annotations

import argparse
import difflib
import functools
import os
import sys
import tempfile
import time
from pathlib import Path


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=20, help="timed runs of each (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for both (default: all cores)")
    p.add_argument("--model", default="resnet50", help="a model of bench/models.py MODELS (default resnet50)")
    p.add_argument("--suite", action="store_true", help="run the benchmark suite (bench/models.py SUITE)")
    p.add_argument("--only", nargs="*", help="with --suite: only these networks")
    p.add_argument("--families", action="store_true",
                   help="with --suite: the other torchvision families instead (bench/models.py FAMILIES)")  # fmt: skip
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "trtdsl-bench",
                   help="with --suite: where the exported ONNX files are kept (default %(default)s)")  # fmt: skip
    p.add_argument("--memory", action="store_true", help="with --suite: also peak memory, each in its own process")
    p.add_argument("--memory-child", nargs=2, metavar=("NETWORK", "ENGINE"), help=argparse.SUPPRESS)
    p.add_argument("--onnx", type=Path, help="reuse or keep the exported ONNX file here")
    p.add_argument(
        "--pause", type=float, default=0.2, help="seconds of idle before each timed call (default 0.2; see _time)"
    )
    p.add_argument("--breakdown", action="store_true", help="also print the interpreter's time per layer type")
    return p.parse_args()


ARGS = _args() if __name__ == "__main__" else None
if ARGS is not None:
    # BLAS reads these when NumPy is first imported, so set them before anything imports it.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: make the repository's packages importable
    sys.path.insert(0, str(REPO))

import trtdsl.reference  # noqa: E402
from bench import models as onnx_models  # noqa: E402
from trtdsl import _trt, golden  # noqa: E402


def _time(fns: list, warmup: int, iterations: int, pause: float) -> list[np.ndarray]:
    """Milliseconds per call of each of ``fns``, interleaved so that load from other
    processes falls on all of them alike.

    Each call waits ``pause`` seconds first: OpenBLAS's and ONNX Runtime's worker threads
    spin for a while after a call returns, and back to back the spinning threads of one
    take cores from the other (both measured up to 2x slower on 2 cores).
    """
    for _ in range(warmup):
        for fn in fns:
            time.sleep(pause)
            fn()
    times = [[] for _ in fns]
    for _ in range(iterations):
        for fn, ts in zip(fns, times, strict=True):
            time.sleep(pause)
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [np.array(ts) * 1e3 for ts in times]


def _breakdown(interp: trtdsl.reference.Interpreter, feeds: dict, iterations: int) -> None:
    """Median milliseconds per run spent in each layer type's function (timed by wrapping the registry)."""
    from trtdsl.reference import registry

    spent: dict[str, float] = {}

    def timed(kind: str, fn):
        @functools.wraps(fn)  # keeps the registry's fresh/donates promises
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[kind] = spent.get(kind, 0.0) + time.perf_counter() - t

        return wrapper

    from trtdsl.reference import fusion

    original = dict(registry.REGISTRY)
    epilogue = fusion.Epilogue.__call__
    fused = "(fused activations)"
    kinds = {node.type for node in interp.nodes}
    counts = {k: sum(node.type == k for node in interp.nodes) for k in kinds}
    per_run: dict[str, list[float]] = {k: [] for k in kinds}
    totals = []
    try:
        for k in kinds:
            if k in original:
                registry.REGISTRY[k] = timed(k, original[k])
        fusion.Epilogue.__call__ = timed(fused, epilogue)
        kinds.add(fused)
        counts[fused] = sum(isinstance(v, fusion.Epilogue) for v in interp._fusion.values())
        per_run[fused] = []
        for _ in range(iterations):
            spent.clear()
            t = time.perf_counter()
            interp.run(feeds)
            totals.append(time.perf_counter() - t)
            for k in kinds:
                per_run[k].append(spent.get(k, 0.0))
    finally:
        registry.REGISTRY.update(original)
        fusion.Epilogue.__call__ = epilogue
    print(f"interpreter time per layer type (median of {iterations} runs, total {np.median(totals) * 1e3:.1f} ms):")
    for k in sorted(kinds, key=lambda k: -np.median(per_run[k])):
        print(f"  {k:22}{counts[k]:5} layers{np.median(per_run[k]) * 1e3:10.2f} ms")


def _blas_threads(n: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables above still hold
        return None
    return threadpool_limits(limits=n)


def _networks(args: argparse.Namespace) -> dict:
    """The networks ``--suite`` runs: the suite, or with ``--families`` the other families."""
    return onnx_models.FAMILIES if args.families else onnx_models.SUITE


def _suite_file(args: argparse.Namespace, name: str) -> Path:
    args.cache.mkdir(parents=True, exist_ok=True)
    path = args.cache / f"{name}.onnx"
    if not path.exists():
        import torch

        torch.set_num_threads(args.threads)
        t = time.perf_counter()
        part = path.with_suffix(".part")
        onnx_models.export(name, part, models=_networks(args))
        part.replace(path)
        print(f"exported {name} to ONNX in {time.perf_counter() - t:.1f} s", flush=True)
    return path


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _memory_child(args: argparse.Namespace) -> int:
    """Print the peak RSS (MiB) of three runs above the process's size before the first one.

    Engine ``trtdsl-loaded``: trtdsl with numba's compiler loaded (a compiled kernel run)
    before that baseline, which shows how much of the peak is numba's one-time ~115 MiB.
    Engines ``trtdsl-whole`` and ``ort-whole``: the baseline is taken before the model is
    loaded (parsed by TensorRT's parser, or an ONNX Runtime session created), after the
    libraries are imported: each one's whole footprint for the model, preparation included.
    """
    name, engine = args.memory_child
    whole = engine.endswith("-whole")
    engine = engine.removesuffix("-whole")
    spec = _networks(args)[name]
    path = _suite_file(args, name)
    feeds = {onnx_models.INPUT: onnx_models.example(spec)}
    _blas_threads(args.threads)
    if engine == "trtdsl-loaded":
        from trtdsl.reference.kernels import jit

        jit.activate(np.ones(4, np.float32), "SIGMOID", True, 0.0, 0.0)
    if whole:
        _trt.load()  # the libraries, not the model, are before the baseline
        import onnxruntime  # noqa: F401

        Path("/proc/self/clear_refs").write_text("5")
        before = _rss_kib("VmRSS")
    if engine.startswith("trtdsl"):
        parsed = onnx_models.parse(path)

        def call():
            return trtdsl.reference.run(parsed.network, feeds)
    else:
        session = onnx_models.onnxruntime_session(path, threads=args.threads)
        names = [o.name for o in session.get_outputs()]

        def call():
            return session.run(names, feeds)

    if not whole:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux)
        before = _rss_kib("VmRSS")
    for _ in range(3):
        call()
    print(f"{(_rss_kib('VmHWM') - before) / 1024:.1f}")
    return 0


def _memory(args: argparse.Namespace, name: str, engine: str) -> float:
    import subprocess

    cmd = [sys.executable, __file__, "--threads", str(args.threads), "--cache", str(args.cache),
           *(["--families"] if args.families else []), "--memory-child", name, engine]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def _rates(args: argparse.Namespace) -> list[str]:
    """Measured bounds, interleaved like the suite: GEMM GFLOP/s of NumPy's BLAS and of ONNX Runtime's
    MatMul on the shapes of a ResNet-50 3x3 convolution and a ViT MLP, and NumPy's copy bandwidth."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    lines = []
    for m, k, n in ((256, 1152, 784), (197, 768, 3072)):
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k]),
             helper.make_tensor_value_info("b", TensorProto.FLOAT, [k, n])],
            [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])],
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        onnx.checker.check_model(model)
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
        ours, theirs = _time([lambda: a @ b, lambda: session.run(["c"], {"a": a, "b": b})], 2, 9, args.pause)  # noqa: B023
        flops = 2 * m * k * n / 1e6  # per ms -> GFLOP/s
        lines.append(f"GEMM {m}x{k}x{n}: NumPy BLAS {flops / np.median(ours):.1f} GFLOP/s, "
                     f"ONNX Runtime {flops / np.median(theirs):.1f} GFLOP/s")  # fmt: skip
    src = np.ones(16 << 20, np.float32)
    dst = np.empty_like(src)
    (copy,) = _time([lambda: np.copyto(dst, src)], 2, 9, 0.0)
    lines.append(f"copy bandwidth (64 MiB, read + write): {2 * src.nbytes / 1e6 / np.median(copy):.1f} GB/s")
    return lines


def suite(args: argparse.Namespace) -> int:
    """The suite table: medians of interleaved calls, ratios, geometric mean; memory on request."""
    networks = _networks(args)
    names = args.only or list(networks)
    unknown = [n for n in names if n not in networks]
    if unknown:
        near = {n: difflib.get_close_matches(n, networks, n=1) for n in unknown}
        hints = ", ".join(f"{n!r}" + (f" (did you mean {m[0]!r}?)" if m else "") for n, m in near.items())
        sys.exit(f"--only: no such network {hints}; the choice is: {', '.join(networks)}")
    rows = []
    load = os.getloadavg()
    for name in names:
        spec = networks[name]
        path = _suite_file(args, name)
        parsed = onnx_models.parse(path)
        session = onnx_models.onnxruntime_session(path, threads=args.threads)
        feeds = {onnx_models.INPUT: onnx_models.example(spec)}
        out_names = [o.name for o in session.get_outputs()]
        _blas_threads(args.threads)
        t = time.perf_counter()
        ours = trtdsl.reference.run(parsed.network, feeds)  # prepares and caches the interpreter
        first_ms = (time.perf_counter() - t) * 1e3
        theirs = dict(zip(out_names, session.run(out_names, feeds), strict=True))
        scale = max(float(np.max(np.abs(v))) for v in theirs.values())
        # Deep networks with calibrated statistics differ from ONNX Runtime by a few 1e-5 of the
        # largest output in float32 (the plain path too): agreement is judged against that scale.
        error = max(float(np.max(np.abs(ours[k] - v))) for k, v in theirs.items()) / max(scale, 1e-30)
        ref_ms, ort_ms = _time(
            [
                functools.partial(trtdsl.reference.run, parsed.network, feeds),
                functools.partial(session.run, out_names, feeds),
            ],
            args.warmup, args.iterations, args.pause,
        )  # fmt: skip
        row = {"name": name, "shape": spec.shape, "layers": parsed.network.num_layers, "err": error,
               "first": first_ms, "ref": float(np.median(ref_ms)), "ort": float(np.median(ort_ms))}  # fmt: skip
        if args.memory:
            row["mem_ref"], row["mem_ort"] = _memory(args, name, "trtdsl"), _memory(args, name, "ort")
            row["mem_loaded"] = _memory(args, name, "trtdsl-loaded")
            row["whole_ref"], row["whole_ort"] = _memory(args, name, "trtdsl-whole"), _memory(args, name, "ort-whole")
        rows.append(row)
        print(f"{name}: {row['ref']:.1f} ms vs {row['ort']:.1f} ms ({row['ref'] / row['ort']:.2f}x), "
              f"max error {error:.1e} of the largest output", flush=True)  # fmt: skip
        if args.breakdown:
            _breakdown(trtdsl.reference.interpreter._cached(parsed.network, True)[0], feeds, args.iterations)
    print()
    for line in _rates(args):
        print(line)
    print("load average before timing (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in load))
    print(f"threads: {args.threads} for both, {args.iterations} iterations interleaved, {args.pause} s pause each")
    head = "| network | input | TensorRT layers | trtdsl.reference.run ms | ONNX Runtime ms | ratio | max error / max output |"
    if args.memory:
        head += (" peak MiB (ours / ORT) | memory ratio | ours, numba loaded first "
                 "| whole footprint MiB (ours / ORT) | whole ratio |")  # fmt: skip
    print(head)
    print("|" + "---|" * head.count(" |"))
    for r in rows:
        line = (f"| {r['name']} | {'x'.join(map(str, r['shape']))} | {r['layers']} | {r['ref']:.1f} | {r['ort']:.1f} "
                f"| {r['ref'] / r['ort']:.2f}x | {r['err']:.1e} |")  # fmt: skip
        if args.memory:
            line += (f" {r['mem_ref']:.0f} / {r['mem_ort']:.0f} | {r['mem_ref'] / max(r['mem_ort'], 1e-9):.2f}x "
                     f"| {r['mem_loaded']:.0f} | {r['whole_ref']:.0f} / {r['whole_ort']:.0f} "
                     f"| {r['whole_ref'] / max(r['whole_ort'], 1e-9):.2f}x |")  # fmt: skip
        print(line)
    ratios = [r["ref"] / r["ort"] for r in rows]
    print(f"geometric mean of the ratios: {float(np.exp(np.mean(np.log(ratios)))):.2f}x (goal <= 2x); "
          f"worst {max(ratios):.2f}x (goal <= 3x)")  # fmt: skip
    return 0


def main(args: argparse.Namespace) -> int:
    if args.memory_child:
        return _memory_child(args)
    if args.suite:
        return suite(args)
    import torch

    torch.set_num_threads(args.threads)  # only the export uses torch
    spec = onnx_models.MODELS[args.model]
    with tempfile.TemporaryDirectory() as tmp:
        path = args.onnx or Path(tmp) / f"{args.model}.onnx"
        if not path.exists():
            t = time.perf_counter()
            onnx_models.export(args.model, path)
            print(f"exported {args.model} to ONNX in {time.perf_counter() - t:.1f} s")
        parsed = onnx_models.parse(path)
        session = onnx_models.onnxruntime_session(path, threads=args.threads)
    feeds = {onnx_models.INPUT: onnx_models.example(spec)}
    names = [o.name for o in session.get_outputs()]
    _blas_threads(args.threads)

    t = time.perf_counter()
    ours = trtdsl.reference.run(parsed.network, feeds)  # prepares (and caches) the interpreter, converts weights
    prepare_s = time.perf_counter() - t
    interp = trtdsl.reference.interpreter._cached(parsed.network, True)[0]
    theirs = dict(zip(names, session.run(names, feeds), strict=True))
    scale = max(float(np.max(np.abs(v))) for v in theirs.values())
    report = golden.compare(ours, theirs, golden.Tolerance(atol=1e-5 * max(scale, 1.0), rtol=1e-4))

    load = os.getloadavg()  # other processes' load skews both timings; report it
    ref_ms, ort_ms = _time(
        [lambda: trtdsl.reference.run(parsed.network, feeds), lambda: session.run(names, feeds)],
        args.warmup,
        args.iterations,
        args.pause,
    )

    print(f"{args.model}, batch 1, input {spec.shape}, {parsed.network.num_layers} TensorRT layers")
    print("load average before timing (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in load))
    print(
        f"threads: {args.threads} for both (ONNX Runtime intra-op, BLAS), {args.iterations} iterations, "
        f"{args.pause} s pause before each call"
    )
    print(f"outputs agree to rtol 1e-4: {report.ok} (max abs error {max(r.max_abs for r in report):.3g})")
    print(f"first call (prepare, convert weights, run): {prepare_s * 1e3:.1f} ms")
    print(f"{'':24}{'median ms':>10}{'p90 ms':>10}")
    for label, ms in (("trtdsl.reference.run", ref_ms), ("onnxruntime CPU", ort_ms)):
        print(f"{label:24}{np.median(ms):10.2f}{np.percentile(ms, 90):10.2f}")
    ratio = float(np.median(ref_ms) / np.median(ort_ms))
    print(
        f"ratio (median, reference / onnxruntime): {ratio:.2f}x  (goal <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})"
    )
    if args.breakdown:
        _breakdown(interp, feeds, args.iterations)
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
