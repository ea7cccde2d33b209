"""``trtdsl bench model.plan``: latency percentiles, throughput and the H2D/compute/D2H split.

The summary follows trtexec's "Performance summary": throughput in queries per
second, then min/max/mean/median/percentiles of the end-to-end host latency and
of each GPU phase, timed with CUDA events around the copies and
``execute_async_v3``. With ``--graph`` the copies and the execution replay as
one CUDA graph, so only the whole graph's GPU time is reported.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import TrtdslError

PERCENTILES = (90, 95, 99)


def parse_shapes(specs: str | Sequence[str] | None) -> dict[str, tuple[int, ...]]:
    """``"images:1x3x224x224,mask:1x224"`` (or a list of such strings) -> {name: shape}."""
    if not specs:
        return {}
    items = [specs] if isinstance(specs, str) else list(specs)
    shapes: dict[str, tuple[int, ...]] = {}
    for item in (p.strip() for s in items for p in s.split(",")):
        if not item:
            continue
        name, sep, dims = item.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.lower().split("x")) if dims else ()
        except ValueError:
            shape = None
        if not sep or not name or shape is None or any(d < 0 for d in shape):
            raise TrtdslError(f"--shapes entry {item!r} must look like name:1x3x224x224")
        shapes[name] = shape
    return shapes


def stats(values_ms: Sequence[float]) -> dict[str, float]:
    """min, max, mean, median and the PERCENTILES of a list of milliseconds."""
    a = np.asarray(values_ms, dtype=np.float64)
    if a.size == 0:
        raise TrtdslError("no timing samples")
    out = {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()), "median": float(np.median(a))}
    for p in PERCENTILES:
        out[f"p{p}"] = float(np.percentile(a, p))
    return out


@dataclass
class BenchReport:
    """What ``bench`` measured; ``str(report)`` is the trtexec-like summary."""

    plan: str
    shapes: dict[str, tuple[int, ...]]
    iterations: int
    graph: bool
    device: str
    throughput_qps: float
    walltime_s: float
    latency: dict[str, float]
    phases: dict[str, dict[str, float]] = field(default_factory=dict)

    def __str__(self) -> str:
        return format_report(self)


def _line(title: str, s: Mapping[str, float]) -> str:
    pct = ", ".join(f"percentile({p}%) = {s[f'p{p}']:.5f} ms" for p in PERCENTILES)
    return (
        f"{title}: min = {s['min']:.5f} ms, max = {s['max']:.5f} ms, mean = {s['mean']:.5f} ms, "
        f"median = {s['median']:.5f} ms, {pct}"
    )


_TITLES = {
    "h2d_ms": "H2D Latency",
    "compute_ms": "GPU Compute Time",
    "d2h_ms": "D2H Latency",
    "graph_ms": "GPU Time (graph: copies + compute)",
}


def format_report(r: BenchReport) -> str:
    shapes = ", ".join(f"{n}:{'x'.join(map(str, s))}" for n, s in r.shapes.items()) or "(static)"
    lines = [
        f"=== Performance summary: {r.plan} on {r.device} ===",
        f"Shapes: {shapes}; iterations: {r.iterations}; CUDA graph: {'yes' if r.graph else 'no'}",
        f"Throughput: {r.throughput_qps:.3f} qps",
        _line("Latency", r.latency),
    ]
    lines += [_line(_TITLES.get(k, k), v) for k, v in r.phases.items()]
    lines.append(f"Total Host Walltime: {r.walltime_s:.5f} s")
    return "\n".join(lines)


def default_shapes(plan: Any) -> dict[str, tuple[int, ...]]:
    """The opt shape of every input in profile 0."""
    out = {}
    for name, spec in plan.inputs.items():
        if plan.profiles:
            out[name] = tuple(plan.profiles[0].shapes(spec.shape)[1])
        else:
            out[name] = tuple(int(d) for d in spec.shape)
    return out


def random_feeds(plan: Any, shapes: Mapping[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, spec in plan.inputs.items():
        shape = shapes[name]
        if dtypes.is_float(spec.dtype):  # in the input's own type: the feed rule converts nothing
            feeds[name] = dtypes.cast(rng.standard_normal(shape, dtype=np.float32), spec.dtype)
        elif spec.dtype == "bool":
            feeds[name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[name] = rng.integers(0, 8, shape).astype(np.dtype(spec.dtype))
    return feeds


def bench(
    plan: Any,
    shapes: Mapping[str, Sequence[int]] | None = None,
    *,
    iterations: int = 100,
    warmup: int = 10,
    graph: bool = False,
    device: int = 0,
    session: Any = None,
) -> BenchReport:
    """Time ``iterations`` synchronous runs of ``plan`` (a Plan or a path) after ``warmup`` ones.

    ``session`` replaces the Session made from ``plan`` (tests pass one with a stub engine).
    """
    from ..plan import Plan
    from . import cuda
    from .session import Session

    if iterations < 1:
        raise TrtdslError(f"iterations must be >= 1, got {iterations}")
    plan = plan if isinstance(plan, Plan) else Plan.load(plan)
    given = {n: tuple(int(d) for d in s) for n, s in (shapes or {}).items()}
    shapes = {**default_shapes(plan), **given}
    plan.select_profile(shapes)  # bad shapes fail here, naming input, dim and range
    own = session is None
    session = Session(plan, device=device) if own else session
    feeds = random_feeds(plan, shapes)
    latency, phases = [], {}
    try:
        if graph:
            g = session.graph(shapes)
            start, end = cuda.Event(timing=True), cuda.Event(timing=True)
            gpu = []
            for i in range(warmup + iterations):
                t0 = time.perf_counter()
                if i == warmup:
                    wall0 = t0
                start.record(g.stream)
                h = g.run_async(feeds)
                end.record(g.stream)
                h.result()
                end.synchronize()
                if i >= warmup:
                    latency.append((time.perf_counter() - t0) * 1e3)
                    gpu.append(end.elapsed_ms(start))
            phases["graph_ms"] = stats(gpu)
            g.close()
        else:
            samples: dict[str, list[float]] = {"h2d_ms": [], "compute_ms": [], "d2h_ms": []}
            for i in range(warmup + iterations):
                t0 = time.perf_counter()
                h = session.run_async(feeds, timing=True)
                h.result()
                if i == warmup:
                    wall0 = t0
                if i >= warmup:
                    latency.append((time.perf_counter() - t0) * 1e3)
                    for k, v in h.timings.items():
                        samples[k].append(v)
            phases = {k: stats(v) for k, v in samples.items()}
        wall = time.perf_counter() - wall0
    finally:
        if own:
            session.close()
    return BenchReport(
        plan=plan.network or "plan",
        shapes=shapes,
        iterations=iterations,
        graph=graph,
        device=cuda.device_name(device),
        throughput_qps=iterations / wall,
        walltime_s=wall,
        latency=stats(latency),
        phases=phases,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``trtdsl bench`` (shared by :func:`bench_main` and the ``trtdsl`` command)."""
    from ..cli import number

    _count = number(int, "an int", 0)
    p.add_argument("plan", help="plan file written by Plan.save (with its .json metadata beside it)")
    p.add_argument("--shapes", action="append", help="input shapes, e.g. images:1x3x224x224 (default: profile 0 opt)")
    p.add_argument("--iterations", type=_count, default=100)
    p.add_argument("--warmup", type=_count, default=10)
    p.add_argument("--graph", action="store_true", help="replay copies and execution as one CUDA graph")
    p.add_argument("--device", type=_count, default=0)


def run_args(args: argparse.Namespace) -> int:
    """Run ``trtdsl bench`` on parsed arguments and print the report."""
    if not os.path.isfile(args.plan):
        raise TrtdslError(f"no plan file {args.plan!r}")
    report = bench(
        args.plan,
        parse_shapes(args.shapes),
        iterations=args.iterations,
        warmup=args.warmup,
        graph=args.graph,
        device=args.device,
    )
    print(report)
    return 0


def bench_main(argv: Sequence[str] | None = None) -> int:
    """``trtdsl bench model.plan [--shapes name:1x3x224x224] [--iterations N] [--warmup N] [--graph] [--device N]``."""
    p = argparse.ArgumentParser(prog="trtdsl bench", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    if not os.path.isfile(args.plan):
        p.error(f"no plan file {args.plan!r}")
    return run_args(args)
