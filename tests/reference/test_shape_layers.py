"""Interpreter cases for shape layers built with the raw API, beyond what the DSL emits.

Expected values come from NumPy written from the layer documentation in
``NvInfer.h`` (np.pad modes for slice sampling, explicit loops for gathers).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import trtdsl
from trtdsl import reference
from trtdsl.errors import InterpreterError

pytestmark = pytest.mark.usefixtures("trt", "reference_mode")  # fast and plain paths


def _finish(net, layer, feeds, reported=None, kind="layer"):
    (y,) = net.add(layer, kind)
    if reported is not None:
        assert y.shape == tuple(reported)
    net.output(y, "y")
    return reference.run(net, feeds)["y"]


def _const(net, values, dtype=np.int64):
    return net.constant(np.asarray(values, dtype=dtype), "c").trt


# ------------------------------------------------------------------ shuffle
def test_shuffle_transpose_reshape_transpose(rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    net = trtdsl.Network("t")
    layer = net.trt.add_shuffle(net.input("x", "float32", a.shape).trt)
    layer.first_transpose = (2, 0, 1)  # (4, 2, 3)
    layer.reshape_dims = (0, -1)  # placeholder copies axis 0 of the transposed tensor: (4, 6)
    layer.second_transpose = (1, 0)
    want = a.transpose(2, 0, 1).reshape(4, 6).T
    np.testing.assert_array_equal(_finish(net, layer, {"x": a}, (6, 4)), want)


def test_shuffle_zero_is_not_placeholder():
    net = trtdsl.Network("t")
    layer = net.trt.add_shuffle(net.input("x", "float32", (2, 0, 3)).trt)
    layer.zero_is_placeholder = False
    layer.reshape_dims = (0, 7)
    out = _finish(net, layer, {"x": np.zeros((2, 0, 3), np.float32)}, (0, 7))
    assert out.shape == (0, 7)


@pytest.mark.parametrize(
    ("dims", "placeholder", "want_shape"), [((0, -1), True, (3, 8)), ((-1, 2, 2), False, (6, 2, 2))]
)
def test_shuffle_reshape_dims_from_input(dims, placeholder, want_shape, rng, caplog):
    a = rng.standard_normal((3, 2, 4)).astype(np.float32)
    net = trtdsl.Network("t")
    layer = net.trt.add_shuffle(net.input("x", "float32", a.shape).trt)
    layer.set_input(1, _const(net, dims))
    layer.zero_is_placeholder = placeholder
    caplog.clear()
    np.testing.assert_array_equal(_finish(net, layer, {"x": a}, want_shape), a.reshape(want_shape))
    # The interpreter never reads reshape_dims of such a layer (TensorRT would log an error for it).
    assert "getReshapeDimensions" not in caplog.text


# -------------------------------------------------------------------- slice
_NUMPY_PAD = {"WRAP": "wrap", "CLAMP": "edge", "REFLECT": "reflect", "FILL": "constant"}


def _sample_by_padding(a, start, size, stride, mode, fill=0.0):
    """Slice semantics from np.pad: pad far enough, then index the padded array."""
    p = 2 * max(a.shape) + max(abs(s) for s in start) + max(abs(n * st) for n, st in zip(size, stride))
    kwargs = {"constant_values": fill} if mode == "FILL" else {}
    padded = np.pad(a, p, mode=_NUMPY_PAD[mode], **kwargs)
    idx = [p + s + np.arange(n) * st for s, n, st in zip(start, size, stride)]
    return padded[np.ix_(*idx)]


SLICES = [
    ((-2, 1), (5, 3), (1, 1)),
    ((3, 4), (4, 2), (-1, -2)),
    ((0, -3), (3, 9), (2, 1)),
    ((-7, 0), (9, 1), (3, 2)),
]


@pytest.mark.parametrize(("start", "size", "stride"), SLICES)
@pytest.mark.parametrize("mode", ["WRAP", "CLAMP", "REFLECT", "FILL"])
def test_slice_sample_modes(start, size, stride, mode, trt, rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    net = trtdsl.Network("t")
    layer = net.trt.add_slice(net.input("x", "float32", a.shape).trt, start, size, stride)
    layer.mode = getattr(trt.SampleMode, mode)
    if mode == "FILL":
        layer.set_input(4, net.constant(np.float32(-9.0), "fill").trt)
    want = _sample_by_padding(a, start, size, stride, mode, fill=-9.0)
    np.testing.assert_array_equal(_finish(net, layer, {"x": a}, size), want)


def test_slice_fill_without_value_fills_zero_and_reflect_single_element(trt):
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (1, 3))
    layer = net.trt.add_slice(x.trt, (-1, -1), (3, 5), (1, 1))
    layer.mode = trt.SampleMode.FILL
    a = np.array([[1.0, 2.0, 3.0]], np.float32)
    np.testing.assert_array_equal(
        _finish(net, layer, {"x": a}), _sample_by_padding(a, (-1, -1), (3, 5), (1, 1), "FILL")
    )
    net = trtdsl.Network("t")
    layer = net.trt.add_slice(net.input("x", "float32", (1, 3)).trt, (-2, 0), (4, 3), (1, 1))
    layer.mode = trt.SampleMode.REFLECT  # one element along axis 0: it repeats
    np.testing.assert_array_equal(_finish(net, layer, {"x": a}), np.repeat(a, 4, axis=0))


def test_slice_strict_bounds(rng):
    a = rng.standard_normal((4, 5)).astype(np.float32)
    net = trtdsl.Network("t")
    layer = net.trt.add_slice(net.input("x", "float32", a.shape).trt, (3, 4), (2, 3), (-2, -1))
    np.testing.assert_array_equal(_finish(net, layer, {"x": a}, (2, 3)), a[3::-2, 4:1:-1])
    net = trtdsl.Network("t")
    layer = net.trt.add_slice(net.input("x", "float32", a.shape).trt, (0, 3), (2, 3), (1, 1))
    with pytest.raises(InterpreterError, match="index 5 is out of bounds for an axis of size 5 \\(STRICT_BOUNDS\\)"):
        _finish(net, layer, {"x": a})


def test_slice_dynamic_start_size_stride_and_axes(trt, rng):
    """Inputs 1, 2, 3, 5: start, size, stride and (negative) axes as tensors."""
    a = rng.standard_normal((2, 6, 5)).astype(np.float32)
    net = trtdsl.Network("t")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 6, 5))
    layer = net.trt.add_slice(x.trt, (0, 0), (1, 1), (1, 1))
    layer.set_input(1, _const(net, [5, 1]))
    layer.set_input(2, _const(net, [3, 2]))
    layer.set_input(3, _const(net, [-2, 3]))
    layer.set_input(5, _const(net, [1, -1]))
    np.testing.assert_array_equal(_finish(net, layer, {"x": a}, (-1, 3, 2)), a[:, 5::-2, 1::3])
    for batch in (4, 1, 2):  # the plan is kept per input shape and values: each run gets its own
        b = rng.standard_normal((batch, 6, 5)).astype(np.float32)
        np.testing.assert_array_equal(reference.run(net, {"x": b})["y"], b[:, 5::-2, 1::3])


def test_slice_static_axes_attribute(rng):
    a = rng.standard_normal((2, 6, 5)).astype(np.float32)
    net = trtdsl.Network("t")
    layer = net.trt.add_slice(net.input("x", "float32", a.shape).trt, (4,), (2,), (-3,))
    layer.axes = (-1,)
    np.testing.assert_array_equal(_finish(net, layer, {"x": a}, (2, 6, 2)), a[..., 4::-3])


def test_slice_stride_zero_broadcasts(rng):
    a = rng.standard_normal((1, 3)).astype(np.float32)
    net = trtdsl.Network("t")
    layer = net.trt.add_slice(net.input("x", "float32", a.shape).trt, (0, 0), (4, 3), (0, 1))
    np.testing.assert_array_equal(_finish(net, layer, {"x": a}, (4, 3)), np.broadcast_to(a, (4, 3)))


# ------------------------------------------------------------------- gather
def _loop_gather_default(data, idx, axis, e):
    """out = data indexed along axis by each index; with e=1 axis 0 pairs data[b] with idx[b]."""
    n = data.shape[axis]
    fix = lambda i: i + n if i < 0 else i  # noqa: E731
    if e == 0:
        out = np.zeros(data.shape[:axis] + idx.shape + data.shape[axis + 1 :], data.dtype)
        for pre in itertools.product(*map(range, data.shape[:axis])):
            for j in itertools.product(*map(range, idx.shape)):
                out[pre + j] = data[(*pre, fix(idx[j]))]
        return out
    b = max(data.shape[0], idx.shape[0])
    out = np.zeros((b, *data.shape[1:axis], *idx.shape[1:], *data.shape[axis + 1 :]), data.dtype)
    for i in range(b):
        d, ix = data[i % data.shape[0]], idx[i % idx.shape[0]]
        for pre in itertools.product(*map(range, d.shape[: axis - 1])):
            for j in itertools.product(*map(range, ix.shape)):
                out[(i, *pre, *j)] = d[(*pre, fix(ix[j]))]
    return out


@pytest.mark.parametrize(
    ("dshape", "ishape", "axis", "e"),
    [
        ((4, 3), (2,), 0, 0),
        ((2, 5, 3), (2, 2), 1, 0),
        ((3, 4, 2), (3, 2), 1, 1),
        ((1, 4, 2), (3, 5), 2, 1),
        ((3, 4), (1, 2), 1, 1),
    ],
)
def test_gather_default(dshape, ishape, axis, e, trt, rng):
    a = rng.standard_normal(dshape).astype(np.float32)
    n = dshape[axis]
    idx = rng.integers(-n, n, ishape).astype(np.int32)
    net = trtdsl.Network("t")
    x, i = net.input("x", "float32", dshape), net.input("i", "int32", ishape)
    layer = net.trt.add_gather(x.trt, i.trt, axis)
    layer.num_elementwise_dims = e
    want = _loop_gather_default(a, idx, axis, e)
    np.testing.assert_array_equal(_finish(net, layer, {"x": a, "i": idx}, want.shape), want)


@pytest.mark.parametrize(
    ("dshape", "ishape", "e"),
    [((3, 4, 2), (5, 2), 0), ((3, 4, 2), (2, 3), 0), ((2, 4, 3), (2, 5, 1), 1), ((2, 3, 4), (2, 2), 1)],
)
def test_gather_nd(dshape, ishape, e, trt, rng):
    a = rng.standard_normal(dshape).astype(np.float32)
    k = ishape[-1]
    idx = np.stack([rng.integers(-n, n, ishape[:-1]) for n in dshape[e : e + k]], -1).astype(np.int64)
    net = trtdsl.Network("t")
    x, i = net.input("x", "float32", dshape), net.input("i", "int64", ishape)
    layer = net.trt.add_gather_v2(x.trt, i.trt, trt.GatherMode.ND)
    layer.num_elementwise_dims = e
    want = np.zeros(ishape[:-1] + dshape[e + k :], np.float32)
    for j in itertools.product(*map(range, ishape[:-1])):
        batch = j[:e]
        want[j] = a[batch + tuple(int(v) for v in idx[j])]  # negative entries count from the end
    np.testing.assert_array_equal(_finish(net, layer, {"x": a, "i": idx}, want.shape), want)


def test_gather_element_negative_and_out_of_bounds_zero(trt, rng):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    idx = np.array([[-1, 0, 5], [2, -3, 1]], np.int32)
    net = trtdsl.Network("t")
    x, i = net.input("x", "float32", a.shape), net.input("i", "int32", idx.shape)
    layer = net.trt.add_gather_v2(x.trt, i.trt, trt.GatherMode.ELEMENT)
    layer.axis = 1
    want = np.array([[a[0, 2], a[0, 0], 0.0], [a[1, 2], a[1, 0], a[1, 1]]], np.float32)  # 5 is OOB: zero
    np.testing.assert_array_equal(_finish(net, layer, {"x": a, "i": idx}, (2, 3)), want)


# ------------------------------------------------------------------ scatter
def test_scatter_element_and_nd(trt, rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    upd = rng.standard_normal((3, 2)).astype(np.float32)
    idx = np.array([[0, -1], [2, 1], [3, 0]], np.int32)
    net = trtdsl.Network("t")
    x, u, i = (
        net.input("x", "float32", a.shape),
        net.input("u", "float32", upd.shape),
        net.input("i", "int32", idx.shape),
    )
    layer = net.trt.add_scatter(x.trt, i.trt, u.trt, trt.ScatterMode.ELEMENT)
    layer.axis = 1
    want = a.copy()
    for r in range(3):
        for c in range(2):
            want[r, idx[r, c] % 4] = upd[r, c]
    np.testing.assert_array_equal(_finish(net, layer, {"x": a, "u": upd, "i": idx}, a.shape), want)

    nd_idx = np.array([[2, 3], [0, 1]], np.int64)
    vals = np.array([10.0, 20.0], np.float32)
    net = trtdsl.Network("t")
    x, u, i = net.input("x", "float32", a.shape), net.input("u", "float32", (2,)), net.input("i", "int64", (2, 2))
    layer = net.trt.add_scatter(x.trt, i.trt, u.trt, trt.ScatterMode.ND)
    want = a.copy()
    want[2, 3], want[0, 1] = 10.0, 20.0
    np.testing.assert_array_equal(_finish(net, layer, {"x": a, "u": vals, "i": nd_idx}, a.shape), want)


# --------------------------------------------------------------------- fill
@pytest.mark.parametrize(("dtype", "alpha", "beta"), [("float32", 1.5, 0.25), ("int32", 3, -2), ("int64", -4, 3)])
def test_fill_linspace_static(dtype, alpha, beta, trt):
    net = trtdsl.Network("t")
    layer = net.trt.add_fill((5,), trt.FillOperation.LINSPACE, getattr(trt, dtype))
    layer.alpha, layer.beta = alpha, beta
    want = (alpha + beta * np.arange(5)).astype(dtype)
    out = _finish(net, layer, {})
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, want)


def test_fill_linspace_dynamic_inputs_rank2(trt):
    """The documented example: shape (3, 4), alpha 1, beta (100, 10) -> 1 + 100 i + 10 j."""
    net = trtdsl.Network("t")
    layer = net.trt.add_fill((1,), trt.FillOperation.LINSPACE, trt.float32)
    layer.set_input(0, _const(net, [3, 4]))
    layer.set_input(1, net.constant(np.float32(1.0), "alpha").trt)
    layer.set_input(2, net.constant(np.array([100.0, 10.0], np.float32), "beta").trt)
    want = np.array([[1, 11, 21, 31], [101, 111, 121, 131], [201, 211, 221, 231]], np.float32)
    np.testing.assert_array_equal(_finish(net, layer, {}, (3, 4)), want)


@pytest.mark.parametrize("op", ["RANDOM_UNIFORM", "RANDOM_NORMAL"])
def test_fill_random_is_shape_checked_only(op, trt):
    # TensorRT's generator cannot be reproduced: only shape, dtype and range are meaningful.
    net = trtdsl.Network("t")
    layer = net.trt.add_fill((200, 3), getattr(trt.FillOperation, op), trt.float32)
    layer.alpha, layer.beta = 2.0, 3.0
    out = _finish(net, layer, {}, (200, 3))
    assert out.dtype == np.float32
    if op == "RANDOM_UNIFORM":
        assert out.min() >= 2.0 and out.max() <= 3.0
    else:
        assert abs(out.mean() - 2.0) < 0.5 and 2.0 < out.std() < 4.0


# ------------------------------------------------- padding, shape, concat
def test_padding_nd_pre_post_and_crop(rng):
    a = rng.standard_normal((1, 2, 4, 5)).astype(np.float32)
    net = trtdsl.Network("t")
    layer = net.trt.add_padding_nd(net.input("x", "float32", a.shape).trt, (1, -2), (2, 1))
    want = np.pad(a, ((0, 0), (0, 0), (1, 2), (0, 1)))[..., 2:]
    np.testing.assert_array_equal(_finish(net, layer, {"x": a}, (1, 2, 7, 4)), want)


def test_shape_layer_dynamic():
    net = trtdsl.Network("t")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 3))
    out = _finish(net, net.trt.add_shape(x.trt), {"x": np.zeros((3, 3), np.float32)}, (2,))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [3, 3])


def test_concatenation_default_axis_and_axis_1(rng):
    a, b = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal((2, 1)).astype(np.float32)
    net = trtdsl.Network("t")
    layer = net.trt.add_concatenation([net.input("a", "float32", a.shape).trt, net.input("b", "float32", b.shape).trt])
    layer.axis = 1  # TensorRT refuses negative axes
    np.testing.assert_array_equal(_finish(net, layer, {"a": a, "b": b}, (2, 4)), np.concatenate([a, b], 1))
    net = trtdsl.Network("t")
    layer = net.trt.add_concatenation([net.input("a", "float32", a.shape).trt, net.input("b", "float32", a.shape).trt])
    np.testing.assert_array_equal(_finish(net, layer, {"a": a, "b": 2 * a}, (4, 3)), np.concatenate([a, 2 * a]))


# ------------------------------------------ one-hot, non-zero, reverse
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_one_hot_axes_and_negative_indices(axis):
    idx = np.array([[0, -1, 2], [5, 1, -4]], np.int32)  # -1 -> class 3, -4 -> 0, 5 -> none (ONNX rule)
    depth = 4
    net = trtdsl.Network("t")
    i = net.input("i", "int32", idx.shape)
    values = net.constant(np.array([-1.0, 7.0], np.float32), "values")
    layer = net.trt.add_one_hot(i.trt, values.trt, net.constant(np.int32(depth), "depth").trt, axis)
    hot = np.full((2, 3, depth), -1.0, np.float32)
    for r, c in itertools.product(range(2), range(3)):
        k = idx[r, c] + depth if idx[r, c] < 0 else idx[r, c]
        if 0 <= k < depth:
            hot[r, c, k] = 7.0
    want = np.moveaxis(hot, -1, axis)
    np.testing.assert_array_equal(_finish(net, layer, {"i": idx}, want.shape), want)


@pytest.mark.parametrize("dtype", ["float32", "int32", "bool"])
def test_non_zero(dtype, trt, rng):
    mask = rng.random((3, 4)) > 0.6
    a = mask if dtype == "bool" else (mask * 3).astype(dtype)
    net = trtdsl.Network("t")
    layer = net.trt.add_non_zero(net.input("x", dtype, a.shape).trt, trt.int64)
    want = np.array([[r, c] for r in range(3) for c in range(4) if a[r, c]], np.int64).reshape(-1, 2).T
    out = _finish(net, layer, {"x": a}, (2, -1))  # the count is data-dependent
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, want)


def test_reverse_sequence(rng):
    a = rng.standard_normal((5, 3, 2)).astype(np.float32)  # (seq, batch, feature): TensorRT's defaults
    lens = np.array([5, 2, 0], np.int32)
    net = trtdsl.Network("t")
    x, n = net.input("x", "float32", a.shape), net.input("n", "int32", (3,))
    layer = net.trt.add_reverse_sequence(x.trt, n.trt)
    want = a.copy()
    for b, length in enumerate(lens):
        want[:length, b] = a[:length, b][::-1]
    np.testing.assert_array_equal(_finish(net, layer, {"x": a, "n": lens}, a.shape), want)
