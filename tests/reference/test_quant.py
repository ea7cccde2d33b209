"""Quantize / dequantize / fake_quantize: ops and interpreter against the math and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trtdsl
from trtdsl import ShapeError, WeightError, ops, reference

pytestmark = pytest.mark.usefixtures("trt")


def _np_quantize(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """TensorRT developer guide, "Explicit Quantization", written out: clamp(round_half_even(x / scale), -128, 127), divided in float32."""
    return np.clip(np.rint(x.astype(np.float32) / np.asarray(scale, np.float32)), -128, 127).astype(np.int8)


@pytest.mark.parametrize("shape", [(7,), (2, 3, 5), (2, 4, 3, 3)])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_quantize_per_tensor_matches_math(shape, dtype, rng):
    net = trtdsl.Network("q", dtype=dtype)
    x = net.input("x", dtype, shape)
    q = ops.quantize(x, 0.05)
    assert q.dtype == "int8" and q.shape == shape
    net.output(q, "q")
    xv = (rng.standard_normal(shape) * 4).astype(dtype)
    xv.flat[:2] = [100, -100]  # beyond +-127 * 0.05
    got = reference.run(net, {"x": xv})["q"]
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, _np_quantize(xv.astype(np.float32), np.float32(0.05)))
    assert got.min() == -128 and got.max() == 127  # the clamp was exercised


def test_quantize_rounds_half_to_even_and_clamps():
    net = trtdsl.Network("q")
    x = net.input("x", "float32", (10,))
    net.output(ops.quantize(x, 0.25), "q")  # a power of two keeps x / scale exact
    xv = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.125, 0.375, 100.0, -100.0], np.float32) * 0.25
    got = reference.run(net, {"x": xv})["q"]
    np.testing.assert_array_equal(got, [0, 2, 2, 0, -2, -2, 0, 0, 100, -100])
    big = reference.run(net, {"x": np.array([40, -40, 31.75, -32, 32, 1e9, -1e9, 0, 0, 0], np.float32)})["q"]
    np.testing.assert_array_equal(big, [127, -128, 127, -128, 127, 127, -128, 0, 0, 0])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_per_channel_matches_math(axis, rng):
    shape = (4, 3, 5)
    net = trtdsl.Network("qc")
    x = net.input("x", "float32", shape)
    scale = rng.uniform(0.01, 0.1, shape[axis]).astype(np.float32)
    q = ops.quantize(x, scale, axis=axis)
    assert q.layer.axis == axis % 3
    net.output(q, "q")
    xv = (rng.standard_normal(shape) * 3).astype(np.float32)
    got = reference.run(net, {"x": xv})["q"]
    bshape = [1, 1, 1]
    bshape[axis] = -1
    np.testing.assert_array_equal(got, _np_quantize(xv, scale.reshape(bshape)))


@pytest.mark.parametrize("out_dtype", ["float32", "float16"])
def test_dequantize_is_q_times_scale(out_dtype, rng):
    net = trtdsl.Network("dq")
    q = net.input("q", "int8", (3, 4))
    scale = np.array([0.5, 0.125, 3.0], np.float32)
    y = ops.dequantize(q, scale, axis=0, dtype=out_dtype)
    assert y.dtype == out_dtype
    net.output(y, "y")
    qv = rng.integers(-128, 128, (3, 4)).astype(np.int8)
    got = reference.run(net, {"q": qv})["y"]
    np.testing.assert_array_equal(got, (qv * scale[:, None]).astype(out_dtype).astype(np.float32))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_fake_quantize_per_tensor_matches_torch(dtype, rng):
    shape = (2, 3, 8, 8)
    amax = 2.5
    net = trtdsl.Network("fq", dtype=dtype)
    x = net.input("x", dtype, shape)
    y = ops.fake_quantize(x, amax=amax)
    assert y.dtype == dtype and y.shape == shape
    assert [layer.type.name for layer in net.layers()] == ["CONSTANT", "QUANTIZE", "DEQUANTIZE"]
    net.output(y, "y")
    xv = (rng.standard_normal(shape) * 1.5).astype(dtype)
    got = reference.run(net, {"x": xv})["y"]
    want = torch.fake_quantize_per_tensor_affine(torch.from_numpy(xv.astype(np.float32)), amax / 127, 0, -128, 127)
    want = want.numpy().astype(dtype).astype(np.float32)  # the DQ output is stored in the network dtype
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)


@pytest.mark.parametrize("axis", [0, 1])
def test_fake_quantize_per_channel_matches_torch(axis, rng):
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    amax = np.abs(w).max(axis=tuple(a for a in range(4) if a != axis))
    net = trtdsl.Network("fqc")
    x = net.input("w", "float32", w.shape)
    net.output(ops.fake_quantize(x, amax=amax, axis=axis, name="wq"), "y")
    names = [layer.name for layer in net.layers()]
    assert names == ["wq.scale", "wq.q", "wq.dq"]
    got = reference.run(net, {"w": w})["y"]
    scale = torch.from_numpy((amax / 127).astype(np.float32))
    want = torch.fake_quantize_per_channel_affine(
        torch.from_numpy(w), scale, torch.zeros(len(amax), dtype=torch.int32), axis, -128, 127
    )
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-7)


def test_quantize_fp8_matches_torch_float8(rng):
    net = trtdsl.Network("fp8")
    x = net.input("x", "float32", (4096,))
    q = ops.quantize(x, 0.5, dtype="fp8")
    assert q.dtype == "fp8"
    net.output(ops.dequantize(q, 0.5, dtype="float32"), "y")
    xv = (rng.standard_normal(4096) * 60).astype(np.float32)
    xv[:4] = [1e6, -1e6, 0.0, 2**-11]  # saturation at +-448 * scale; below half the smallest subnormal
    got = reference.run(net, {"x": xv})["y"]
    want = (torch.from_numpy(xv / np.float32(0.5)).to(torch.float8_e4m3fn).float() * 0.5).numpy()
    np.testing.assert_array_equal(got, want)


def test_qdq_conv_matches_torch_and_builds(trt, rng):
    x_np = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w_np = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    b_np = rng.standard_normal(4).astype(np.float32) * 0.1
    x_amax, w_amax = 3.0, np.abs(w_np).max(axis=(1, 2, 3))
    net = trtdsl.Network("qconv")
    x = net.input("x", "float32", x_np.shape)
    xq = ops.fake_quantize(x, amax=x_amax, name="x_fq")
    wq = ops.fake_quantize(net.constant(w_np, "w"), amax=w_amax, axis=0, name="w_fq")
    y = ops.conv2d(xq, wq, b_np, padding=1, name="conv")
    assert y.shape == (1, 4, 8, 8)
    net.output(y, "y")
    got = reference.run(net, {"x": x_np})["y"]
    tx = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x_np), x_amax / 127, 0, -128, 127)
    tw = torch.fake_quantize_per_channel_affine(
        torch.from_numpy(w_np), torch.from_numpy((w_amax / 127).astype(np.float32)), torch.zeros(4, dtype=torch.int32),
        0, -128, 127,
    )  # fmt: skip
    want = torch.nn.functional.conv2d(tx.double(), tw.double(), torch.from_numpy(b_np).double(), padding=1)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
    engine = net.builder.build_serialized_network(net.trt, net.builder.create_builder_config())
    assert engine is not None and engine.nbytes > 0


# ---------------------------------------------------------------------- errors
def test_quantize_errors():
    net = trtdsl.Network("err")
    x = net.input("x", "float32", (4, 3))
    with pytest.raises(WeightError, match=r"quantize 'quantize': scales must be positive and finite, got \[0.0\]"):
        ops.quantize(x, 0.0)
    with pytest.raises(ShapeError, match=r"per-tensor quantization needs a scalar scale, got shape \(3,\); pass axis="):
        ops.quantize(x, [0.1, 0.2, 0.3])
    with pytest.raises(
        ShapeError, match=r"per-channel scale along axis 1 needs shape \(3,\) for input \(4, 3\), got \(4,\)"
    ):
        ops.quantize(x, np.full(4, 0.1), axis=1)
    with pytest.raises(ShapeError, match=r"quantize 'x': dtype must be one of \('int8', 'fp8'\), got 'int32'"):
        ops.quantize(x, 0.1, dtype="int32")
    with pytest.raises(ShapeError, match=r"dequantize 'x': input must be one of \('int8', 'fp8'\), got float32"):
        ops.dequantize(x, 0.1)
    with pytest.raises(ShapeError, match=r"fake_quantize 'x': give exactly one of scale= or amax="):
        ops.fake_quantize(x, 0.1, amax=1.0)


def test_reference_rejects_nonzero_zero_point(trt):
    net = trtdsl.Network("zp")
    x = net.input("x", "float32", (4,))
    scale = net.constant(np.float32(0.1), "s", dtype="float32")
    layer = net.trt.add_quantize(x.trt, scale.trt, trt.int8)
    layer.set_input(2, net.constant(np.array(3, np.int8), "zp", dtype="int8").trt)
    net.output(net.register(layer, "quantize", "q"), "q")
    with pytest.raises(WeightError, match=r"quantize layer 1 'q': zero point must be 0 \(TensorRT supports symmetric"):
        reference.run(net, {"x": np.ones(4, np.float32)})
