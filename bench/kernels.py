"""The interpreter's compiled kernels (numba) against its NumPy kernels and torch's CPU kernels, one thread.

Shapes are those of MobileNetV2/V3, EfficientNet-B0 and ViT-B/16. Each row times the
compiled kernel (``reference.kernels.jit``), the NumPy kernel it replaces (the same
fast-mode function with numba hidden), and torch (one thread) on the same input,
interleaved, and prints the medians and the ratios; the outputs must agree.

    python bench/kernels.py
    python bench/kernels.py --iterations 50
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from unittest import mock

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread for all three: the compiled kernels use one

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from trtdsl.reference import fusion  # noqa: E402
from trtdsl.reference.kernels import depthwise, jit  # noqa: E402

# (channels, size, kernel, stride)
DEPTHWISE = [
    (32, 112, 3, 1), (96, 112, 3, 2), (144, 56, 3, 1), (144, 56, 5, 2), (240, 28, 5, 1),
    (384, 14, 3, 1), (672, 14, 5, 1), (960, 7, 3, 1), (1152, 7, 5, 1),
]  # fmt: skip
# (activation, shape)
ACTIVATIONS = [
    ("SIGMOID", True, (96, 112, 112)),
    ("HARD_SIGMOID", True, (72, 56, 56)),
    ("GELU_ERF", False, (197, 3072)),
]


def _numpy():
    """numba hidden from the kernels: the fast mode's NumPy kernels run."""
    return mock.patch.object(jit, "_compiled", lambda: (None, "hidden by bench/kernels.py"))


def _time(fns: list, iterations: int) -> list[float]:
    """Median milliseconds of each of ``fns``, interleaved."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(iterations):
        for fn, ts in zip(fns, times, strict=True):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [float(np.median(ts)) * 1e3 for ts in times]


def _depthwise_row(torch, c: int, size: int, k: int, s: int, rng: np.random.Generator, iterations: int) -> str:
    F = torch.nn.functional
    silu = fusion.Epilogue("SIGMOID", 0.0, 0.0, gate=True)
    x = rng.standard_normal((1, c, size, size), dtype=np.float32)
    w = rng.standard_normal((c, 1, k, k), dtype=np.float32)
    b = rng.standard_normal(c, dtype=np.float32)
    p = k // 2
    out = ((size + 2 * p - k) // s + 1,) * 2
    tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)

    def compiled():
        y = np.empty((1, c, *out), np.float32)
        jit.grouped(x, w, c, (s, s), (1, 1), out, (p, p), b, y, silu.activation)
        return y

    def numpy():
        with _numpy():
            return depthwise.depthwise_2d(x, w, (s, s), (1, 1), out, (p, p), b, epilogue=silu)

    def reference():
        with torch.no_grad():
            return F.silu(F.conv2d(tx, tw, tb, stride=s, padding=p, groups=c))

    np.testing.assert_allclose(compiled(), numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(compiled(), reference().numpy(), rtol=1e-4, atol=1e-4)
    a, n, t = _time([compiled, numpy, reference], iterations)
    shape = f"{c}x{size}x{size} {k}x{k}/{s}"
    return f"  {shape:<22} {a:9.3f} {n:9.3f} {t:9.3f}  {n / a:13.2f}x  {t / a:13.2f}x"


def bench_depthwise(torch, iterations: int) -> None:
    rng = np.random.default_rng(0)
    print("depthwise convolution (+ bias, SiLU), ms:")
    print(f"  {'shape':<22} {'compiled':>9} {'NumPy':>9} {'torch':>9}  NumPy/compiled  torch/compiled")
    for c, size, k, s in DEPTHWISE:
        print(_depthwise_row(torch, c, size, k, s, rng, iterations))


def bench_rows(torch, iterations: int) -> None:
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    print("activations in place, softmax and layer norm, ms:")
    print(f"  {'op':<34} {'compiled':>9} {'NumPy':>9} {'torch':>9}  NumPy/compiled  torch/compiled")
    torch_act = {"SIGMOID": F.silu, "HARD_SIGMOID": F.hardswish, "GELU_ERF": F.gelu}
    rows = []
    for kind, gate, shape in ACTIVATIONS:
        x = rng.standard_normal(shape, dtype=np.float32) * 3
        ep = fusion.Epilogue(
            kind, 1 / 6 if kind == "HARD_SIGMOID" else 0.0, 0.5 if kind == "HARD_SIGMOID" else 0.0, gate
        )
        tx = torch.from_numpy(x.copy())
        fn = torch_act[kind]
        work = x.copy()

        def compiled(ep=ep, work=work, x=x):
            np.copyto(work, x)
            return ep(work)

        def numpy(ep=ep, work=work, x=x):
            np.copyto(work, x)
            with _numpy():
                return ep(work)

        def reference(fn=fn, tx=tx):
            return fn(tx)

        name = f"{'gate ' if gate else ''}{kind} {'x'.join(map(str, shape))}"
        rows.append((name, compiled, numpy, reference))
    scores = rng.standard_normal((12, 197, 197), dtype=np.float32) * 3
    tokens = rng.standard_normal((197, 768), dtype=np.float32) + 2
    scale, shift = rng.standard_normal(768, dtype=np.float32), rng.standard_normal(768, dtype=np.float32)
    out_s, out_t = np.empty_like(scores), np.empty_like(tokens)
    ts, tt = torch.from_numpy(scores), torch.from_numpy(tokens)
    tsc, tsh = torch.from_numpy(scale), torch.from_numpy(shift)

    def np_softmax():
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def np_layer_norm():  # the plain path's float64 statistics, as the interpreter runs it without numba
        x64 = tokens.astype(np.float64)
        c = x64 - x64.mean(axis=-1, keepdims=True)
        return (c / np.sqrt((c * c).mean(axis=-1, keepdims=True) + 1e-5) * scale + shift).astype(np.float32)

    rows.append(("softmax 12x197x197", lambda: jit.softmax(scores, 2, out_s) and out_s, np_softmax,
                 lambda: F.softmax(ts, -1)))  # fmt: skip
    rows.append(("layer norm 197x768", lambda: jit.layer_norm(tokens, scale, shift, 1e-5, out_t) and out_t,
                 np_layer_norm, lambda: F.layer_norm(tt, (768,), tsc, tsh, 1e-5)))  # fmt: skip
    for name, compiled, numpy, reference in rows:
        np.testing.assert_allclose(compiled(), numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(compiled(), np.asarray(reference()), rtol=1e-4, atol=1e-5)
        a, n, t = _time([compiled, numpy, reference], iterations)
        print(f"  {name:<34} {a:9.3f} {n:9.3f} {t:9.3f}  {n / a:13.2f}x  {t / a:13.2f}x")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iterations", type=int, default=30, help="timed calls of each (default 30)")
    args = p.parse_args()
    if not jit.enabled():
        sys.exit(f"bench/kernels.py: {jit.why_not()}")
    import torch

    torch.set_num_threads(1)
    bench_depthwise(torch, args.iterations)
    bench_rows(torch, args.iterations)
    return 0


if __name__ == "__main__":
    sys.exit(main())
