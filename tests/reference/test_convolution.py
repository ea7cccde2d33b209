"""Convolution, deconvolution, pooling and LRN interpreters on raw-API networks.

Every PaddingMode is checked against torch with the padding written out from
the formulas of NvInfer.h's PaddingMode documentation, so the test restates
TensorRT's rules instead of reusing the interpreter's arithmetic.
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl.errors import UnsupportedLayerError
from trtdsl.reference import run

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.usefixtures("trt", "reference_mode")  # fast and plain paths


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def _same(i, window, s, mode):
    """NvInfer.h SAME_*: P = floor((I - 1) / S) * S + DK - I, split with the odd pixel after (UPPER) or before."""
    p = max(0, (i - 1) // s * s + window - i)
    small = p // 2
    return (small, p - small) if mode == "SAME_UPPER" else (p - small, small)


def _torch_pad(pairs):
    out = []
    for b, a in reversed(pairs):
        out += [b, a]
    return out


def _net_with(trt, x_shape, make):
    net = trtdsl.Network("raw")
    x = net.input("x", "float32", x_shape)
    layer = make(net, x.trt)
    net.output(net.register(layer, "layer"), "y")
    return net


CONV_MODES = [
    # (mode, spatial, kernel, stride, dilation, pre, post)
    ("SAME_UPPER", (7, 8), (3, 4), (2, 3), (1, 1), (0, 0), (0, 0)),
    ("SAME_LOWER", (7, 8), (3, 4), (2, 3), (1, 1), (0, 0), (0, 0)),
    ("SAME_LOWER", (9, 6), (3, 3), (1, 1), (2, 1), (0, 0), (0, 0)),
    ("SAME_UPPER", (5, 6, 4), (2, 3, 2), (2, 2, 1), (1, 1, 1), (0, 0, 0), (0, 0, 0)),
    ("EXPLICIT_ROUND_DOWN", (9, 8), (3, 3), (2, 2), (1, 1), (1, 0), (0, 2)),
    ("EXPLICIT_ROUND_UP", (9, 8), (3, 3), (2, 3), (1, 1), (1, 0), (0, 2)),
    ("EXPLICIT_ROUND_UP", (10, 7, 6), (3, 2, 3), (3, 2, 2), (1, 2, 1), (0, 1, 1), (1, 0, 0)),
]


@pytest.mark.parametrize("mode,spatial,k,s,d,pre,post", CONV_MODES)
def test_convolution_padding_modes(trt, mode, spatial, k, s, d, pre, post, rng):
    x = rng.standard_normal((2, 4, *spatial)).astype(np.float32)
    w = rng.standard_normal((6, 2, *k)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)

    def make(net, xt):
        layer = net.trt.add_convolution_nd(xt, 6, k, net.keep(w, "w"), net.keep(b, "b"))
        layer.stride_nd, layer.dilation_nd, layer.num_groups = s, d, 2
        layer.pre_padding, layer.post_padding = pre, post
        layer.padding_mode = getattr(trt.PaddingMode, mode)
        return layer

    net = _net_with(trt, x.shape, make)
    ext = [dd * (kk - 1) + 1 for kk, dd in zip(k, d)]
    if mode.startswith("SAME"):
        pads = [_same(i, e, ss, mode) for i, e, ss in zip(spatial, ext, s)]
    else:
        pads = list(zip(pre, post))
        if mode == "EXPLICIT_ROUND_UP":  # O = ceil((M - DK) / S) + 1: the last window may hang past the padding
            outs = [-(-(i + b_ + a - e) // ss) + 1 for i, e, ss, (b_, a) in zip(spatial, ext, s, pads)]
            pads = [(b_, a + max(0, (o - 1) * ss + e - (i + b_ + a))) for i, e, ss, (b_, a), o in
                    zip(spatial, ext, s, pads, outs)]  # fmt: skip
    conv = {2: F.conv2d, 3: F.conv3d}[len(k)]
    ref = conv(F.pad(_t(x), _torch_pad(pads)), _t(w), _t(b), stride=s, dilation=d, groups=2).numpy()
    assert net.outputs["y"].shape == ref.shape  # TensorRT's shape agrees with the formulas
    np.testing.assert_allclose(run(net, {"x": x})["y"], ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER", "EXPLICIT_ROUND_DOWN"])
@pytest.mark.parametrize("k,s", [((3, 3), (2, 2)), ((4, 3), (2, 3)), ((2, 2), (3, 3))])
def test_deconvolution_padding_modes(trt, mode, k, s, rng):
    x = rng.standard_normal((1, 4, 4, 5)).astype(np.float32)
    w = rng.standard_normal((4, 3, *k)).astype(np.float32)  # (C, K/G, R, S), groups=2
    pre, post = (1, 0), (0, 1)

    def make(net, xt):
        layer = net.trt.add_deconvolution_nd(xt, 6, k, net.keep(w, "w"), trt.Weights())
        layer.stride_nd, layer.num_groups = s, 2
        layer.pre_padding, layer.post_padding = pre, post
        layer.padding_mode = getattr(trt.PaddingMode, mode)
        return layer

    net = _net_with(trt, x.shape, make)
    full = F.conv_transpose2d(_t(x), _t(w), stride=s, groups=2).numpy()
    if mode.startswith("SAME"):  # P = max(DK - S, 0), split as for convolution
        crops = []
        for kk, ss in zip(k, s):
            p = max(kk - ss, 0)
            crops.append((p // 2, p - p // 2) if mode == "SAME_UPPER" else (p - p // 2, p // 2))
    else:
        crops = list(zip(pre, post))
    ref = full[:, :, crops[0][0] : full.shape[2] - crops[0][1], crops[1][0] : full.shape[3] - crops[1][1]]
    assert net.outputs["y"].shape == ref.shape
    np.testing.assert_allclose(run(net, {"x": x})["y"], ref, rtol=1e-4, atol=1e-4)


def test_kernel_and_bias_weights_are_read_as_float16(trt, rng):
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float16)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float16)
    b = rng.standard_normal(2).astype(np.float16)
    net = trtdsl.Network("half", dtype="float16")
    xi = net.input("x", "float16", x.shape)
    layer = net.trt.add_convolution_nd(xi.trt, 2, (3, 3), net.keep(w, "w"), net.keep(b, "b"))
    net.output(net.register(layer, "conv"), "y", dtype="float16")
    ref = F.conv2d(_t(x), _t(w), _t(b)).numpy()
    np.testing.assert_allclose(run(net, {"x": x})["y"], ref, rtol=1e-2, atol=1e-2)


def test_bfloat16_weights_that_numpy_cannot_read_are_named(trt):
    net = trtdsl.Network("bf16", dtype="bfloat16")
    xi = net.cast(net.input("x", "float32", (1, 2, 4, 4)), "bfloat16")
    bits = np.zeros(2 * 2 * 3 * 3, np.uint16)
    kernel = trt.Weights(trt.bfloat16, bits.ctypes.data, bits.size)
    layer = net.trt.add_convolution_nd(xi.trt, 2, (3, 3), kernel, trt.Weights(trt.bfloat16))
    net.output(net.register(layer, "conv"), "y")
    with pytest.raises(UnsupportedLayerError, match=r"'x.conv': its kernel weights have type DataType.BF16, which "
                                                    r"NumPy cannot read; pass them as a constant tensor on input 1"):  # fmt: skip
        run(net, {"x": np.zeros((1, 2, 4, 4), np.float32)})


# -------------------------------------------------------------------- pooling
@pytest.mark.parametrize("blend", [0.0, 0.3, 1.0])
def test_max_average_blend(trt, blend, rng):
    x = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)

    def make(net, xt):
        layer = net.trt.add_pooling_nd(xt, trt.PoolingType.MAX_AVERAGE_BLEND, (3, 3))
        layer.stride_nd, layer.padding_nd, layer.blend_factor = (2, 2), (1, 1), blend
        return layer

    net = _net_with(trt, x.shape, make)
    mx = F.max_pool2d(_t(x), 3, 2, 1).numpy()
    avg = F.avg_pool2d(_t(x), 3, 2, 1, count_include_pad=False).numpy()  # TensorRT's default excludes padding
    np.testing.assert_allclose(run(net, {"x": x})["y"], (1 - blend) * mx + blend * avg, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["SAME_UPPER", "SAME_LOWER"])
def test_pooling_same_modes_3d(trt, mode, rng):
    x = rng.standard_normal((1, 2, 5, 6, 7)).astype(np.float32)
    k, s = (2, 3, 3), (2, 2, 3)

    def make(net, xt):
        layer = net.trt.add_pooling_nd(xt, trt.PoolingType.AVERAGE, k)
        layer.stride_nd, layer.padding_mode = s, getattr(trt.PaddingMode, mode)
        layer.average_count_excludes_padding = False
        return layer

    net = _net_with(trt, x.shape, make)
    pad = _torch_pad([_same(i, kk, ss, mode) for i, kk, ss in zip(x.shape[2:], k, s)])
    ref = F.avg_pool3d(F.pad(_t(x), pad), k, s).numpy()  # padding counted: zeros averaged in
    assert net.outputs["y"].shape == ref.shape
    np.testing.assert_allclose(run(net, {"x": x})["y"], ref, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------ LRN
def test_lrn_matches_nvidia_operator_example(trt):
    # docs.nvidia.com/deeplearning/tensorrt/operators/docs/LRN.html
    x = np.repeat(np.arange(5, dtype=np.float32), 4).reshape(1, 5, 2, 2)
    net = _net_with(trt, x.shape, lambda net, xt: net.trt.add_lrn(xt, 3, 1.0, 1.0, 0.1))
    want = np.array([0.0, 0.56603765, 0.4195804, 0.3071672, 0.47430828], np.float32)
    np.testing.assert_allclose(run(net, {"x": x})["y"][0, :, 0, 0], want, rtol=1e-6)


@pytest.mark.parametrize("window,alpha,beta,k", [(5, 1e-4, 0.75, 2.0), (3, 0.5, 1.5, 1.0), (1, 2.0, 0.5, 1.0)])
def test_lrn_matches_torch(trt, window, alpha, beta, k, rng):
    x = rng.standard_normal((2, 7, 3, 4)).astype(np.float32)
    net = _net_with(trt, x.shape, lambda net, xt: net.trt.add_lrn(xt, window, alpha, beta, k))
    ref = F.local_response_norm(_t(x), window, alpha, beta, k).numpy()
    np.testing.assert_allclose(run(net, {"x": x})["y"], ref, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ Winograd
# (batch, in channels, out channels, spatial, bias): 3x3 stride-1 pad-1, each with >= 32 tiles.
WINOGRAD = [
    (1, 32, 32, (12, 12), True),
    (2, 32, 40, (9, 11), True),  # odd sizes: the last tiles hang half outside
    (3, 48, 32, (7, 6), False),  # three images of 12 tiles
    (1, 64, 64, (28, 28), True),
]


def _conv3x3_net(shape, w, b, stride=1, groups=1, relu=False):
    net = trtdsl.Network("conv3x3")
    x = net.input("x", "float32", shape)
    y = trtdsl.ops.conv2d(x, w, b, stride=stride, padding=1, groups=groups)
    net.output(trtdsl.ops.relu(y) if relu else y, "y")  # a ReLU fuses into the convolution
    return net


def _spy_winograd(monkeypatch) -> list:
    from trtdsl.reference.kernels import winograd

    calls = []
    real = winograd.conv

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(winograd, "conv", spy)
    return calls


@pytest.mark.parametrize("case", WINOGRAD, ids=[f"n{c[0]}-c{c[1]}-k{c[2]}-{c[3][0]}x{c[3][1]}" for c in WINOGRAD])
def test_winograd_matches_float64_torch(case, rng, monkeypatch):
    n, cin, cout, spatial, with_bias = case
    calls = _spy_winograd(monkeypatch)
    w = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) if with_bias else None
    net = _conv3x3_net((n, cin, *spatial), w, b, relu=with_bias)
    for _ in range(2):  # the second run reuses the kept phase and tile arrays with other values
        xv = rng.standard_normal((n, cin, *spatial)).astype(np.float32)
        ref = F.conv2d(_t(xv), _t(w), None if b is None else _t(b), padding=1)
        ref = (F.relu(ref) if with_bias else ref).numpy()
        got = run(net, {"x": xv}, fast=True)["y"]
        # As accurate as a direct float32 convolution (whose error here is ~5e-7 of the largest output).
        assert np.max(np.abs(got - ref)) <= 2e-6 * np.max(np.abs(ref))
    assert len(calls) == 2


@pytest.mark.parametrize(
    "shape, stride, groups",
    [((1, 32, 7, 7), 1, 1), ((1, 16, 16, 16), 1, 1), ((1, 32, 16, 16), 2, 1), ((1, 32, 16, 16), 1, 2)],
    ids=["16-tiles", "16-channels", "stride-2", "grouped"],
)
def test_winograd_is_left_to_the_direct_path_outside_its_range(shape, stride, groups, rng, monkeypatch):
    calls = _spy_winograd(monkeypatch)
    c = shape[1]
    w = rng.standard_normal((32, c // groups, 3, 3)).astype(np.float32)
    xv = rng.standard_normal(shape).astype(np.float32)
    got = run(_conv3x3_net(shape, w, None, stride, groups), {"x": xv}, fast=True)["y"]
    ref = F.conv2d(_t(xv), _t(w), stride=stride, padding=1, groups=groups).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    assert calls == []


# (input shape, kernel size, stride): Winograd, a strided 1x1 (bias folded into the weight
# matrix), a strided 3x3 by im2col, a depthwise 3x3: each derives weights from the bias.
TENSOR_BIAS = [((1, 32, 12, 12), 3, 1, 1), ((1, 16, 9, 9), 1, 2, 1), ((2, 8, 9, 9), 3, 2, 1), ((1, 8, 10, 10), 3, 1, 8)]


@pytest.mark.parametrize("case", TENSOR_BIAS, ids=["winograd", "1x1-stride-2", "3x3-stride-2", "depthwise"])
def test_a_bias_wired_as_a_tensor_is_read_anew_when_its_values_change(trt, case, rng):
    """TensorRT's ONNX parser wires some biases from constant layers: what the interpreter derives
    from them (Winograd's transform, a weight matrix with the bias column) is cached while the
    values stay, and rebuilt when they change (here a network input, different in each run)."""
    shape, size, stride, groups = case
    k = 32 if groups == 1 else shape[1]
    w = rng.standard_normal((k, shape[1] // groups, size, size)).astype(np.float32)
    net = trtdsl.Network("tensor-bias")
    x = net.input("x", "float32", shape)
    bias = net.input("b", "float32", (k,))
    layer = net.trt.add_convolution_nd(x.trt, k, (size, size), trt.Weights(w), trt.Weights())
    layer.stride_nd, layer.padding_nd, layer.num_groups = (stride, stride), (size // 2, size // 2), groups
    layer.set_input(2, bias.trt)
    net.output(net.register(layer, "conv"), "y")
    xv = rng.standard_normal(shape).astype(np.float32)
    first, second = (rng.standard_normal(k).astype(np.float32) for _ in range(2))
    for bv in (first, second, first):
        got = run(net, {"x": xv, "b": bv})["y"]
        ref = F.conv2d(_t(xv), _t(w), _t(bv), stride=stride, padding=size // 2, groups=groups).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=2e-5)


def test_weights_derived_from_a_constant_bias_tensor_are_made_once(trt, rng, monkeypatch):
    from trtdsl.reference import Interpreter
    from trtdsl.reference.kernels import winograd

    made = []
    real = winograd.transformed_weights
    monkeypatch.setattr(winograd, "transformed_weights", lambda w, b: made.append(w.shape) or real(w, b))
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    net = trtdsl.Network("constant-bias")
    x = net.input("x", "float32", (1, 32, 12, 12))
    layer = net.trt.add_convolution_nd(x.trt, 32, (3, 3), trt.Weights(w), trt.Weights())
    layer.padding_nd = (1, 1)
    layer.set_input(2, net.constant(b, "b").trt)
    net.output(net.register(layer, "conv"), "y")
    interp = Interpreter(net, fast=True)
    for _ in range(3):
        xv = rng.standard_normal((1, 32, 12, 12)).astype(np.float32)
        got = interp.run({"x": xv})["y"]
        ref = F.conv2d(_t(xv), _t(w), _t(b), padding=1).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=2e-5)
    assert made == [(32, 32, 3, 3)]


def test_a_deconvolution_kernel_wired_as_a_tensor_is_flipped_anew_when_it_changes(trt, rng):
    net = trtdsl.Network("tensor-kernel")
    x = net.input("x", "float32", (1, 4, 5, 5))
    kernel = net.input("k", "float32", (4, 6, 3, 3))
    layer = net.trt.add_deconvolution_nd(x.trt, 6, (3, 3), trt.Weights(), trt.Weights())
    layer.stride_nd = (2, 2)
    layer.set_input(1, kernel.trt)
    net.output(net.register(layer, "deconv"), "y")
    xv = rng.standard_normal((1, 4, 5, 5)).astype(np.float32)
    first, second = (rng.standard_normal((4, 6, 3, 3)).astype(np.float32) for _ in range(2))
    for kv in (first, second, first):
        got = run(net, {"x": xv, "k": kv})["y"]
        ref = F.conv_transpose2d(_t(xv), _t(kv), stride=2).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=2e-5)


# (C, K, spatial, kernel, stride, groups): one case for each fast route of conv_nd with a
# batch of 2, each followed by a ReLU that fuses into it. The plain im2col GEMM is the one
# that failed on an empty batch; the others are here so that none starts to.
EMPTY_BATCH = [
    (16, 16, (12, 12), (3, 3), (1, 1), 1),  # im2col GEMM
    (4, 6, (9, 8), (3, 3), (2, 1), 1),  # phased im2col
    (4, 6, (9, 8), (1, 1), (2, 2), 1),  # strided 1x1
    (32, 32, (8, 8), (3, 3), (1, 1), 1),  # Winograd
    (8, 8, (9, 8), (3, 3), (1, 1), 8),  # depthwise, compiled
    (8, 8, (9, 8), (3, 3), (1, 1), 2),  # narrow grouped, compiled
    (8, 6, (1, 1), (1, 1), (1, 1), 1),  # 1x1 on 1x1 images
    (4, 6, (4, 5, 6), (3, 3, 3), (1, 2, 1), 1),  # 3-D
]


@pytest.mark.parametrize("c,k,spatial,kernel,stride,groups", EMPTY_BATCH)
def test_convolution_of_an_empty_batch(trt, c, k, spatial, kernel, stride, groups, rng):
    """A dynamic batch of 0 (a detector's crops when nothing was found) gives an empty output on
    every route: the fast kernels once failed on it (a -1 beside a 0 in a reshape)."""
    w = rng.standard_normal((k, c // groups, *kernel)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    pad = tuple(f // 2 for f in kernel)
    net = trtdsl.Network("empty-batch")
    x = net.input("x", "float32", (net.dim("batch", 0, 2, 4), c, *spatial))
    layer = net.trt.add_convolution_nd(x.trt, k, kernel, net.keep(w, "w"), net.keep(b, "b"))
    layer.stride_nd, layer.padding_nd, layer.num_groups = stride, pad, groups
    y = net.register(layer, "conv")
    net.output(net.register(net.trt.add_activation(y.trt, trt.ActivationType.RELU), "relu"), "y")
    conv = F.conv3d if len(spatial) == 3 else F.conv2d
    for n in (0, 2, 0):  # also after the batch of 2 has prepared its route
        xv = rng.standard_normal((n, c, *spatial)).astype(np.float32)
        got = run(net, {"x": xv})["y"]
        want = F.relu(conv(_t(xv), _t(w), _t(b), stride, pad, groups=groups)).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)


def test_deconvolution_of_an_empty_batch(trt, rng):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    net = trtdsl.Network("empty-batch")
    x = net.input("x", "float32", (net.dim("batch", 0, 2, 4), 4, 5, 5))
    layer = net.trt.add_deconvolution_nd(x.trt, 6, (3, 3), net.keep(w, "w"), trt.Weights())
    layer.stride_nd, layer.num_groups = (2, 2), 2
    net.output(net.register(layer, "deconv"), "y")
    for n in (0, 2):
        xv = rng.standard_normal((n, 4, 5, 5)).astype(np.float32)
        got = run(net, {"x": xv})["y"]
        want = F.conv_transpose2d(_t(xv), _t(w), stride=2, groups=2).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)
