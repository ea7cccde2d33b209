"""Quantize / dequantize / fake_quantize: ops and interpreter against the math and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trtdsl
from trtdsl import ShapeError, WeightError, dtypes, ops, reference

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
    with pytest.raises(
        ShapeError, match=r"quantize 'x': dtype must be one of \('int8', 'fp8', 'int4', 'fp4'\), got 'int32'"
    ):
        ops.quantize(x, 0.1, dtype="int32")
    with pytest.raises(
        ShapeError, match=r"dequantize 'x': input must be one of \('int8', 'fp8', 'int4', 'fp4'\), got float32"
    ):
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
    with pytest.raises(
        WeightError,
        match=r"quantize layer 1 'q': zero point must be 0: TensorRT supports symmetric quantization only.*non-zero zero point",
    ):
        reference.run(net, {"x": np.ones(4, np.float32)})


# ------------------------------------------------------------ int4, fp4, fp8
_E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])  # the OCP MX spec's E2M1 magnitudes, code = index


def _fp4_oracle(v: np.ndarray) -> np.ndarray:
    """Nearest E2M1 value by table lookup, ties to the even code, saturating at 6 (no bit arithmetic)."""
    a = np.minimum(np.abs(v.astype(np.float64)), 6.0)
    d = np.abs(a[..., None] - _E2M1)
    best = d.min(axis=-1, keepdims=True)
    cand = np.where(np.isclose(d, best, rtol=0, atol=0), np.arange(8), 99)
    even = np.where(cand % 2 == 0, cand, 99).min(axis=-1)
    code = np.where(even < 99, even, cand.min(axis=-1))
    return np.copysign(_E2M1[code], v)


@pytest.mark.parametrize(("dtype", "scale"), [("int4", 0.25), ("fp4", 0.5), ("fp8", 0.03125), ("int8", 0.0625)])
def test_quantize_narrow_types_match_the_documented_formulas(dtype, scale, rng):
    """TensorRT's quantized-types guide: roundWithTiesToEven(clip(x/s, lo, hi)) for ints, cast(clip(x/s)) for floats."""
    torch = pytest.importorskip("torch")
    net = trtdsl.Network("q")
    x = net.input("x", "float32", (64,))
    q = ops.quantize(x, scale, dtype=dtype)
    assert q.dtype == dtype
    net.output(ops.dequantize(q, scale, dtype="float32"), "y")
    xv = (rng.standard_normal(64) * 40 * scale).astype(np.float32)
    xv[:6] = np.array([0.25, 0.75, 2.5, 5.0, 1e4, -1e4], np.float32) * scale  # ties and saturation
    v = xv / np.float32(scale)
    if dtype in ("int4", "int8"):
        lo, hi = (-8, 7) if dtype == "int4" else (-128, 127)
        want = np.clip(np.rint(v), lo, hi)
    elif dtype == "fp4":
        want = _fp4_oracle(v)
    else:  # fp8: torch's float8_e4m3fn cast after clipping to +-448 (torch does not saturate either)
        want = torch.from_numpy(np.clip(v, -448, 448)).to(torch.float8_e4m3fn).float().numpy()
    got = reference.run(net, {"x": xv})["y"]
    np.testing.assert_array_equal(got, (want * scale).astype(np.float32))
    lo, hi = {"int4": (-8, 7), "fp4": (-6, 6), "fp8": (-448, 448), "int8": (-128, 127)}[dtype]  # documented
    assert got.max() == hi * scale and got.min() == lo * scale  # saturation was exercised
    assert trtdsl.build(net) is not None


def test_fp4_quantized_output_comes_back_as_ml_dtypes(rng):
    import ml_dtypes

    net = trtdsl.Network("q4")
    x = net.input("x", "float32", (8,))
    net.output(ops.quantize(x, 1.0, dtype="fp4"), "q", dtype="fp4")
    out = reference.run(net, {"x": np.array([0.25, 0.75, 1.25, 2.5, 3.5, 5.0, 7.0, -0.3], np.float32)})["q"]
    assert out.dtype == ml_dtypes.float4_e2m1fn
    np.testing.assert_array_equal(out.astype(np.float32), [0.0, 1.0, 1.0, 2.0, 4.0, 4.0, 6.0, -0.5])


# ------------------------------------------------------- block-wise (INT4 weights)
@pytest.mark.parametrize(("block", "k"), [((64, 1), 128), ((128, 1), 128), ((1, 32), 64)])
def test_int4_block_weight_only_matmul_matches_numpy(block, k, rng):
    n = 32
    w = rng.standard_normal((k, n)).astype(np.float32)
    grid = (k // block[0], n // block[1])
    amax = np.abs(w.reshape(grid[0], block[0], grid[1], block[1])).max(axis=(1, 3))
    scale = (amax / 7).astype(np.float32)
    s_full = np.repeat(np.repeat(scale, block[0], 0), block[1], 1)
    q = np.clip(np.rint(w / s_full), -8, 7)  # the documented INT4 formula
    net = trtdsl.Network("w4")
    x = net.input("x", "float32", (3, k))
    wq = net.constant(q.astype(np.int8), "w", dtype="int4")
    wd = ops.dequantize(wq, scale, block_shape=block, dtype="float32")
    net.output(ops.matmul(x, wd), "y")
    xv = rng.standard_normal((3, k)).astype(np.float32)
    got = reference.run(net, {"x": xv})["y"]
    want = xv.astype(np.float64) @ (q * s_full).astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    # and a block Q of the float weights gives the same integers
    net2 = trtdsl.Network("q4")
    wi = net2.input("w", "float32", (k, n))
    net2.output(ops.dequantize(ops.quantize(wi, scale, block_shape=block, dtype="int4"), scale,
                               block_shape=block, dtype="float32"), "y")  # fmt: skip
    np.testing.assert_array_equal(reference.run(net2, {"w": w})["y"], (q * s_full).astype(np.float32))


def test_block_dequantize_builds_or_says_why(trt):
    from trtdsl.errors import BuildError

    net = trtdsl.Network("w4b")
    x = net.input("x", "float32", (2, 128))
    w = net.constant(np.zeros((128, 16), np.int8), "w", dtype="int4")
    net.output(x @ ops.dequantize(w, np.full((1, 16), 0.1, np.float32), block_shape=(128, 1), dtype="float32"), "y")
    try:
        trtdsl.build(net)
    except BuildError as e:
        if "Blockwise dequantization requires input type to be int8 or fp8e4m3 or fp4e2m1" not in str(e):
            raise
        pytest.skip("TensorRT-RTX's CPU build has no blockwise INT4 dequantize kernel (int8/fp8/fp4 only)")


def test_block_shape_errors():
    net = trtdsl.Network("e")
    x = net.input("x", "float32", (4, 64))
    with pytest.raises(ShapeError, match=r"block_shape \(1, 48\) does not divide input shape \(4, 64\)"):
        ops.quantize(x, np.ones((4, 1)), block_shape=(1, 48), dtype="int4")
    with pytest.raises(
        ShapeError, match=r"block scale for input \(4, 64\) with block shape \(1, 32\) needs shape \(4, 2\)"
    ):
        ops.quantize(x, np.ones((4, 1)), block_shape=(1, 32), dtype="int4")


# ------------------------------------------------------- dynamic quantization
def _nvfp4_oracle(x: np.ndarray, axis: int, d: float) -> tuple[np.ndarray, np.ndarray]:
    """NVFP4 restated from the TensorRT/ModelOpt formulas: s = fp8(amax/6/d); q = fp4(x / (s*d))."""
    torch = pytest.importorskip("torch")
    xb = np.moveaxis(x.astype(np.float32), axis, -1)
    xb = xb.reshape(*xb.shape[:-1], -1, 16)
    amax = np.abs(xb).max(-1, keepdims=True)
    s = torch.from_numpy(np.minimum(amax / np.float32(6) / np.float32(d), 448)).to(torch.float8_e4m3fn).float().numpy()
    q = _fp4_oracle(np.where(s > 0, xb / (s * np.float32(d)), 0))
    lead = xb.shape[:-2]
    return (np.moveaxis(q.reshape(*lead, -1), -1, axis), np.moveaxis(s.reshape(*lead, -1), -1, axis))


def _mxfp8_oracle(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """MXFP8: s = 2**ceil(log2(amax/448)) (e8m0, rounded up); q = fp8(clip(x/s, +-448))."""
    torch = pytest.importorskip("torch")
    xb = np.moveaxis(x.astype(np.float32), axis, -1)
    xb = xb.reshape(*xb.shape[:-1], -1, 32)
    amax = np.abs(xb).max(-1, keepdims=True).astype(np.float64)
    s = np.exp2(np.ceil(np.log2(amax / 448))).astype(np.float32)
    q = torch.from_numpy(np.clip(xb / s, -448, 448)).to(torch.float8_e4m3fn).float().numpy()
    lead = xb.shape[:-2]
    return (np.moveaxis(q.reshape(*lead, -1), -1, axis), np.moveaxis(s.reshape(*lead, -1), -1, axis))


@pytest.mark.parametrize("shape_axis", [((4, 64), -1), ((64, 6), 0), ((2, 3, 32), -1), ((2, 32, 5), 1)])
@pytest.mark.parametrize("dtype", ["fp4", "fp8"])
def test_dynamic_quantize_matches_the_formulas(dtype, shape_axis, rng):
    import ml_dtypes

    shape, axis = shape_axis
    x = (rng.standard_normal(shape) * rng.uniform(0.01, 100, shape)).astype(np.float32)
    d = 0.02 if dtype == "fp4" else 1.0
    net = trtdsl.Network("dq")
    xi = net.input("x", "float32", shape)
    q, s = ops.dynamic_quantize(xi, dtype=dtype, axis=axis, double_scale=d)
    assert q.dtype == dtype and s.dtype == ("fp8" if dtype == "fp4" else "e8m0")
    blocked = list(shape)
    blocked[axis] //= 16 if dtype == "fp4" else 32
    assert q.shape == shape and s.shape == tuple(blocked)
    net.output(ops.dynamic_dequantize(q, s, axis=axis, double_scale=d, dtype="float32"), "y")
    net.output(q, "q", dtype=dtype)
    net.output(s, "s", dtype=s.dtype)
    out = reference.run(net, {"x": x})
    wq, ws = _nvfp4_oracle(x, axis, d) if dtype == "fp4" else _mxfp8_oracle(x, axis)
    assert out["q"].dtype == dtypes.holder(dtype) and out["s"].dtype == np.dtype(
        ml_dtypes.float8_e4m3fn if dtype == "fp4" else ml_dtypes.float8_e8m0fnu
    )
    np.testing.assert_array_equal(out["s"].astype(np.float32), ws)
    np.testing.assert_array_equal(out["q"].astype(np.float32), wq)
    full = np.repeat(ws, 16 if dtype == "fp4" else 32, axis=axis) * np.float32(d)
    np.testing.assert_allclose(out["y"], wq * full, rtol=1e-6)


@pytest.mark.parametrize("dtype", ["fp4", "fp8"])
def test_dynamic_quantize_builds_on_the_cpu(dtype, trt):
    net = trtdsl.Network("dqb")
    x = net.input("x", "float16", (4, 64))
    d = 0.01 if dtype == "fp4" else 1.0
    q, s = ops.dynamic_quantize(x, dtype=dtype, double_scale=d)
    net.output(ops.dynamic_dequantize(q, s, double_scale=d, dtype="float16"), "y")
    assert trtdsl.build(net) is not None


def test_dynamic_quantize_errors():
    net = trtdsl.Network("e")
    x = net.input("x", "float32", (4, 40))
    with pytest.raises(ShapeError, match=r"axis 1 of \(4, 40\) must be a build-time multiple of 16 \(NVFP4 blocks\)"):
        ops.dynamic_quantize(x, dtype="fp4")
    with pytest.raises(ShapeError, match=r"dtype must be 'fp4' \(NVFP4\) or 'fp8' \(MXFP8\), got 'int8'"):
        ops.dynamic_quantize(x, dtype="int8")
    x4 = net.input("x4", "float32", (2, 2, 2, 32))
    with pytest.raises(ShapeError, match=r"input must be 2-D or 3-D"):
        ops.dynamic_quantize(x4, dtype="fp8")
    x3 = net.input("x3", "float32", (32, 2, 2))
    with pytest.raises(ShapeError, match=r"axis must be the last or second-to-last of \(32, 2, 2\), got 0"):
        ops.dynamic_quantize(x3, dtype="fp8", axis=0)
    y = net.input("y", "float32", (4, 64))
    with pytest.raises(ShapeError, match=r"MXFP8 \(e8m0 scales\) takes no double_scale"):
        ops.dynamic_quantize(y, dtype="fp8", double_scale=0.5)
