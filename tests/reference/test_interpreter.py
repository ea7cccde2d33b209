"""The interpreter core: precision simulation, capture, feeds, failures, memory, raw networks."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

import trtdsl
from trtdsl import InterpreterError, ShapeError, TrtdslError, UnsupportedLayerError, ops, reference
from trtdsl.reference import precision
from trtdsl.reference.registry import REGISTRY

pytestmark = pytest.mark.usefixtures("trt")


# ------------------------------------------------------------------ precision
def _special_float32(rng: np.random.Generator) -> np.ndarray:
    """Random values over the whole float32 range plus exact bfloat16 ties, inf, nan, extremes."""
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    ties = (bits & np.uint32(0xFFFF0000)) | np.uint32(0x8000)  # exactly halfway between two bfloat16
    near = (bits & np.uint32(0xFFFF0000)) | rng.choice(np.array([0x7FFF, 0x8001, 0x0001, 0xFFFF], np.uint32), bits.size)
    edge = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 3.4028235e38, -3.4028235e38, 1e-45, 1.1754944e-38], np.float32)
    return np.concatenate([bits.view(np.float32), ties.view(np.float32), near.view(np.float32), edge])


def test_round_bfloat16_is_bit_exact_with_torch(rng):
    x = _special_float32(rng)
    got = precision.round_bfloat16(x)
    want = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def test_round_fp8_is_bit_exact_with_torch(rng):
    x = np.concatenate([rng.standard_normal(50_000).astype(np.float32) * s for s in (1e-3, 0.1, 1.0, 30.0, 400.0)])
    x = np.concatenate([x, np.array([0, -0.0, 2**-10, 3 * 2**-10, 448, 464, 1e4, -np.inf, np.nan], np.float32)])
    got = precision.round_fp8(x)
    want = torch.from_numpy(x).to(torch.float8_e4m3fn).float().numpy()
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def _poly_net(dtype: str) -> trtdsl.Network:
    """y = sqrt(|x * a + b|) / (x - c): every op rounds to the compute dtype."""
    net = trtdsl.Network("poly", dtype=dtype)
    x = net.input("x", "float32", (1000,))
    y = ops.sqrt(ops.abs(x * 1.7 + 0.3)) / (x - 2.9)
    net.output(y, "y")
    return net


def _torch_poly(x: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    t = torch.from_numpy(x).to(dtype)

    def c(v):
        return torch.tensor(v, dtype=torch.float32).to(dtype)  # constants are stored in the compute dtype

    return (torch.sqrt(torch.abs(t * c(1.7) + c(0.3))) / (t - c(2.9))).float().numpy()


@pytest.mark.parametrize(("dtype", "tdtype"), [("float16", torch.float16), ("bfloat16", torch.bfloat16)])
def test_reduced_precision_network_matches_torch_rounding(dtype, tdtype, rng):
    xv = (rng.standard_normal(1000) * 3).astype(np.float32)
    got = reference.run(_poly_net(dtype), {"x": xv})["y"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, _torch_poly(xv, tdtype))


def test_fp16_network_differs_from_fp32_by_about_fp16_error(rng):
    xv = (rng.standard_normal(1000) * 3).astype(np.float32)
    y32 = reference.run(_poly_net("float32"), {"x": xv})["y"]
    y16 = reference.run(_poly_net("float16"), {"x": xv})["y"]
    rel = np.abs(y16 - y32) / np.maximum(np.abs(y32), 1e-3)
    eps16 = 2.0**-11  # unit roundoff of float16
    assert np.median(rel) > eps16 / 8  # rounding really happened
    assert np.median(rel) < 4 * eps16  # a few roundings' worth, not worse
    assert np.all(y16 == y16.astype(np.float16))  # every value is an fp16 value


def test_int8_and_bf16_tensors_are_stored_rounded(rng):
    net = trtdsl.Network("casts")
    x = net.input("x", "float32", (64,))
    net.output(net.cast(x, "bfloat16") * 1.0, "bf", dtype="float32")
    net.output(net.cast(x, "float16"), "h", dtype="float32")
    xv = rng.standard_normal(64).astype(np.float32)
    out = reference.run(net, {"x": xv}, capture="all")
    np.testing.assert_array_equal(out["x.to_bfloat16.out"], torch.from_numpy(xv).bfloat16().float().numpy())
    assert out["x.to_float16.out"].dtype == np.float16
    np.testing.assert_array_equal(out["h"], xv.astype(np.float16).astype(np.float32))


# -------------------------------------------------------------------- capture
def _small_net() -> trtdsl.Network:
    net = trtdsl.Network("small")
    x = net.input("x", "float32", (2, 3))
    y = net.input("y", "float32", (2, 3))
    with net.scope("block"):
        s = ops.add(x, y, name="sum")
        e = ops.exp(s, name="exp")
    net.output(e * 2.0, "out")
    return net


def test_capture_by_name_list_and_all(rng):
    net = _small_net()
    feeds = {"x": rng.standard_normal((2, 3)).astype(np.float32), "y": rng.standard_normal((2, 3)).astype(np.float32)}
    s = feeds["x"] + feeds["y"]
    one = reference.run(net, feeds, capture="block.sum.out")
    assert set(one) == {"out", "block.sum.out"}
    np.testing.assert_allclose(one["block.sum.out"], s, rtol=1e-6)
    two = reference.run(net, feeds, capture=["block.sum.out", "block.exp.out"])
    np.testing.assert_allclose(two["block.exp.out"], np.exp(s), rtol=1e-6)
    every = reference.run(net, feeds, capture="all")
    assert {"x", "y", "block.sum.out", "block.exp.out", "out"} <= set(every)
    np.testing.assert_allclose(every["out"], 2 * np.exp(s), rtol=1e-6)


def test_capture_unknown_name_suggests():
    net = _small_net()
    feeds = {"x": np.ones((2, 3), np.float32), "y": np.ones((2, 3), np.float32)}
    with pytest.raises(
        TrtdslError, match=r"cannot capture unknown tensor 'block.exp' .* Did you mean 'block.exp.out'\?"
    ):
        reference.run(net, feeds, capture="block.exp")


# ---------------------------------------------------------------------- feeds
@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        (
            {"x": np.ones((2, 3), np.float32)},
            r"missing feed for input\(s\) \['y'\]; the network's inputs are \['x', 'y'\]",
        ),
        (
            {"x": np.ones((2, 3), np.float32), "y": np.ones((2, 3), np.float32), "yy": 1},
            r"feed 'yy' is not an input of the network; inputs are \['x', 'y'\]. Did you mean 'y'\?",
        ),
        (
            {"x": np.ones((2, 3, 1), np.float32), "y": np.ones((2, 3), np.float32)},
            r"feed 'x': expected shape \(2, 3\) \(-1 = any\), got \(2, 3, 1\) \(rank 3, expected rank 2\)",
        ),
        (
            {"x": np.ones((3, 2), np.float32), "y": np.ones((2, 3), np.float32)},
            r"feed 'x': expected shape \(2, 3\) \(-1 = any\), got \(3, 2\)$",
        ),
        (
            {"x": np.ones((2, 3), np.int64), "y": np.ones((2, 3), np.float32)},
            r"feed 'x': input has dtype float32, got an array of dtype int64 \(integer values, expected float\)",
        ),
    ],
    ids=["missing", "extra", "rank", "shape", "dtype"],
)
def test_feed_validation(feeds, message):
    with pytest.raises(ShapeError, match=message):
        reference.run(_small_net(), feeds)


def test_float_feed_for_int_input_is_rejected():
    net = trtdsl.Network("ints")
    i = net.input("i", "int32", (3,))
    net.output(i + np.array(1, np.int32), "j")
    with pytest.raises(ShapeError, match=r"feed 'i': input has dtype int32, got an array of dtype float64"):
        reference.run(net, {"i": np.ones(3)})
    np.testing.assert_array_equal(reference.run(net, {"i": np.arange(3, dtype=np.int64)})["j"], [1, 2, 3])


# ------------------------------------------------------------------- failures
def test_unsupported_layer_names_index_name_type_and_supported(trt):
    net = trtdsl.Network("unsupported")
    x = net.input("x", "float32", (1, 1, 4, 4))
    candidates = {
        "grid_sample": lambda: net.trt.add_grid_sample(x.trt, net.constant(np.zeros((1, 4, 4, 2), np.float32)).trt),
        # IRaggedSoftMaxLayer takes a 3-D input and (N, C, 1) int32 bounds.
        "ragged_softmax": lambda: net.trt.add_ragged_softmax(
            net.input("x3", "float32", (1, 4, 4)).trt, net.constant(np.ones((1, 4, 1), np.int32), dtype="int32").trt
        ),
    }
    kind = next((k for k in candidates if k not in reference.supported()), None)
    if kind is None:
        pytest.skip("every candidate layer type has a reference implementation now")
    layer = candidates[kind]()
    net.output(net.register(layer, kind, "odd"), "y")
    with pytest.raises(UnsupportedLayerError) as info:
        feeds = {"x": np.zeros((1, 1, 4, 4), np.float32)}
        if "x3" in net.input_specs:
            feeds["x3"] = np.zeros((1, 4, 4), np.float32)
        reference.run(net, feeds)
    message = str(info.value)
    assert f"no reference implementation for LayerType.{kind.upper()} (layer 1 'odd'). Implemented: " in message
    assert "convolution" in message and "loop" in message and "quantize" in message


def test_shape_mismatch_names_the_layer(monkeypatch):
    def wrong(node, a, b):
        return np.zeros((7,), np.float32)

    monkeypatch.setitem(REGISTRY, "elementwise", wrong)
    with pytest.raises(
        InterpreterError,
        match=r"layer 0 'block.sum' \(elementwise\): computed output 'block.sum.out' has shape \(7,\), "
        r"TensorRT reports \(2, 3\)",
    ):
        reference.run(_small_net(), {"x": np.ones((2, 3), np.float32), "y": np.ones((2, 3), np.float32)})


def test_layer_exception_is_wrapped_with_layer_and_input_shapes(monkeypatch):
    def broken(node, x):
        raise ValueError("boom")

    monkeypatch.setitem(REGISTRY, "unary", broken)
    with pytest.raises(
        InterpreterError, match=r"layer 1 'block.exp' \(unary\) failed: ValueError: boom; input shapes \[\(2, 3\)\]"
    ):
        reference.run(_small_net(), {"x": np.ones((2, 3), np.float32), "y": np.ones((2, 3), np.float32)})


# ------------------------------------------------------------ raw networks
def test_runs_a_raw_network_definition(trt, rng):
    builder = trt.Builder(trtdsl._trt.logger())
    n = builder.create_network(0)
    a = n.add_input("a", trt.float32, (3, 4))
    w = np.arange(4, dtype=np.float32)
    c = n.add_constant((1, 4), trt.Weights(w))
    s = n.add_elementwise(a, c.get_output(0), trt.ElementWiseOperation.SUM)
    u = n.add_unary(s.get_output(0), trt.UnaryOperation.EXP)
    n.mark_output(u.get_output(0))
    av = rng.standard_normal((3, 4)).astype(np.float32)
    got = reference.run(n, {"a": av})
    assert list(got) == [u.get_output(0).name]
    np.testing.assert_allclose(next(iter(got.values())), np.exp(av + w), rtol=1e-6)


def test_layer_wired_to_a_later_layer_runs_in_dependency_order(trt):
    net = trtdsl.Network("later")
    x = net.input("x", "float32", (3,))
    e = net.trt.add_elementwise(x.trt, x.trt, trt.ElementWiseOperation.SUM)
    c = net.constant(np.array([1, 2, 3], np.float32), "c")
    e.set_input(1, c.trt)  # the consumer (layer 0) now reads layer 1
    net.output(net.register(e, "add", "add"), "y")
    np.testing.assert_array_equal(reference.run(net, {"x": np.ones(3, np.float32)})["y"], [2, 3, 4])


# --------------------------------------------------------------------- memory
def test_intermediates_are_freed_after_last_use():
    net = trtdsl.Network("chain")
    x = net.input("x", "float32", (1024, 1024))  # 4 MiB per tensor
    h = x
    for i in range(16):
        h = ops.add(h, h, name=f"add{i}")
    net.output(h, "y")
    interp = reference.prepare(net)
    xv = np.full((1024, 1024), 2.0**-20, np.float32)
    interp.run({"x": xv})  # warm caches outside the measurement
    tracemalloc.start()
    try:
        out = interp.run({"x": xv})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(out["y"], xv * 2.0**16)
    assert peak < 5 * 4 * 2**20, f"peak {peak / 2**20:.1f} MiB: intermediates were kept alive"
    # A captured intermediate is kept, not freed.
    early = interp.run({"x": xv}, capture="add0.out")
    np.testing.assert_array_equal(early["add0.out"], xv * 2)
