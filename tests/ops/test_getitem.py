"""Tensor.__getitem__ and ops.slice against NumPy indexing, static and with dynamic axes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trtdsl
from trtdsl import ops, reference
from trtdsl.errors import ShapeError

pytestmark = pytest.mark.usefixtures("trt")

S = slice
INDEXES = [
    0,
    -1,
    (1, 2),
    (S(None), 0),
    S(1, None),
    S(None, None, -1),
    S(None, None, 2),
    (S(None), S(None, None, -2)),
    (S(-3, None), S(1, -1)),
    (Ellipsis, 0),
    (Ellipsis, S(None, None, -1), None),
    (None, 1, Ellipsis, None),
    (S(3, 0, -1), S(None), 2),
    (S(-1, -10, -2),),
    (S(10, 20),),  # empty slice
    (S(None), [2, 0, 2]),
    ([[0, 1], [1, 0]], S(None, None, -1)),
    (S(1, None), np.array([-1, 0]), 1),
    (0, 1, 2),  # scalar
]


def _feed(shape, rng):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("index", INDEXES, ids=repr)
def test_getitem_static(index, rng):
    a = _feed((4, 3, 5), rng)
    net = trtdsl.Network("t")
    x = net.input("x", "float32", a.shape)
    y = x[index]
    want = a[index]
    assert y.shape == want.shape
    net.output(y, "y")
    np.testing.assert_array_equal(reference.run(net, {"x": a})["y"], want)


@pytest.mark.parametrize("index", INDEXES, ids=repr)
@pytest.mark.parametrize("batch", [1, 4])
def test_getitem_dynamic_first_axis(index, batch, rng):
    """Axis 0 is dynamic: ints and slices on it are computed from the runtime shape."""
    a = _feed((batch, 3, 5), rng)
    try:
        want = a[index]
    except IndexError:
        pytest.skip("index out of bounds for this batch size (undefined in TensorRT)")
    net = trtdsl.Network("t")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 3, 5))
    y = x[index]
    static = _feed((4, 3, 5), rng)[index].shape  # the static axes of the result match any batch
    assert len(y.shape) == len(static)
    assert all(r in (-1, s) for r, s in zip(y.shape, want.shape))
    net.output(y, "y")
    np.testing.assert_array_equal(reference.run(net, {"x": a})["y"], want)


def test_getitem_dynamic_reported_shapes():
    net = trtdsl.Network("t")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 3, 5))
    assert x[:, 1:].shape == (-1, 2, 5)
    assert x[0].shape == (3, 5)
    assert x[-1].shape == (3, 5)
    assert x[..., ::-1].shape == (-1, 3, 5)
    assert x[1:].shape == (-1, 3, 5)
    assert x[:, None, 0].shape == (-1, 1, 5)


def test_getitem_two_dynamic_axes(rng):
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (trtdsl.Dim("b", 1, 2, 4), trtdsl.Dim("s", 1, 6, 9), 2))
    y = x[:, -3::-2, 1]
    a = _feed((3, 8, 2), rng)
    net.output(y, "y")
    assert y.shape == (-1, -1)
    np.testing.assert_array_equal(reference.run(net, {"x": a})["y"], a[:, -3::-2, 1])


def test_getitem_with_index_tensor(rng):
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (4, 3))
    i = net.input("i", "int32", (2, 2))
    y = x[i, 1:]
    a, idx = _feed((4, 3), rng), np.array([[3, 0], [1, -1]], np.int32)
    net.output(y, "y")
    assert y.shape == (2, 2, 2)
    np.testing.assert_array_equal(reference.run(net, {"x": a, "i": idx})["y"], a[idx, 1:])


def test_getitem_noop_and_names():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (4, 3))
    assert x[:] is x
    assert x[...] is x
    with net.scope("head"):
        y = x[1:, 0]
    assert y.name == "head.getitem.out"
    names = [layer.name for layer in net.layers()]
    assert names == ["head.getitem.slice", "head.getitem.squeeze_axes", "head.getitem"]


def test_getitem_errors():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (4, 3))
    with pytest.raises(ShapeError, match="getitem 'x': index 3 is out of bounds for dim 1 with size 3"):
        x[0, 3]
    with pytest.raises(ShapeError, match=r"getitem 'x': 3 indices for a tensor of rank 2 \(shape \(4, 3\)\)"):
        x[0, 0, 0]
    with pytest.raises(ShapeError, match="slice step cannot be zero"):
        x[::0]
    with pytest.raises(ShapeError, match="only one integer-array index is supported"):
        x[[0], [1]]
    with pytest.raises(ShapeError, match="boolean masks are not supported"):
        x[np.array([True, False, True, False])]
    with pytest.raises(ShapeError, match="index 7 is out of bounds for dim 0 with size 4"):
        x[[0, 7]]
    with pytest.raises(ShapeError, match="single ellipsis"):
        x[..., 0, ...]
    with pytest.raises(ShapeError, match="unsupported index 'a'"):
        x["a"]


@pytest.mark.parametrize(
    ("dim", "start", "end", "step"), [(0, 1, 3, 1), (1, None, None, -1), (-1, 4, 0, -2), (2, -2, None, 1), (1, 5, 9, 1)]
)
def test_slice_op(dim, start, end, step, rng):
    a = _feed((4, 3, 5), rng)
    net = trtdsl.Network("t")
    x = net.input("x", "float32", a.shape)
    y = ops.slice(x, dim, start, end, step)
    index = (S(None),) * (dim % 3) + (S(start, end, step),)
    want = a[index]
    assert y.shape == want.shape
    net.output(y, "y")
    np.testing.assert_array_equal(reference.run(net, {"x": a})["y"], want)


def test_slice_half_precision_network(rng):
    a = _feed((2, 6), rng)
    net = trtdsl.Network("t", dtype="float16")
    x = net.to_compute(net.input("x", "float32", a.shape))
    y = x[:, ::-3]
    assert y.dtype == "float16"
    net.output(y, "y")
    np.testing.assert_array_equal(reference.run(net, {"x": a})["y"], a.astype(np.float16)[:, ::-3].astype(np.float32))


_bound = st.one_of(st.none(), st.integers(-7, 7))
_slices = st.builds(S, _bound, _bound, st.sampled_from([None, 1, 2, 3, -1, -2, -3]))
_items = st.one_of(_slices, st.integers(-3, 2), st.none(), st.just(Ellipsis))


@settings(max_examples=60, deadline=None)
@given(index=st.lists(_items, max_size=4).map(tuple), dynamic=st.booleans())
def test_getitem_matches_numpy_property(index, dynamic):
    """Random basic indexes of a (3, 4, 5) array, with axis 0 static or dynamic."""
    a = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    try:
        want = a[index]
    except IndexError:
        return  # NumPy refuses it (too many indices, two ellipses, out of bounds)
    net = trtdsl.Network("t")
    net.dim("n", 1, 3, 4)
    x = net.input("x", "float32", ("n" if dynamic else 3, 4, 5))
    y = x[index]
    net.output(y, "y")
    np.testing.assert_array_equal(reference.run(net, {"x": a})["y"], want)
