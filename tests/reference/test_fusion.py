"""Fast-mode fusions and kernels against the plain path and against float64 torch.

Each case builds a network whose fast run fuses (checked on the plan, so a test
cannot pass by not fusing), then compares the fused result with the plain
path's (``fast=False``, no fusion) and with torch in float64. Every case runs with
the compiled kernels (numba) and with the NumPy ones (the ``kernels`` fixture).
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ops
from trtdsl.reference import run
from trtdsl.reference.fusion import Epilogue
from trtdsl.reference.interpreter import Interpreter

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.usefixtures("trt", "kernels")


def _t(a: np.ndarray):
    return torch.from_numpy(np.asarray(a, np.float64))


# name -> (trtdsl op on a Tensor, torch function on float64)
ACTS = {
    "relu": (ops.relu, F.relu),
    "relu6": (ops.relu6, F.relu6),
    "clip": (lambda t: ops.clip(t, -0.5, 1.5), lambda t: torch.clamp(t, -0.5, 1.5)),
    "sigmoid": (ops.sigmoid, torch.sigmoid),
    "hard_sigmoid": (ops.hard_sigmoid, F.hardsigmoid),
    "silu": (ops.silu, F.silu),
    "hard_swish": (ops.hard_swish, F.hardswish),
    "tanh": (ops.tanh, torch.tanh),
    "leaky_relu": (lambda t: ops.leaky_relu(t, 0.1), lambda t: F.leaky_relu(t, 0.1)),
    "gelu": (ops.gelu, F.gelu),
    "gelu_tanh": (lambda t: ops.gelu(t, approximate="tanh"), lambda t: F.gelu(t, approximate="tanh")),
}


def _fused_heads(net) -> list[Epilogue]:
    return [v for v in Interpreter(net)._fusion.values() if isinstance(v, Epilogue)]


def _check(net, feeds, expected, heads: int):
    assert len(_fused_heads(net)) == heads
    assert Interpreter(net, fast=False)._fusion == {}
    fast = run(net, feeds)["y"]
    plain = run(net, feeds, fast=False)["y"]
    # Fused formulas run in another order (x / (1 + exp(-x))), within float32 rounding.
    np.testing.assert_allclose(fast, plain, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(fast, expected, rtol=1e-5, atol=1e-5)


# name -> (out channels, in channels, kernel, input spatial, groups, stride, padding, batch)
CONVOLUTIONS = {
    "dense": (6, 4, 3, (7, 9), 1, 1, 1, 2),
    # the compiled depthwise kernel applies the activation as it stores (or leaves it to the epilogue)
    "depthwise": (5, 5, 3, (9, 8), 5, 1, 1, 2),
    "depthwise_stride2": (5, 5, 3, (9, 8), 5, 2, 1, 2),
    # few channels per group (RegNet, ResNeXt): the compiled grouped kernel; a channel multiplier
    "grouped": (12, 8, 3, (7, 9), 2, 1, 1, 2),
    "multiplier_stride2": (10, 5, 3, (9, 8), 5, 2, 1, 1),
    # 1x1 on 1x1 images, as in squeeze-excite blocks: a compiled matrix-vector product
    "one_pixel": (24, 40, 1, (1, 1), 1, 1, 0, 3),
}


@pytest.mark.parametrize("conv", list(CONVOLUTIONS))
@pytest.mark.parametrize("act", list(ACTS))
def test_activation_fuses_into_a_convolution(act, conv, rng):
    op, ref = ACTS[act]
    k, c, f, spatial, groups, stride, pad, n = CONVOLUTIONS[conv]
    w = rng.standard_normal((k, c // groups, f, f)).astype(np.float32) / 4
    b = rng.standard_normal(k).astype(np.float32)
    net = trtdsl.Network("conv_act")
    x = net.input("x", "float32", (n, c, *spatial))
    net.output(op(ops.conv2d(x, w, b, stride=stride, padding=pad, groups=groups, name="conv")), "y")
    xv = (3 * rng.standard_normal((n, c, *spatial))).astype(np.float32)
    expected = ref(F.conv2d(_t(xv), _t(w), _t(b), stride=stride, padding=pad, groups=groups)).numpy()
    _check(net, {"x": xv}, expected, heads=1)


@pytest.mark.parametrize("act", ["silu", "hard_swish", "gelu", "relu6"])
def test_activation_fuses_into_elementwise_and_matmul(act, rng):
    op, ref = ACTS[act]
    w = rng.standard_normal((16, 24)).astype(np.float32) / 4
    b = rng.standard_normal(24).astype(np.float32)
    net = trtdsl.Network("linear_act")
    x = net.input("x", "float32", (3, 5, 16))
    h = ops.add(ops.matmul(x, ops.constant(net, w)), ops.constant(net, b.reshape(1, 1, 24)), name="bias")
    net.output(op(h), "y")
    xv = (3 * rng.standard_normal((3, 5, 16))).astype(np.float32)
    _check(net, {"x": xv}, ref(_t(xv) @ _t(w) + _t(b)).numpy(), heads=1)


def test_extreme_inputs_saturate_like_the_plain_path():
    net = trtdsl.Network("extreme")
    x = net.input("x", "float32", (1, 8))
    net.output(ops.silu(ops.add(x, x, name="twice")), "y")
    xv = np.array([[-1e4, -100, -88.8, -1, 0, 1, 100, 1e4]], np.float32)
    _check(net, {"x": xv}, F.silu(2 * _t(xv)).numpy(), heads=1)
    assert np.all(np.isfinite(run(net, {"x": xv})["y"]))


def test_exported_captured_and_observed_tensors_are_never_fused_away(rng):
    w = rng.standard_normal((3, 3, 1, 1)).astype(np.float32)
    net = trtdsl.Network("seen")
    x = net.input("x", "float32", (1, 3, 4, 4))
    pre = ops.conv2d(x, w, name="pre")
    gate = ops.conv2d(x, w, name="gated")
    net.output(ops.add(ops.silu(pre, name="silu"), ops.hard_swish(gate, name="hs"), name="sum"), "y")
    interp = Interpreter(net)
    assert len(_fused_heads(net)) == 2
    xv = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    seen: dict[str, np.ndarray] = {}
    out = interp.run({"x": xv}, observe={pre.name: lambda n, a: seen.setdefault(n, a.copy())}, capture=[gate.name])
    tp = F.conv2d(_t(xv), _t(w)).numpy()
    np.testing.assert_allclose(seen[pre.name], tp, rtol=1e-5, atol=1e-6)  # not its SiLU
    np.testing.assert_allclose(out[gate.name], tp, rtol=1e-5, atol=1e-6)  # not its hard-swish
    np.testing.assert_allclose(out["y"], (F.silu(_t(tp)) + F.hardswish(_t(tp))).numpy(), rtol=1e-5, atol=1e-6)
    # The gate's activation exported: its PROD still runs, so the activation is seen too.
    net2 = trtdsl.Network("gate_out")
    x2 = net2.input("x", "float32", (1, 3, 4, 4))
    h = ops.conv2d(x2, w, name="conv")
    s = ops.sigmoid(h, name="sig")
    net2.output(ops.mul(h, s, name="prod"), "y")
    net2.output(s, "s")
    assert _fused_heads(net2) == []
    res = run(net2, {"x": xv})
    np.testing.assert_allclose(res["s"], torch.sigmoid(_t(tp)).numpy(), rtol=1e-5, atol=1e-6)


# (channels, spatial, kernel, stride, padding, dilation, batch)
DEPTHWISE = [
    (8, (9, 11), (3, 3), 1, 1, 1, 1),
    (8, (9, 11), (3, 3), 2, 1, 1, 2),
    (6, (10, 10), (5, 5), 2, 2, 1, 1),
    (5, (12, 9), (3, 3), 1, 2, 2, 1),
    (4, (11, 13), (3, 5), (2, 3), (1, 2), 1, 3),
    (7, (8, 8), (3, 3), 3, 0, 1, 1),
    (3, (4, 4), (5, 5), 1, 3, 1, 1),  # more padding than input
]


@pytest.mark.parametrize("case", DEPTHWISE, ids=[str(i) for i in range(len(DEPTHWISE))])
def test_depthwise_kernel_matches_plain_path_and_torch(case, rng):
    c, spatial, k, s, p, d, n = case
    w = rng.standard_normal((c, 1, *k)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    net = trtdsl.Network("dw")
    x = net.input("x", "float32", (n, c, *spatial))
    net.output(ops.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=c), "y")
    for _ in range(2):  # the second run reuses the kept phase images with other values
        xv = rng.standard_normal((n, c, *spatial)).astype(np.float32)
        fast, plain = run(net, {"x": xv})["y"], run(net, {"x": xv}, fast=False)["y"]
        ref = F.conv2d(_t(xv), _t(w), _t(b), stride=s, padding=p, dilation=d, groups=c).numpy()
        np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------- matrix multiply
def test_strided_attention_matmuls_match_plain_path_and_torch(rng):
    """Heads split from a (seq, batch, 3 * dim) projection: strided stacks that BLAS cannot read in place."""
    seq, heads, d = 7, 2, 4
    net = trtdsl.Network("attention")
    x = net.input("x", "float32", (seq, 1, 3 * heads * d))
    w = rng.standard_normal((1, 3 * heads * d, 3 * heads * d)).astype(np.float32) / 4
    qkv = ops.matmul(x, ops.constant(net, w), name="qkv")  # (seq, 1, 3hd) times one shared matrix
    q, k, v = (ops.permute(ops.reshape(t, (seq, 1, heads, d)), (1, 2, 0, 3)) for t in ops.chunk(qkv, 3, dim=2))
    scores = ops.matmul(q, ops.permute(k, (0, 1, 3, 2)), name="scores")
    net.output(ops.matmul(scores, v, name="mix"), "y")
    xv = rng.standard_normal((seq, 1, 3 * heads * d)).astype(np.float32)
    tq, tk, tv = (t.reshape(seq, 1, heads, d).permute(1, 2, 0, 3) for t in (_t(xv) @ _t(w)).chunk(3, dim=2))
    expected = ((tq @ tk.transpose(-1, -2)) @ tv).numpy()
    fast, plain = run(net, {"x": xv})["y"], run(net, {"x": xv}, fast=False)["y"]
    np.testing.assert_allclose(fast, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast, plain, rtol=1e-6, atol=1e-6)


def test_gelu_as_the_onnx_parser_builds_it_fuses(rng):
    """x * (1 + erf(x / sqrt 2)) * 0.5 in five layers, constants broadcast through shuffles."""
    net = trtdsl.Network("gelu_chain")
    x = net.input("x", "float32", (2, 5, 12))
    w = rng.standard_normal((12, 12)).astype(np.float32) / 3
    h = ops.add(ops.matmul(x, ops.constant(net, w)), ops.constant(net, np.ones((1, 1, 12), np.float32)), name="h")

    def scalar(v):
        return ops.reshape(ops.constant(net, np.array([v], np.float32)), (1, 1, 1))

    e = ops.erf(ops.div(h, scalar(np.sqrt(2.0)), name="div"), name="erf")
    y = ops.mul(ops.mul(h, ops.add(e, scalar(1.0), name="add1"), name="mul"), scalar(0.5), name="half")
    net.output(y, "y")
    heads = _fused_heads(net)
    assert heads == [Epilogue("GELU_ERF", 0.0, 0.0)]
    xv = (2 * rng.standard_normal((2, 5, 12))).astype(np.float32)
    _check(net, {"x": xv}, F.gelu(_t(xv) @ _t(w) + 1).numpy(), heads=1)
    # Another constant is another function: not fused.
    net2 = trtdsl.Network("not_gelu")
    x2 = net2.input("x", "float32", (2, 5, 12))
    h2 = ops.add(x2, x2, name="h")
    e2 = ops.erf(ops.div(h2, ops.reshape(ops.constant(net2, np.array([1.5], np.float32)), (1, 1, 1))))
    one = ops.reshape(ops.constant(net2, np.array([1.0], np.float32)), (1, 1, 1))
    half = ops.reshape(ops.constant(net2, np.array([0.5], np.float32)), (1, 1, 1))
    net2.output(ops.mul(ops.mul(h2, ops.add(e2, one)), half), "y")
    assert _fused_heads(net2) == []


@pytest.mark.parametrize("block", [1, 300, 1 << 20], ids=["row-per-block", "few-rows", "one-block"])
def test_depthwise_channel_blocks_cover_every_channel(block, rng, monkeypatch):
    from trtdsl.reference.kernels import depthwise

    monkeypatch.setattr(depthwise, "_GEMM_BLOCK_BYTES", block)
    c, n = 5, 2
    w = rng.standard_normal((c, 1, 3, 3)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    net = trtdsl.Network(f"dw_blocks_{block}")
    x = net.input("x", "float32", (n, c, 6, 7))
    net.output(ops.conv2d(x, w, b, stride=2, padding=1, groups=c), "y")
    xv = rng.standard_normal((n, c, 6, 7)).astype(np.float32)
    ref = F.conv2d(_t(xv), _t(w), _t(b), stride=2, padding=1, groups=c).numpy()
    np.testing.assert_allclose(run(net, {"x": xv})["y"], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_depthwise_without_bias_and_in_half_precision(dtype, rng):
    # No bias: no ones row in the GEMM. A float16 network's convolution computes in float32.
    c = 6
    w = rng.standard_normal((c, 1, 5, 5)).astype(np.float32) / 5
    net = trtdsl.Network(f"dw_{dtype}", dtype=dtype)
    x = net.input("x", dtype, (1, c, 9, 10))
    net.output(ops.conv2d(x, w.astype(dtype), stride=1, padding=2, groups=c), "y")
    xv = rng.standard_normal((1, c, 9, 10)).astype(dtype)
    ref = F.conv2d(_t(xv.astype(np.float32)), _t(w.astype(dtype).astype(np.float32)), padding=2, groups=c).numpy()
    got = run(net, {"x": xv})["y"]
    tol = 1e-5 if dtype == "float32" else 5e-3
    np.testing.assert_allclose(got.astype(np.float32), ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(got, run(net, {"x": xv}, fast=False)["y"], rtol=tol, atol=tol)


@pytest.mark.parametrize("shift", [True, False])
def test_an_activation_fuses_into_a_scale_layer(trt, shift, rng):
    """DenseNet's pre-activation BatchNorms reach TensorRT as Scale layers followed by a ReLU."""
    c = 6
    s = rng.standard_normal(c).astype(np.float32)
    t = rng.standard_normal(c).astype(np.float32)
    net = trtdsl.Network("scale-relu")
    x = net.input("x", "float32", (2, c, 5, 4))
    layer = net.trt.add_scale(x.trt, trt.ScaleMode.CHANNEL, trt.Weights(t) if shift else trt.Weights(), trt.Weights(s),
                              trt.Weights())  # fmt: skip
    y = net.register(layer, "bn")
    net.output(ops.relu(y, name="relu"), "y")
    xv = rng.standard_normal((2, c, 5, 4)).astype(np.float32)
    before = xv.copy()
    expected = np.maximum(xv * s.reshape(c, 1, 1) + (t.reshape(c, 1, 1) if shift else 0), 0)
    _check(net, {"x": xv}, expected, heads=1)
    np.testing.assert_array_equal(xv, before)  # the feed is not written
