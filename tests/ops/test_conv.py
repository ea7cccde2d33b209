"""conv1d/2d/3d and conv_transpose1d/2d/3d against torch.nn.functional, through the reference interpreter."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import trtdsl
from trtdsl import ops
from trtdsl.errors import ShapeError

torch = pytest.importorskip("torch")
F = torch.nn.functional

from ._oprun import run_output as _run  # noqa: E402
from ._oprun import torch64 as _t  # noqa: E402

pytestmark = pytest.mark.usefixtures("trt")

TOL = {"float32": dict(rtol=1e-4, atol=1e-4), "float16": dict(rtol=2e-2, atol=2e-2), "bfloat16": dict(rtol=5e-2, atol=8e-2)}  # fmt: skip
CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONVT = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
OPS = {1: ops.conv1d, 2: ops.conv2d, 3: ops.conv3d}
OPST = {1: ops.conv_transpose1d, 2: ops.conv_transpose2d, 3: ops.conv_transpose3d}


# (nd, input spatial, kernel, stride, padding, dilation, groups, c_in, c_out)
CASES = [
    (1, (13,), (3,), 1, 0, 1, 1, 3, 4),
    (1, (16,), (5,), 2, 2, 1, 2, 4, 6),
    (1, (12,), (3,), 1, ((2, 0),), 2, 1, 2, 3),
    (2, (9, 10), (3, 3), 1, 1, 1, 1, 3, 5),
    (2, (11, 8), (3, 2), (2, 1), (1, 0), (1, 2), 1, 4, 4),
    (2, (10, 10), (3, 3), 2, ((0, 1), (2, 1)), 1, 2, 4, 6),
    (2, (8, 8), (3, 3), 1, 1, 1, 6, 6, 12),  # depthwise, channel multiplier 2
    (2, (8, 8), (3, 3), 1, 1, 1, 6, 6, 6),  # depthwise, one filter per channel (the interpreter's fast path)
    (2, (9, 9), (3, 3), 2, 1, 1, 4, 4, 4),  # depthwise, stride 2
    (2, (7, 9), (1, 1), 1, 0, 1, 1, 8, 3),
    (2, (12, 12), (5, 5), 3, 2, 2, 1, 2, 2),
    (3, (5, 6, 7), (3, 3, 3), 1, 1, 1, 1, 2, 3),
    (3, (6, 6, 5), (2, 3, 1), (2, 1, 1), (0, 1, 0), (1, 1, 2), 2, 4, 2),
]


def _torch_padding(padding, nd):
    """(symmetric padding for torch, explicit F.pad amounts) of the op's padding argument."""
    if isinstance(padding, int):
        return padding, None
    if all(isinstance(p, int) for p in padding):
        return tuple(padding), None
    pad = []
    for before, after in reversed(padding):
        pad += [before, after]
    return 0, pad


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}d-{c[1]}-k{c[2]}-s{c[3]}-p{c[4]}-d{c[5]}-g{c[6]}")
def test_conv_matches_torch(case, dtype, rng):
    nd, spatial, k, stride, padding, dilation, groups, cin, cout = case
    x = rng.standard_normal((2, cin, *spatial)).astype(np.float32)
    w = rng.standard_normal((cout, cin // groups, *k)).astype(np.float32) / np.sqrt(cin * np.prod(k))
    b = rng.standard_normal(cout).astype(np.float32)
    net = trtdsl.Network("conv", dtype=dtype)
    xi = net.input("x", "float32", x.shape)
    y = OPS[nd](xi, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    sym, pad = _torch_padding(padding, nd)
    xt = _t(x) if pad is None else F.pad(_t(x), pad)
    ref = CONV[nd](xt, _t(w), _t(b), stride=stride, padding=sym, dilation=dilation, groups=groups).numpy()
    assert y.shape == ref.shape  # TensorRT's own shape inference
    out = _run(net, y, {"x": x})
    np.testing.assert_allclose(out, ref, **TOL[dtype])


@pytest.mark.parametrize("nd,spatial,k,stride,dilation", [
    (2, (7, 8), (3, 3), 2, 1), (2, (9, 9), (4, 2), 2, 1), (2, (10, 7), (3, 3), 3, 2), (1, (9,), (4,), 2, 1),
    (3, (5, 4, 7), (3, 2, 3), 2, 1), (2, (8, 8), (3, 3), 1, 1),
])  # fmt: skip
def test_same_padding_puts_the_extra_pixel_at_the_end(nd, spatial, k, stride, dilation, rng):
    x = rng.standard_normal((1, 3, *spatial)).astype(np.float32)
    w = rng.standard_normal((4, 3, *k)).astype(np.float32)
    net = trtdsl.Network("same")
    y = OPS[nd](net.input("x", "float32", x.shape), w, stride=stride, dilation=dilation, padding="same")
    # Keras/TensorFlow 'same': output ceil(I/S), total padding split with the extra pixel after.
    pad = []
    for i, kk in reversed(list(zip(spatial, k))):
        s = stride
        ext = dilation * (kk - 1) + 1
        total = max(0, (-(-i // s) - 1) * s + ext - i)
        pad += [total // 2, total - total // 2]
    ref = CONV[nd](F.pad(_t(x), pad), _t(w), stride=stride, dilation=dilation).numpy()
    assert y.shape == ref.shape == (1, 4, *(-(-i // stride) for i in spatial))
    np.testing.assert_allclose(_run(net, y, {"x": x}), ref, rtol=1e-4, atol=1e-4)


def test_valid_padding_and_dynamic_batch(rng):
    x = rng.standard_normal((3, 2, 9, 9)).astype(np.float32)
    w = rng.standard_normal((5, 2, 3, 3)).astype(np.float32)
    net = trtdsl.Network("dyn")
    xi = net.input("x", "float32", (net.dim("batch", 1, 2, 4), 2, 9, 9))
    y = ops.conv2d(xi, w, padding="valid", stride=2)
    assert y.shape == (-1, 5, 4, 4)
    np.testing.assert_allclose(_run(net, y, {"x": x}), F.conv2d(_t(x), _t(w), stride=2).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_kernel_and_bias_as_tensors(dtype, rng):
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    net = trtdsl.Network("wt", dtype=dtype)
    xi = net.input("x", "float32", x.shape)
    wi, bi = net.input("w", "float32", w.shape), net.input("b", "float32", b.shape)
    y = ops.conv2d(xi, wi, bi, padding=1, groups=2, name="c")
    layer = y.layer
    assert layer.num_inputs == 3 and layer.get_input(1).name == wi.cast(dtype).name
    out = _run(net, y, {"x": x, "w": w, "b": b})
    np.testing.assert_allclose(out, F.conv2d(_t(x), _t(w), _t(b), padding=1, groups=2).numpy(), **TOL[dtype])


def test_conv1d_with_kernel_tensor(rng):
    x = rng.standard_normal((2, 3, 10)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3)).astype(np.float32)
    net = trtdsl.Network("k1d")
    y = ops.conv1d(net.input("x", "float32", x.shape), net.input("w", "float32", w.shape), stride=2, padding=1)
    np.testing.assert_allclose(
        _run(net, y, {"x": x, "w": w}), F.conv1d(_t(x), _t(w), stride=2, padding=1).numpy(), rtol=1e-4, atol=1e-4
    )


def test_bfloat16_network_feeds_kernel_as_bfloat16_constants(rng):
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) / 5
    b = rng.standard_normal(4).astype(np.float32)
    net = trtdsl.Network("bf16", dtype="bfloat16")
    y = ops.conv2d(net.input("x", "float32", x.shape), w, b, padding=1, name="conv")
    assert y.dtype == "bfloat16"
    assert y.layer.get_input(1).name == "conv.kernel.out"  # a bfloat16 constant, no cast layer
    assert net.weights["conv.kernel"].dtype == ml_dtypes.bfloat16 and "conv.bias" in net.weights
    out = _run(net, y, {"x": x})
    np.testing.assert_allclose(out, F.conv2d(_t(x), _t(w), _t(b), padding=1).numpy(), **TOL["bfloat16"])


# ---------------------------------------------------------------- transposed
# (nd, spatial, kernel, stride, padding, output_padding, dilation, groups, c_in, c_out)
TCASES = [
    (2, (5, 6), (3, 3), 2, 1, 1, 1, 1, 4, 3),
    (2, (4, 4), (4, 4), 2, 1, 0, 1, 1, 3, 2),
    (2, (5, 5), (3, 2), (2, 3), (1, 0), 0, 1, 2, 4, 6),
    (2, (3, 4), (3, 3), 1, 0, 0, 2, 1, 2, 3),
    (2, (6, 5), (2, 2), 2, 0, 0, 1, 1, 3, 3),
    (1, (7,), (4,), 3, 2, 1, 1, 1, 2, 3),
    (3, (3, 4, 3), (3, 3, 2), (2, 1, 2), (1, 1, 0), (1, 0, 0), 1, 1, 2, 2),
]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("case", TCASES, ids=lambda c: f"{c[0]}d-k{c[2]}-s{c[3]}-p{c[4]}-op{c[5]}-d{c[6]}-g{c[7]}")
def test_conv_transpose_matches_torch(case, dtype, rng):
    nd, spatial, k, stride, padding, opad, dilation, groups, cin, cout = case
    x = rng.standard_normal((2, cin, *spatial)).astype(np.float32)
    w = rng.standard_normal((cin, cout // groups, *k)).astype(np.float32) / np.sqrt(cin)
    b = rng.standard_normal(cout).astype(np.float32)
    net = trtdsl.Network("convt", dtype=dtype)
    y = OPST[nd](net.input("x", "float32", x.shape), w, b, stride=stride, padding=padding, output_padding=opad,
                 groups=groups, dilation=dilation)  # fmt: skip
    ref = CONVT[nd](_t(x), _t(w), _t(b), stride=stride, padding=padding, output_padding=opad, groups=groups,
                    dilation=dilation).numpy()  # fmt: skip
    assert y.shape == ref.shape
    assert y.dtype == dtype
    np.testing.assert_allclose(_run(net, y, {"x": x}), ref, **TOL[dtype])


def test_conv_transpose_same_upsamples_by_stride(rng):
    x = rng.standard_normal((1, 2, 5, 4)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    net = trtdsl.Network("tsame")
    y = ops.conv_transpose2d(net.input("x", "float32", x.shape), w, stride=2, padding="same")
    # SAME_UPPER deconvolution: full output (I-1)*S+K, cropped by K-S: floor half before, the rest after.
    full = F.conv_transpose2d(_t(x), _t(w), stride=2).numpy()
    ref = full[:, :, 0:10, 0:8]
    assert y.shape == (1, 3, 10, 8)
    np.testing.assert_allclose(_run(net, y, {"x": x}), ref, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------- names and weights
def test_names_come_from_scope_and_weights_are_kept_under_them(rng):
    net = trtdsl.Network("names", dtype="float16")
    x = net.input("x", "float32", (1, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    with net.scope("stem"):
        y = ops.conv2d(x, w, np.zeros(4), name="conv1")
        z = ops.conv2d(y, rng.standard_normal((4, 4, 1, 1)), name="conv1")
        t = ops.conv_transpose2d(z, rng.standard_normal((4, 2, 2, 2)), stride=2, name="up")
    assert y.layer.name == "stem.conv1" and y.name == "stem.conv1.out"
    assert z.layer.name == "stem.conv1_1"
    assert t.layer.name == "stem.up" and t.shape == (1, 2, 12, 12)
    assert set(net.weights) >= {"stem.conv1.kernel", "stem.conv1.bias", "stem.conv1_1.kernel", "stem.up.kernel"}
    assert net.weights["stem.conv1.kernel"].dtype == np.float16  # stored in the compute dtype
    np.testing.assert_array_equal(net.weights["stem.conv1.kernel"], w.astype(np.float16))


def test_conv1d_layers_are_named_around_the_convolution(rng):
    net = trtdsl.Network("n1d")
    with net.scope("enc"):
        y = ops.conv1d(net.input("x", "float32", (1, 2, 8)), rng.standard_normal((3, 2, 3)), name="c")
    names = [layer.name for layer in net.layers()]
    assert {"enc.c.unsqueeze", "enc.c", "enc.c.squeeze"} <= set(names)
    assert y.name == "enc.c.squeeze.out" and y.shape == (1, 3, 6)
    assert "enc.c.kernel" in net.weights


# --------------------------------------------------------------------- errors
def _x(shape=(1, 3, 8, 8)):
    net = trtdsl.Network("err")
    return net.input("x", "float32", shape)


def test_keras_hwio_kernel_gets_a_hint():
    with pytest.raises(ShapeError, match=r"conv2d 'x.conv2d': kernel \(7, 7, 3, 64\) does not fit input with 3 "
                                         r"channels.*\(64, 3, 7, 7\).*Keras HWIO.*keras_conv\(kernel\)"):  # fmt: skip
        ops.conv2d(_x(), np.zeros((7, 7, 3, 64), np.float32))


def test_wrong_channel_count_without_hint():
    with pytest.raises(ShapeError, match=r"kernel \(8, 4, 3, 3\) does not fit input with 3 channels") as info:
        ops.conv2d(_x(), np.zeros((8, 4, 3, 3), np.float32))
    assert "Keras" not in str(info.value)


def test_groups_must_divide_channels():
    with pytest.raises(ShapeError, match=r"groups=2 does not divide the 3 input channels"):
        ops.conv2d(_x(), np.zeros((4, 1, 3, 3), np.float32), groups=2)
    with pytest.raises(ShapeError, match=r"groups=3 does not divide the 4 output channels"):
        ops.conv2d(_x(), np.zeros((4, 1, 3, 3), np.float32), groups=3)


def test_rank_and_argument_errors():
    with pytest.raises(
        ShapeError, match=r"conv2d 'c': input 'x' must have rank 4 \(N, C, H, W\), got shape \(1, 3, 8\)"
    ):
        ops.conv2d(_x((1, 3, 8)), np.zeros((4, 3, 3, 3)), name="c")
    with pytest.raises(ShapeError, match=r"kernel must have rank 4 \(out, in/groups, \*k\), got shape \(4, 3, 3\)"):
        ops.conv2d(_x(), np.zeros((4, 3, 3)))
    with pytest.raises(ShapeError, match=r"padding needs 2 per-dim values"):
        ops.conv2d(_x(), np.zeros((4, 3, 3, 3)), padding=(1, 1, 1))
    with pytest.raises(ShapeError, match=r"padding 'full' is not 'same', 'valid'"):
        ops.conv2d(_x(), np.zeros((4, 3, 3, 3)), padding="full")
    with pytest.raises(ShapeError, match=r"bias has 3 values, expected one per output channel \(4\)"):
        ops.conv2d(_x(), np.zeros((4, 3, 3, 3)), np.zeros(3))
    with pytest.raises(ShapeError, match=r"channel dim of input 'x' must be static"):
        ops.conv2d(_x((1, "c", 8, 8)), np.zeros((4, 3, 3, 3)))


def test_conv_transpose_errors():
    with pytest.raises(ShapeError, match=r"kernel \(4, 3, 3, 3\) does not fit input with 3 channels; "
                                         r"expected \(3, out/groups, \*k\), PyTorch's ConvTranspose layout"):  # fmt: skip
        ops.conv_transpose2d(_x(), np.zeros((4, 3, 3, 3)))
    with pytest.raises(ShapeError, match=r"output_padding 1 exceeds the padding 0 of dim 0"):
        ops.conv_transpose2d(_x(), np.zeros((3, 2, 3, 3)), stride=2, output_padding=1)
    with pytest.raises(ShapeError, match=r"output_padding \(2, 2\) must be smaller than stride or dilation"):
        ops.conv_transpose2d(_x(), np.zeros((3, 2, 3, 3)), stride=2, padding=2, output_padding=2)


# --------------------------------------------------------------- real engine
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_tensorrt_builds_a_conv_pool_engine(trt, rng, dtype):
    """TensorRT itself accepts what the ops build: a serialized engine with a dynamic-batch profile."""
    from trtdsl import _trt

    net = trtdsl.Network("engine", dtype=dtype)
    x = net.input("x", "float32", (net.dim("batch", 1, 2, 4), 3, 16, 16))
    with net.scope("stem"):
        y = ops.conv2d(x, rng.standard_normal((8, 3, 3, 3)), rng.standard_normal(8), stride=2, padding=1, name="conv")
        y = ops.max_pool2d(y, 3, 2, 1, name="pool")
    y = ops.conv_transpose2d(y, rng.standard_normal((8, 4, 2, 2)), stride=2, name="up")
    y = ops.interpolate(y, scale_factor=2, mode="bilinear", name="resize")
    net.output(ops.global_avg_pool(y, name="gap"), "y")
    cfg = net.builder.create_builder_config()
    profile = net.builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16))
    cfg.add_optimization_profile(profile)
    _trt.logger().errors.clear()
    plan = net.builder.build_serialized_network(net.trt, cfg)
    errors = [e for e in _trt.logger().errors if "CUDA driver version" not in e and "catchCudaError" not in e]
    assert plan is not None and plan.nbytes > 0, errors
    assert not errors
