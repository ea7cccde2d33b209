"""Calibration speed: the vectorized range algorithms against the published loops, and the cost of
collecting statistics on ResNet-50 against plain interpreter runs.

1. ``algorithms``: entropy (ModelOpt's), mse (INT8 and FP8) and percentile amax of 200 tensors' 2048-bin
   histograms with trtdsl.calib, and with the reference loops of tests/calib/oracles.py (the
   published pytorch-quantization/ModelOpt loops) on ``--loops`` of them (the entropy loop
   takes seconds per histogram); the results must be identical. Goal: >= 50x.
2. ``throughput``: torchvision ResNet-50 (random weights) in the reference interpreter, batch
   ``--batch`` at 224x224: plain runs, runs observing every tensor that gets Q/DQ with the
   ``max`` collector, and with histograms, interleaved. Goal: max <= 1.25x, histograms <= 2x.

    python bench/calib.py                 # both
    python bench/calib.py algorithms --loops 10
    python bench/calib.py throughput --iterations 5 --batch 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.calib import oracles  # noqa: E402
from trtdsl.calib import algorithms as A  # noqa: E402


def histograms(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` histograms of |x| from a mix of activation-like distributions, 2048 bins each."""
    rng = np.random.default_rng(seed)
    kinds = [
        lambda: rng.standard_normal(50_000) * rng.uniform(0.1, 5),
        lambda: np.maximum(rng.standard_normal(50_000), 0),
        lambda: rng.laplace(0, 1, 50_000),
        lambda: np.concatenate([rng.standard_normal(50_000), rng.uniform(10, 30, 20)]),
        lambda: rng.lognormal(0, 1, 50_000),
    ]
    out = []
    for i in range(n):
        a = np.abs(kinds[i % len(kinds)]())
        out.append(np.histogram(a, bins=2048, range=(0, a.max())))
    return out


def bench_algorithms(args: argparse.Namespace) -> None:
    hists = histograms(args.tensors)
    fast = {
        "entropy": A.entropy,
        "mse": lambda c, e: A.mse(c, e, dtype="int8"),
        "mse-fp8": lambda c, e: A.mse(c, e, dtype="fp8"),
        "percentile": lambda c, e: A.percentile(c, e, percentile=99.99),
    }
    slow = {
        "entropy": lambda c, e: oracles.entropy_loop(c, e)[0],
        "mse": lambda c, e: oracles.mse_loop(c, e, dtype="int8")[0],
        "mse-fp8": lambda c, e: oracles.mse_loop(c, e, dtype="fp8")[0],
        "percentile": lambda c, e: oracles.percentile_loop(c, e, 99.99),
    }
    print(f"{args.tensors} histograms of 2048 bins; reference loops on {args.loops} of them (machine shared: noisy)")
    print(f"{'algorithm':11} {'vectorized ms/tensor':>21} {'loop ms/tensor':>15} {'ratio':>8}  identical")
    for name, fn in fast.items():
        t = time.perf_counter()
        mine = [fn(c, e) for c, e in hists]
        t_fast = (time.perf_counter() - t) / len(hists)
        step = max(1, len(hists) // args.loops)
        sample = list(range(0, len(hists), step))[: args.loops]
        t = time.perf_counter()
        ref = [slow[name](*hists[i]) for i in sample]
        t_slow = (time.perf_counter() - t) / len(sample)
        same = sum(mine[i] == r for i, r in zip(sample, ref))
        print(f"{name:11} {t_fast * 1e3:21.2f} {t_slow * 1e3:15.1f} {t_slow / t_fast:7.0f}x  {same}/{len(sample)}")


def bench_throughput(args: argparse.Namespace) -> None:
    import torchvision

    import trtdsl
    from trtdsl import calib
    from trtdsl.calib.observe import Collector
    from trtdsl.models import resnet50
    from trtdsl.reference import prepare

    state = {k: v.numpy() for k, v in torchvision.models.resnet50().eval().state_dict().items()}
    net = trtdsl.Network("resnet50")
    x = net.input("images", "float32", (args.batch, 3, 224, 224))
    net.output(resnet50(net, x, state), "logits")
    names = calib.plan(net).tensors
    interp = prepare(net)
    rng = np.random.default_rng(0)
    feeds = {"images": rng.standard_normal((args.batch, 3, 224, 224)).astype(np.float32)}
    cols = {"max": Collector(names, histograms=False), "histogram": Collector(names, histograms=True)}
    # Time spent inside the collectors' callbacks, per batch: the statistics' own cost, which the
    # load of other processes on a shared machine disturbs far less than whole-run times.
    inside = {k: [0.0] for k in cols}
    for k, col in cols.items():
        update = col._update

        def timed(name: str, array: np.ndarray, update=update, acc=inside[k]) -> None:
            t = time.perf_counter()
            update(name, array)
            acc[0] += time.perf_counter() - t

        col._observers = {n: timed for n in names}
    noop = {n: (lambda name, array: None) for n in names if n != "images"}

    def plain() -> None:
        interp.run(feeds)

    def observed(kind: str):
        return lambda: cols[kind].run(interp, feeds)

    fns = {"plain": plain, "no-op observers": lambda: interp.run(feeds, observe=noop), "max": observed("max"),
           "histogram": observed("histogram")}  # fmt: skip
    for fn in fns.values():  # warm-up (buffer pools, prepared plans, first histogram range)
        fn()
    for acc in inside.values():
        acc[0] = 0.0
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(args.iterations):
        for k, fn in fns.items():  # interleaved: load from other processes falls on all alike
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    base = statistics.median(times["plain"])
    print(f"ResNet-50 batch {args.batch}, {len(names)} observed tensors, {args.iterations} interleaved runs each "
          "(machine shared: noisy)")  # fmt: skip
    for k, ts in times.items():
        med = statistics.median(ts)
        extra = ""
        if k in inside:
            per = inside[k][0] / args.iterations
            extra = f"   callbacks {per * 1e3:6.1f} ms/batch = +{per / base:.1%} of plain"
        print(f"{k:16} {med * 1e3:8.0f} ms/batch {1 / med:6.2f} batches/s {med / base:5.2f}x plain{extra}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="?", choices=["algorithms", "throughput", "both"], default="both")
    p.add_argument("--tensors", type=int, default=200)
    p.add_argument("--loops", type=int, default=5, help="histograms the reference loops run on (default 5)")
    p.add_argument("--iterations", type=int, default=5)
    p.add_argument("--batch", type=int, default=1)
    args = p.parse_args()
    if args.what in ("algorithms", "both"):
        bench_algorithms(args)
    if args.what in ("throughput", "both"):
        bench_throughput(args)


if __name__ == "__main__":
    main()
