"""Golden tests of narrow-precision networks against float64 torch.

Each small network's error must stay within the bound its type's rounding allows,
and exceed what a float32 run shows, so a run that skipped the rounding fails.
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ops, reference

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("trt")

K, N = 64, 24


def _data(rng):
    x = rng.standard_normal((8, K)).astype(np.float32)
    w = (rng.standard_normal((K, N)) / 8).astype(np.float32)
    return x, w


def _exact(x, w):
    """float64 torch: the unrounded matmul + ReLU."""
    return torch.relu(torch.from_numpy(x).double() @ torch.from_numpy(w).double()).numpy()


def _f32_error(x, w):
    net = trtdsl.Network("f32")
    xi = net.input("x", "float32", x.shape)
    net.output(ops.relu(ops.matmul(xi, net.constant(w, "w"))), "y")
    return np.abs(reference.run(net, {"x": x})["y"] - _exact(x, w)).max()


def test_bfloat16_network_error_is_bfloat16s(rng):
    x, w = _data(rng)
    # weights exact in bfloat16: all of the error comes from the interpreter's rounding of x and y
    w = torch.from_numpy(w).to(torch.bfloat16).float().numpy()
    net = trtdsl.Network("bf16", dtype="bfloat16")
    xi = net.input("x", "float32", x.shape)
    net.output(ops.relu(ops.matmul(xi, net.constant(w, "w"))), "y")  # x cast, w stored, out rounded in bfloat16
    err = np.abs(reference.run(net, {"x": x})["y"] - _exact(x, w))
    u = 2.0**-8  # bfloat16's unit roundoff (8 significant bits, half-ulp 2**-8 relative)
    mag = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64)
    # x and w each rounded once (2u), the bf16 product/accumulation rounded per step at most K*u
    # would be loose; TensorRT accumulates in float32, so: 2u on the inputs + u on the output.
    assert (err <= (3 * u + 1e-6) * mag + 1e-6).all()
    assert err.max() > 50 * _f32_error(x, w)


def test_fp8_qdq_network_error_is_fp8s(rng):
    x, w = _data(rng)
    sx, sw = np.abs(x).max() / 448, np.abs(w).max(axis=0) / 448
    net = trtdsl.Network("fp8")
    xi = net.input("x", "float32", x.shape)
    xq = ops.fake_quantize(xi, sx, dtype="fp8")
    wq = ops.fake_quantize(net.constant(w, "w"), sw, axis=1, dtype="fp8")
    net.output(ops.relu(ops.matmul(xq, wq)), "y")
    err = np.abs(reference.run(net, {"x": x})["y"] - _exact(x, w))
    u = 2.0**-4  # e4m3: 4 significant bits
    # below 2**-6 (fp8's smallest normal, in the scaled domain) the spacing is 2**-9 absolute
    ax = np.abs(x) * u + 2.0**-10 * sx
    aw = np.abs(w) * u + 2.0**-10 * sw
    bound = ax.astype(np.float64) @ np.abs(w) + np.abs(x).astype(np.float64) @ aw + ax @ aw
    assert (err <= bound * (1 + 1e-5) + 1e-6).all()
    assert err.max() > 1000 * _f32_error(x, w)


def test_fp4_dynamic_quantized_network_error_is_fp4s(rng):
    x, w = _data(rng)
    d = float(np.abs(x).max()) / (6 * 448)  # the usual NVFP4 global scale: amax / (6 * 448)
    net = trtdsl.Network("fp4")
    xi = net.input("x", "float32", x.shape)
    q, s = ops.dynamic_quantize(xi, dtype="fp4", double_scale=d)
    xq = ops.dynamic_dequantize(q, s, double_scale=d, dtype="float32")
    net.output(ops.relu(ops.matmul(xq, net.constant(w, "w"))), "y")
    got = reference.run(net, {"x": x})["y"]
    err = np.abs(got - _exact(x, w))
    # Per block of 16: scale t = fp8(amax/6/d)*d >= amax/6 * (1 - 2**-4); E2M1 values of |x|/t <= 6
    # are off by at most a quarter of their magnitude, or 0.25 absolute below 1.
    blocks = np.abs(x).reshape(8, K // 16, 16).max(-1, keepdims=True)
    t = np.repeat(blocks / 6 * (1 + 2.0**-4), 16, axis=-1).reshape(8, K)
    ax = np.maximum(0.25 * np.abs(x), 0.25 * t)
    assert (err <= ax.astype(np.float64) @ np.abs(w) + 1e-5).all()
    assert err.max() > 1000 * _f32_error(x, w)
