"""Pooling ops against torch.nn.functional, through the reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ops
from trtdsl.errors import ShapeError
from trtdsl.reference import run

torch = pytest.importorskip("torch")
F = torch.nn.functional

from ._oprun import run_output as _run  # noqa: E402
from ._oprun import torch64 as _t  # noqa: E402

pytestmark = pytest.mark.usefixtures("trt")

TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float16": dict(rtol=2e-3, atol=4e-3)}
MAXP = {1: (ops.max_pool1d, F.max_pool1d), 2: (ops.max_pool2d, F.max_pool2d), 3: (ops.max_pool3d, F.max_pool3d)}
AVGP = {1: (ops.avg_pool1d, F.avg_pool1d), 2: (ops.avg_pool2d, F.avg_pool2d), 3: (ops.avg_pool3d, F.avg_pool3d)}


# (nd, spatial, kernel, stride, padding, ceil_mode)
CASES = [
    (1, (11,), 3, 2, 1, False),
    (1, (10,), 4, 3, 0, True),
    (2, (9, 10), 3, 2, 1, False),
    (2, (9, 10), 3, 2, 1, True),
    (2, (8, 8), 2, None, 0, False),
    (2, (7, 11), (3, 2), (2, 3), (1, 0), True),
    (2, (5, 5), 2, 2, 1, True),  # PyTorch drops the last window, which would start in the padding
    (2, (6, 7), 3, 3, 1, True),
    (3, (5, 6, 7), 3, 2, 1, False),
    (3, (5, 6, 7), (2, 3, 2), 2, (1, 1, 0), True),
]
IDS = [f"{c[0]}d-{c[1]}-k{c[2]}-s{c[3]}-p{c[4]}-ceil{int(c[5])}" for c in CASES]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_max_pool_matches_torch(case, dtype, rng):
    nd, spatial, k, s, p, ceil = case
    x = rng.standard_normal((2, 3, *spatial)).astype(np.float32)
    op, ref_op = MAXP[nd]
    net = trtdsl.Network("maxpool", dtype=dtype)
    y = op(net.input("x", "float32", x.shape), k, s, p, ceil_mode=ceil)
    ref = ref_op(_t(x), k, s, p, ceil_mode=ceil).numpy()
    assert y.shape == ref.shape
    np.testing.assert_allclose(_run(net, y, x), ref, **TOL[dtype])


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_avg_pool_matches_torch(case, dtype, count_include_pad, rng):
    nd, spatial, k, s, p, ceil = case
    x = rng.standard_normal((2, 3, *spatial)).astype(np.float32)
    op, ref_op = AVGP[nd]
    net = trtdsl.Network("avgpool", dtype=dtype)
    y = op(net.input("x", "float32", x.shape), k, s, p, ceil_mode=ceil, count_include_pad=count_include_pad)
    ref = ref_op(_t(x), k, s, p, ceil_mode=ceil, count_include_pad=count_include_pad).numpy()
    assert y.shape == ref.shape
    np.testing.assert_allclose(_run(net, y, x), ref, **TOL[dtype])


def test_ceil_mode_crop_is_a_named_slice():
    net = trtdsl.Network("crop")
    y = ops.avg_pool2d(net.input("x", "float32", (1, 1, 5, 5)), 2, 2, 1, ceil_mode=True, name="pool")
    assert y.layer.name == "pool.ceil_crop" and y.shape == (1, 1, 3, 3)


@pytest.mark.parametrize("spatial,k,s", [((7, 8), 3, 2), ((6, 6), 2, 2), ((5, 9), (3, 2), (1, 2))])
def test_same_padding_pools_like_keras(spatial, k, s, rng):
    x = rng.standard_normal((1, 2, *spatial)).astype(np.float32)
    kk, ss = (k, k) if isinstance(k, int) else k, (s, s) if isinstance(s, int) else s
    pad = []
    for i, kd, sd in reversed(list(zip(spatial, kk, ss))):
        total = max(0, (-(-i // sd) - 1) * sd + kd - i)
        pad += [total // 2, total - total // 2]
    net = trtdsl.Network("same")
    xi = net.input("x", "float32", x.shape)
    net.output(ops.max_pool2d(xi, k, s, "same"), "max")
    net.output(ops.avg_pool2d(xi, k, s, "same", count_include_pad=False), "avg")
    out = run(net, {"x": x})
    ref_max = F.max_pool2d(F.pad(_t(x), pad, value=-np.inf), k, s).numpy()
    # Keras' 'same' average divides by the real pixels: sum over the window / count of real pixels.
    sums = F.avg_pool2d(F.pad(_t(x), pad), k, s, divisor_override=1)
    counts = F.avg_pool2d(F.pad(torch.ones_like(_t(x)), pad), k, s, divisor_override=1)
    np.testing.assert_allclose(out["max"], ref_max, rtol=1e-6)
    np.testing.assert_allclose(out["avg"], (sums / counts).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_adaptive_and_global_pools(nd, kind, rng):
    spatial = (6, 4, 8)[:nd]
    x = rng.standard_normal((2, 3, *spatial)).astype(np.float32)
    net = trtdsl.Network("adaptive")
    xi = net.input("x", "float32", x.shape)
    adaptive = getattr(ops, f"adaptive_{kind}_pool{nd}d")
    torch_adaptive = getattr(F, f"adaptive_{kind}_pool{nd}d")
    half = tuple(s // 2 for s in spatial)
    outs = {"one": adaptive(xi, 1), "half": adaptive(xi, half), "global": getattr(ops, f"global_{kind}_pool")(xi)}
    for n, t in outs.items():
        net.output(t, n)
    got = run(net, {"x": x})
    np.testing.assert_allclose(got["one"], torch_adaptive(_t(x), 1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["global"], torch_adaptive(_t(x), 1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["half"], torch_adaptive(_t(x), half).numpy(), rtol=1e-5, atol=1e-6)
    assert outs["one"].shape == (2, 3, *(1,) * nd)


def test_global_pool_takes_dynamic_spatial_dims(rng):
    net = trtdsl.Network("gap")
    xi = net.input("x", "float32", (net.dim("n", 1, 1, 2), 4, net.dim("h", 2, 8, 16), net.dim("w", 2, 8, 16)))
    y = ops.global_avg_pool(xi, name="gap")
    assert y.shape == (-1, 4, 1, 1) and y.layer.name == "gap"
    x = rng.standard_normal((2, 4, 5, 9)).astype(np.float32)
    np.testing.assert_allclose(_run(net, y, x), x.mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6)


def test_scoped_names():
    net = trtdsl.Network("names")
    x = net.input("x", "float32", (1, 2, 8, 8))
    with net.scope("stem"):
        y = ops.max_pool2d(x, 3, 2, 1, name="pool")
        z = ops.avg_pool1d(net.input("v", "float32", (1, 2, 9)), 3)
    assert y.layer.name == "stem.pool" and y.name == "stem.pool.out"
    assert net.producer(z).name == "stem.avg_pool1d.squeeze" and z.shape == (1, 2, 3)
    assert "stem.avg_pool1d" in [layer.name for layer in net.layers()]


def test_pool_errors():
    net = trtdsl.Network("err")
    x = net.input("x", "float32", (1, 2, 8, 8))
    with pytest.raises(ShapeError, match=r"max_pool2d: TensorRT pooling has no dilation, got dilation=2"):
        ops.max_pool2d(x, 2, dilation=2)
    with pytest.raises(ShapeError, match=r"avg_pool2d 'p': kernel_size needs 2 values, got \(2, 2, 2\)"):
        ops.avg_pool2d(x, (2, 2, 2), name="p")
    with pytest.raises(ShapeError, match=r"max_pool1d 'x.max_pool1d': input 'x' must have rank 3 \(N, C, L\)"):
        ops.max_pool1d(x, 2)
    with pytest.raises(ShapeError, match=r"adaptive_avg_pool2d: output_size \(3, 3\) needs static spatial dims "
                                         r"divisible by it.*output_size 1 works for any shape"):  # fmt: skip
        ops.adaptive_avg_pool2d(x, 3)
    with pytest.raises(ShapeError, match=r"global_max_pool: input 'v' needs spatial dims after \(N, C\)"):
        ops.global_max_pool(net.input("v", "float32", (2, 3)))
