"""Network-construction time and memory: ResNet-50 from ``trtdsl.models`` against the raw TensorRT API.

Both sides build the same graph from the same torchvision-layout state dict
(random weights, random BatchNorm statistics): BatchNorm folded into each
convolution's kernel and bias in NumPy, ReLU activations, max pool, residual
adds, a global-average reduce, and the classifier as constant + matrix multiply
+ bias add. Both name every layer. The raw side is what a careful hand-written
``INetworkDefinition`` looks like (tensorrtx style, but folding BN instead of
leaving a scale layer).

Each measurement runs in a fresh subprocess that first loads the weights and
imports TensorRT, so only construction is measured:
- time: one cold construction per process (Builder + INetworkDefinition + all layers), over
  ``--rounds`` processes alternating raw and DSL: the minimum (least disturbed by other load) and median;
- tracemalloc peak: Python-side allocations during one construction (NumPy buffers included);
- RSS: resident memory the finished network holds over the pre-construction baseline.

Run: ``python bench/construct.py [--rounds 15] [--json]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

EPS = 1e-5
LAYERS = (3, 4, 6, 3)


def make_weights(path: Path) -> None:
    """A torchvision resnet50 state dict with random weights and BN statistics, as npz."""
    import torch
    from torchvision.models import resnet50

    torch.manual_seed(0)
    model = resnet50(num_classes=1000)
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, t in model.state_dict().items():
        if not t.is_floating_point():
            continue
        v = t
        if k.endswith("running_var"):
            v = torch.rand(t.shape, generator=g) + 0.5
        elif k.endswith("running_mean"):
            v = torch.randn(t.shape, generator=g) * 0.1
        sd[k] = v.numpy().astype(np.float32)
    np.savez(path, **sd)


# ----------------------------------------------------------------- raw API
def raw_resnet50(trt, logger, w: dict[str, np.ndarray]):
    """ResNet-50 written directly against INetworkDefinition, BN folded in NumPy."""
    builder = trt.Builder(logger)
    net = builder.create_network(0)
    keep: list[np.ndarray] = []  # trt.Weights does not copy: the arrays must outlive the build

    def weights(a: np.ndarray):
        a = np.ascontiguousarray(a, dtype=np.float32)
        keep.append(a)
        return trt.Weights(a)

    def conv_bn(x, conv: str, bn: str, stride: int, pad: int, relu: bool, name: str):
        k = w[conv + ".weight"]
        scale = w[bn + ".weight"].astype(np.float64) / np.sqrt(w[bn + ".running_var"].astype(np.float64) + EPS)
        kernel = k * scale.astype(np.float32).reshape(-1, 1, 1, 1)  # one float32 pass, as trtdsl folds
        bias = w[bn + ".bias"] - w[bn + ".running_mean"] * scale
        layer = net.add_convolution_nd(x, k.shape[0], k.shape[2:], weights(kernel), weights(bias))
        layer.stride_nd = (stride, stride)
        layer.padding_nd = (pad, pad)
        layer.name = name
        layer.get_output(0).name = name + ".out"
        y = layer.get_output(0)
        if relu:
            act = net.add_activation(y, trt.ActivationType.RELU)
            act.name = name + ".relu"
            act.get_output(0).name = name + ".relu.out"
            y = act.get_output(0)
        return y

    def named(layer, name: str):
        layer.name = name
        layer.get_output(0).name = name + ".out"
        return layer.get_output(0)

    x = net.add_input("images", trt.float32, (1, 3, 224, 224))
    y = conv_bn(x, "conv1", "bn1", 2, 3, True, "conv1")
    pool = net.add_pooling_nd(y, trt.PoolingType.MAX, (3, 3))
    pool.stride_nd, pool.padding_nd = (2, 2), (1, 1)
    y = named(pool, "maxpool")
    for s, blocks in enumerate(LAYERS):
        for i in range(blocks):
            p = f"layer{s + 1}.{i}"
            stride = 2 if s > 0 and i == 0 else 1
            h = conv_bn(y, f"{p}.conv1", f"{p}.bn1", 1, 0, True, f"{p}.conv1")
            h = conv_bn(h, f"{p}.conv2", f"{p}.bn2", stride, 1, True, f"{p}.conv2")
            h = conv_bn(h, f"{p}.conv3", f"{p}.bn3", 1, 0, False, f"{p}.conv3")
            if f"{p}.downsample.0.weight" in w:
                y = conv_bn(y, f"{p}.downsample.0", f"{p}.downsample.1", stride, 0, False, f"{p}.downsample.0")
            add = named(net.add_elementwise(h, y, trt.ElementWiseOperation.SUM), f"{p}.add")
            y = named(net.add_activation(add, trt.ActivationType.RELU), f"{p}.relu")
    y = named(net.add_reduce(y, trt.ReduceOperation.AVG, 0b1100, True), "avgpool")
    shuffle = net.add_shuffle(y)
    shuffle.reshape_dims = (1, 2048)
    y = named(shuffle, "flatten")
    fc_w = w["fc.weight"]
    wc = named(net.add_constant(fc_w.shape, weights(fc_w)), "fc.weight")
    mm = named(net.add_matrix_multiply(y, trt.MatrixOperation.NONE, wc, trt.MatrixOperation.TRANSPOSE), "fc.matmul")
    bc = named(net.add_constant((1, fc_w.shape[0]), weights(w["fc.bias"])), "fc.bias")
    out = named(net.add_elementwise(mm, bc, trt.ElementWiseOperation.SUM), "fc")
    out.name = "logits"
    net.mark_output(out)
    return builder, net, keep


def dsl_resnet50(w: dict[str, np.ndarray]):
    import trtdsl
    from trtdsl import models

    net = trtdsl.Network("resnet50")
    x = net.input("images", "float32", (1, 3, 224, 224))
    net.output(models.resnet50(net, x, w), "logits")
    return net


# -------------------------------------------------------------- measuring
def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def child(mode: str, path: str) -> dict:
    from trtdsl import _trt

    trt = _trt.load()
    logger = _trt.logger()
    import trtdsl.models  # noqa: F401  (imports are not construction)

    w = {k: np.asarray(v) for k, v in np.load(path).items()}
    construct = (lambda: dsl_resnet50(w)) if mode == "dsl" else (lambda: raw_resnet50(trt, logger, w))
    gc.collect()
    base = _rss_kb()
    # One cold construction per process, as a program that defines its network once does it:
    # the weights' pages are touched for the first time here on both sides.
    t0 = time.perf_counter()
    built = construct()
    elapsed = time.perf_counter() - t0
    retained = _rss_kb() - base
    layers = (built.trt if mode == "dsl" else built[1]).num_layers
    del built
    gc.collect()
    tracemalloc.start()
    construct()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "mode": mode, "layers": layers, "time_s": elapsed,
        "tracemalloc_peak_mb": traced_peak / 2**20, "rss_retained_mb": retained / 1024,
    }  # fmt: skip


def run_child(mode: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--weights", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{mode} construction failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15, help="subprocess pairs, alternating raw and DSL")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", choices=["dsl", "raw"], help=argparse.SUPPRESS)
    ap.add_argument("--weights", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.weights)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet50.npz"
        make_weights(path)
        results: dict[str, list[dict]] = {"dsl": [], "raw": []}
        for i in range(args.rounds):
            # Swap which side goes first every round, so neither always runs right after the other.
            for mode in ("raw", "dsl") if i % 2 == 0 else ("dsl", "raw"):
                results[mode].append(run_child(mode, path))
    summary = {}
    for mode, runs in results.items():
        summary[mode] = {
            "layers": runs[0]["layers"],
            "time_min_ms": 1e3 * min(r["time_s"] for r in runs),
            "time_median_ms": 1e3 * statistics.median(r["time_s"] for r in runs),
            "tracemalloc_peak_mb": statistics.median(r["tracemalloc_peak_mb"] for r in runs),
            "rss_retained_mb": statistics.median(r["rss_retained_mb"] for r in runs),
        }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    d, r = summary["dsl"], summary["raw"]
    print(f"ResNet-50 construction, {_trt_name()}, {args.rounds} processes each, one cold construction per process")
    print("load average (1, 5, 15 min) after the run: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(f"{'':24}{'raw API':>12}{'trtdsl':>12}{'ratio':>8}")
    rows = (
        ("layers", "layers"),
        ("time_min_ms", "time, min (ms)"),
        ("time_median_ms", "time, median (ms)"),
        ("tracemalloc_peak_mb", "tracemalloc peak (MB)"),
        ("rss_retained_mb", "RSS retained (MB)"),
    )
    for key, label in rows:
        ratio = d[key] / r[key] if r[key] else float("nan")
        print(f"{label:24}{r[key]:>12.1f}{d[key]:>12.1f}{ratio:>7.2f}x")
    met = d["time_min_ms"] <= 1.1 * r["time_min_ms"]
    print(f"goal: trtdsl within 1.1x of the raw API in time (min) -> {'met' if met else 'NOT met'}")


def _trt_name() -> str:
    from trtdsl import _trt

    return f"{_trt.name()} {_trt.load().__version__}"


if __name__ == "__main__":
    main()
