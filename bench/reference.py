"""Latency of trtdsl.reference.run against ONNX Runtime CPU on the same ResNet-50.

torchvision ResNet-50 (random weights, batch 1, 224x224) is exported to ONNX
once; TensorRT's ONNX parser turns it into the network the interpreter runs,
and ONNX Runtime's CPU provider runs the same file. Both get the same thread
count, in one process. The goal is a median ratio within 1.5x.

    python bench/reference.py --iterations 20 --threads 2
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--model", default="resnet50", help="a model of tests/reference/onnx_models.py (default resnet50)")
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
sys.path[:0] = [str(REPO), str(REPO / "tests" / "reference")]

import onnx_models  # noqa: E402

import trtdsl.reference  # noqa: E402
from trtdsl import golden  # noqa: E402


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

    original = dict(registry.REGISTRY)
    kinds = {node.type for node in interp.nodes}
    counts = {k: sum(node.type == k for node in interp.nodes) for k in kinds}
    per_run: dict[str, list[float]] = {k: [] for k in kinds}
    totals = []
    try:
        for k in kinds:
            if k in original:
                registry.REGISTRY[k] = timed(k, original[k])
        for _ in range(iterations):
            spent.clear()
            t = time.perf_counter()
            interp.run(feeds)
            totals.append(time.perf_counter() - t)
            for k in kinds:
                per_run[k].append(spent.get(k, 0.0))
    finally:
        registry.REGISTRY.update(original)
    print(f"interpreter time per layer type (median of {iterations} runs, total {np.median(totals) * 1e3:.1f} ms):")
    for k in sorted(kinds, key=lambda k: -np.median(per_run[k])):
        print(f"  {k:22}{counts[k]:5} layers{np.median(per_run[k]) * 1e3:10.2f} ms")


def _blas_threads(n: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables above still hold
        return None
    return threadpool_limits(limits=n)


def main(args: argparse.Namespace) -> int:
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
    interp = trtdsl.reference.prepare(parsed.network)
    prepare_s = time.perf_counter() - t
    ours = interp.run(feeds)  # the first run converts weights; it is the warm-up's job to absorb that
    theirs = dict(zip(names, session.run(names, feeds), strict=True))
    scale = max(float(np.max(np.abs(v))) for v in theirs.values())
    report = golden.compare(ours, theirs, golden.Tolerance(atol=1e-5 * max(scale, 1.0), rtol=1e-4))

    load = os.getloadavg()  # other processes' load skews both timings; report it
    ref_ms, ort_ms = _time(
        [lambda: interp.run(feeds), lambda: session.run(names, feeds)], args.warmup, args.iterations, args.pause
    )

    print(f"{args.model}, batch 1, input {spec.shape}, {parsed.network.num_layers} TensorRT layers")
    print("load average before timing (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in load))
    print(
        f"threads: {args.threads} for both (ONNX Runtime intra-op, BLAS), {args.iterations} iterations, "
        f"{args.pause} s pause before each call"
    )
    print(f"outputs agree to rtol 1e-4: {report.ok} (max abs error {max(r.max_abs for r in report):.3g})")
    print(f"interpreter prepare (downcast, grouping): {prepare_s * 1e3:.1f} ms")
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
