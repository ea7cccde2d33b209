"""reshape, permute, transpose, flatten, squeeze, unsqueeze, cast, constant against NumPy/torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trtdsl
from trtdsl import ops, reference
from trtdsl.errors import ShapeError

pytestmark = pytest.mark.usefixtures("trt")


def _net(shape, dtype="float32", compute="float32", batch=False):
    net = trtdsl.Network("shape_test", dtype=compute)
    if batch:
        net.dim("batch", 1, 2, 4)
    x = net.input("x", dtype, shape)
    return net, x


def _run(net, y, feeds, reported):
    """Mark y, check TensorRT's reported shape, run the interpreter."""
    assert y.shape == tuple(reported)
    net.output(y, "y")
    return reference.run(net, feeds)["y"]


@pytest.mark.parametrize(
    ("shape", "target"),
    [((2, 3, 4), (6, 4)), ((2, 3, 4), (-1,)), ((2, 3, 4), (4, -1, 2)), ((6,), (1, 2, 1, 3)), ((2, 0, 3), (0, 5))],
)
def test_reshape_static(shape, target, rng):
    a = rng.standard_normal(shape).astype(np.float32)
    net, x = _net(shape)
    want = a.reshape(target)
    np.testing.assert_array_equal(_run(net, ops.reshape(x, target), {"x": a}, want.shape), want)


@pytest.mark.parametrize(
    ("target", "reported", "numpy_target"),
    [
        ((-1, 12), (-1, 12), (-1, 12)),
        ((-1, 3, 2, 2), (-1, 3, 2, 2), (-1, 3, 2, 2)),
        ((-1, -1, 2, 2), (-1, 3, 2, 2), (None, 3, 2, 2)),  # first -1 keeps the dynamic batch
        ((-1,), (-1,), (-1,)),
    ],
)
@pytest.mark.parametrize("batch", [1, 4])
def test_reshape_dynamic_batch(target, reported, numpy_target, batch, rng):
    a = rng.standard_normal((batch, 3, 4)).astype(np.float32)
    net, x = _net(("batch", 3, 4), batch=True)
    want = a.reshape(tuple(batch if d is None else d for d in numpy_target))
    np.testing.assert_array_equal(_run(net, ops.reshape(x, target), {"x": a}, reported), want)


def test_reshape_two_dynamic_axes_split_last(rng):
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (trtdsl.Dim("b", 1, 2, 4), trtdsl.Dim("s", 1, 5, 8), 12))
    a = rng.standard_normal((3, 5, 12)).astype(np.float32)
    y = x.reshape(-1, -1, 3, 4)
    np.testing.assert_array_equal(_run(net, y, {"x": a}, (-1, -1, 3, 4)), a.reshape(3, 5, 3, 4))


def test_reshape_from_shape_tensor(rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    net, x = _net((2, 3, 4))
    shape = net.constant(np.array([4, 6], np.int64), "target")
    np.testing.assert_array_equal(_run(net, ops.reshape(x, shape), {"x": a}, (4, 6)), a.reshape(4, 6))


def test_reshape_errors():
    _, x = _net((2, 3))
    with pytest.raises(ShapeError, match=r"reshape 'x': cannot reshape \(2, 3\) to \(4, 2\): 6 elements vs 8"):
        ops.reshape(x, (4, 2))
    with pytest.raises(ShapeError, match=r"cannot reshape \(2, 3\) to \(4, -1\): 6 elements are not a multiple of 4"):
        ops.reshape(x, (4, -1))
    with pytest.raises(ShapeError, match="can infer only one -1"):
        ops.reshape(x, (-1, -1))
    _, x = _net(("batch", 3, 4), batch=True)
    with pytest.raises(ShapeError, match="only one -1 can be inferred"):
        ops.reshape(x, (2, -1, -1))


@pytest.mark.parametrize("compute", ["float32", "float16"])
@pytest.mark.parametrize("dims", [(0, 1, 2), (2, 0, 1), (1, 2, 0), (-1, 0, 1)])
def test_permute(dims, compute, rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    net, x = _net((2, 3, 4), compute=compute)
    x = net.to_compute(x)
    want = torch.from_numpy(a).to(getattr(torch, compute)).permute(*dims).float().numpy()
    np.testing.assert_array_equal(_run(net, ops.permute(x, dims), {"x": a}, want.shape), want)


def test_permute_dynamic_and_errors(rng):
    net, x = _net(("batch", 3, 4), batch=True)
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    with pytest.raises(ShapeError, match=r"permute 'x': dims \(0, 0, 1\) are not a permutation of 0..2"):
        ops.permute(x, (0, 0, 1))
    with pytest.raises(ShapeError, match="permute dim 3 is out of range for a tensor of rank 3"):
        ops.permute(x, (0, 1, 3))
    np.testing.assert_array_equal(_run(net, x.permute(2, 0, 1), {"x": a}, (4, -1, 3)), a.transpose(2, 0, 1))


@pytest.mark.parametrize(("d0", "d1"), [(0, 1), (-1, -2), (0, 3), (1, 1)])
def test_transpose(d0, d1, rng):
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    net, x = _net(a.shape)
    want = torch.from_numpy(a).transpose(d0, d1).numpy()
    np.testing.assert_array_equal(_run(net, ops.transpose(x, d0, d1), {"x": a}, want.shape), want)


def test_tensor_T(rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    net, x = _net(a.shape)
    np.testing.assert_array_equal(_run(net, x.T, {"x": a}, (4, 3, 2)), a.T)


@pytest.mark.parametrize(("start", "end"), [(0, -1), (1, -1), (0, 1), (1, 2), (2, 3), (-2, -1), (3, 3)])
def test_flatten_static(start, end, rng):
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    net, x = _net(a.shape)
    want = torch.flatten(torch.from_numpy(a), start, end).numpy()
    np.testing.assert_array_equal(_run(net, ops.flatten(x, start, end), {"x": a}, want.shape), want)


@pytest.mark.parametrize(
    ("start", "end", "reported"),
    [(1, -1, (-1, 60)), (0, 1, (-1, 4, 5)), (0, -1, (-1,)), (2, 3, (-1, 3, 20))],
)
def test_flatten_dynamic_batch(start, end, reported, rng):
    a = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
    net = trtdsl.Network("t")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 3, 4, 5))
    want = torch.flatten(torch.from_numpy(a), start, end).numpy()
    np.testing.assert_array_equal(_run(net, x.flatten(start, end), {"x": a}, reported), want)


def test_flatten_middle_with_two_dynamic_axes_uses_shape_tensor(rng):
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (trtdsl.Dim("b", 1, 2, 4), 3, 4, trtdsl.Dim("w", 1, 5, 8)))
    y = ops.flatten(x, 1, 2, name="merge")
    assert y.name == "merge.out"
    assert y.layer.num_inputs == 2  # reshape dims come from a shape tensor
    a = rng.standard_normal((2, 3, 4, 7)).astype(np.float32)
    np.testing.assert_array_equal(_run(net, y, {"x": a}, (-1, 12, -1)), a.reshape(2, 12, 7))


def test_flatten_errors():
    _, x = _net((2, 3, 4))
    with pytest.raises(ShapeError, match="flatten 'x': start_dim 2 comes after end_dim 1"):
        ops.flatten(x, 2, 1)


@pytest.mark.parametrize(("shape", "dim"), [((1, 3, 1), 0), ((1, 3, 1), -1), ((1, 3, 1), (0, 2)), ((1, 3, 1), None)])
def test_squeeze(shape, dim, rng):
    a = rng.standard_normal(shape).astype(np.float32)
    net, x = _net(shape)
    want = np.squeeze(a, dim)
    np.testing.assert_array_equal(_run(net, ops.squeeze(x, dim), {"x": a}, want.shape), want)


def test_squeeze_error():
    _, x = _net((1, 3))
    with pytest.raises(ShapeError, match=r"squeeze 'x': dim 1 has size 3, not 1 \(shape \(1, 3\)\)"):
        ops.squeeze(x, 1)


@pytest.mark.parametrize("dim", [0, 1, 2, -1, (0, 3), (-1, 1)])
def test_unsqueeze(dim, rng):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    net, x = _net((2, 3))
    want = np.expand_dims(a, dim)
    np.testing.assert_array_equal(_run(net, ops.unsqueeze(x, dim), {"x": a}, want.shape), want)


def test_unsqueeze_dynamic(rng):
    net, x = _net(("batch", 3), batch=True)
    a = rng.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(_run(net, x.unsqueeze(1), {"x": a}, (-1, 1, 3)), a[:, None])


@pytest.mark.parametrize(
    ("src", "dst"), [("float32", "int32"), ("float32", "float16"), ("int32", "float32"), ("float32", "bool")]
)
def test_cast(src, dst):
    a = np.array([[-2.7, -0.5, 0.0], [0.4, 1.5, 3.9]]).astype(src)
    net, x = _net((2, 3), dtype=src)
    y = ops.cast(x, dst)
    assert y.dtype == dst
    want = torch.from_numpy(a).to(getattr(torch, dst)).numpy()  # torch truncates float -> int toward zero
    np.testing.assert_array_equal(_run(net, y, {"x": a}, (2, 3)), want)


def test_cast_same_dtype_is_free():
    net, x = _net((2, 3))
    assert ops.cast(x, "float32") is x
    assert net.trt.num_layers == 0


def test_constant_and_names():
    net, x = _net((2, 3))
    with net.scope("block"):
        c = ops.constant(net, np.arange(6, dtype=np.float32).reshape(2, 3), "bias")
        y = x + c
        z = ops.reshape(y, (3, 2))
    assert c.name == "block.bias.out"
    assert z.name == "block.reshape.out"
    assert "block.bias" in net.weights
    out = _run(net, z, {"x": np.ones((2, 3), np.float32)}, (3, 2))
    np.testing.assert_array_equal(out, (np.arange(6) + 1).reshape(3, 2))
