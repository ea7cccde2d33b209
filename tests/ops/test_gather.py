"""gather, index_select, embedding, one_hot, scatter, scatter_nd against torch and NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trtdsl
from trtdsl import ops, reference
from trtdsl.errors import ShapeError

pytestmark = pytest.mark.usefixtures("trt")


def _run(net, y, feeds, reported):
    assert y.shape == tuple(reported)
    net.output(y, "y")
    return reference.run(net, feeds)["y"]


@pytest.mark.parametrize(
    ("shape", "ishape", "dim"),
    [((3, 4), (3, 2), 1), ((3, 4), (2, 4), 0), ((2, 3, 4), (2, 5, 4), 1), ((2, 3, 4), (1, 2, 3), -1)],
)
@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
def test_gather(shape, ishape, dim, index_dtype, rng):
    a = rng.standard_normal(shape).astype(np.float32)
    idx = rng.integers(0, shape[dim], ishape).astype(index_dtype)
    net = trtdsl.Network("t")
    x, i = net.input("x", "float32", shape), net.input("i", index_dtype, ishape)
    want = torch.gather(torch.from_numpy(a), dim, torch.from_numpy(idx.astype(np.int64))).numpy()
    np.testing.assert_array_equal(_run(net, ops.gather(x, dim, i), {"x": a, "i": idx}, want.shape), want)


def test_gather_constant_index_dynamic_batch(rng):
    net = trtdsl.Network("t")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 4))
    i = net.input("i", "int64", ("batch", 2))
    a, idx = rng.standard_normal((3, 4)).astype(np.float32), np.array([[0, 3], [1, 1], [2, 0]])
    want = torch.gather(torch.from_numpy(a), 1, torch.from_numpy(idx)).numpy()
    np.testing.assert_array_equal(_run(net, ops.gather(x, 1, i), {"x": a, "i": idx}, (-1, 2)), want)


def test_gather_errors():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (3, 4))
    f = net.input("f", "float32", (3, 4))
    with pytest.raises(
        ShapeError, match=r"gather 'x': index has rank 1, input has rank 2; torch\.gather needs equal ranks"
    ):
        ops.gather(x, 1, [0, 1])
    with pytest.raises(ShapeError, match=r"gather 'x': index shape \(4, 1\) exceeds input shape \(3, 4\) in dim 0"):
        ops.gather(x, 1, np.zeros((4, 1), np.int64))
    with pytest.raises(ShapeError, match="gather 'x': index 'f' has dtype float32; expected int32 or int64"):
        ops.gather(x, 1, f)


@pytest.mark.parametrize(("dim", "index"), [(0, [2, 0]), (1, [3, -1, 0, 3]), (-1, [1])])
def test_index_select(dim, index, rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    net = trtdsl.Network("t")
    x = net.input("x", "float32", a.shape)
    t_index = torch.tensor([i % a.shape[dim] for i in index], dtype=torch.int64)
    want = torch.index_select(torch.from_numpy(a), dim, t_index).numpy()
    y = ops.index_select(x, dim, np.asarray(index, np.int64))
    np.testing.assert_array_equal(_run(net, y, {"x": a}, want.shape), want)


def test_index_select_tensor_index_negative(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    net = trtdsl.Network("t")
    x, i = net.input("x", "float32", a.shape), net.input("i", "int32", (3,))
    idx = np.array([-1, 0, -4], np.int32)  # TensorRT counts negative indices from the end
    want = a[:, idx]
    np.testing.assert_array_equal(_run(net, ops.index_select(x, 1, i), {"x": a, "i": idx}, (3, 3)), want)
    with pytest.raises(ShapeError, match=r"index_select 'x': index must be 1-D, got shape \(1, 2\)"):
        ops.index_select(x, 0, [[0, 1]])
    with pytest.raises(ShapeError, match="index_select 'x': index is empty; TensorRT has no empty constants"):
        ops.index_select(x, 0, np.zeros(0, np.int64))


@pytest.mark.parametrize("compute", ["float32", "float16"])
def test_embedding(compute, rng):
    table = rng.standard_normal((10, 6)).astype(np.float32)
    ids = rng.integers(0, 10, (3, 5)).astype(np.int32)
    net = trtdsl.Network("t", dtype=compute)
    net.dim("batch", 1, 2, 4)
    i = net.input("ids", "int32", ("batch", 5))
    with net.scope("encoder"):
        y = ops.embedding(i, table)
    assert y.name == "encoder.embedding.out"
    assert "encoder.embedding.weight" in net.weights
    assert y.dtype == compute
    weight = torch.from_numpy(table).to(getattr(torch, compute)).float()
    want = F.embedding(torch.from_numpy(ids.astype(np.int64)), weight).numpy()
    np.testing.assert_array_equal(_run(net, y, {"ids": ids}, (-1, 5, 6)), want)


def test_embedding_errors():
    net = trtdsl.Network("t")
    i = net.input("ids", "float32", (3,))
    j = net.input("j", "int32", (3,))
    with pytest.raises(ShapeError, match="embedding 'ids': index 'ids' has dtype float32; expected int32 or int64"):
        ops.embedding(i, np.zeros((4, 2)))
    with pytest.raises(ShapeError, match=r"embedding: weight must be 2-D .* got shape \(4,\)"):
        ops.embedding(j, np.zeros(4))


@pytest.mark.parametrize("shape", [(5,), (2, 3), ()])
@pytest.mark.parametrize("index_dtype", ["int32", "int64"])
def test_one_hot(shape, index_dtype, rng):
    idx = rng.integers(0, 4, shape).astype(index_dtype)
    net = trtdsl.Network("t")
    i = net.input("i", index_dtype, shape)
    y = ops.one_hot(i, 4)
    want = F.one_hot(torch.from_numpy(idx.astype(np.int64)), 4).numpy()
    assert y.dtype == "int64"
    np.testing.assert_array_equal(_run(net, y, {"i": idx}, want.shape), want)


def test_one_hot_float_values_and_errors(rng):
    net = trtdsl.Network("t")
    i = net.input("i", "int32", (3,))
    y = ops.one_hot(i, 3, dtype="float32")
    np.testing.assert_array_equal(_run(net, y, {"i": np.array([2, 0, 1], np.int32)}, (3, 3)), np.eye(3)[[2, 0, 1]])
    with pytest.raises(ShapeError, match="one_hot 'i': num_classes must be a positive int"):
        ops.one_hot(i, -1)


@pytest.mark.parametrize(
    ("shape", "ishape", "dim"), [((3, 5), (2, 5), 0), ((3, 5), (3, 2), 1), ((2, 3, 4), (2, 3, 1), 2)]
)
def test_scatter(shape, ishape, dim, rng):
    a = rng.standard_normal(shape).astype(np.float32)
    src = rng.standard_normal(ishape).astype(np.float32)
    # Distinct indices along dim: duplicates are undefined in TensorRT.
    perm = np.argsort(rng.random((*ishape[:dim], shape[dim], *ishape[dim + 1 :])), axis=dim)
    idx = np.take(perm, np.arange(ishape[dim]), axis=dim)
    net = trtdsl.Network("t")
    x, s = net.input("x", "float32", shape), net.input("s", "float32", ishape)
    want = torch.from_numpy(a).scatter(dim, torch.from_numpy(idx), torch.from_numpy(src)).numpy()
    np.testing.assert_array_equal(_run(net, ops.scatter(x, dim, idx, s), {"x": a, "s": src}, shape), want)


def test_scatter_scalar_src(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    idx = np.array([[1], [3], [0]])
    net = trtdsl.Network("t")
    x = net.input("x", "float32", a.shape)
    want = torch.from_numpy(a).scatter(1, torch.from_numpy(idx), -2.0).numpy()
    np.testing.assert_array_equal(_run(net, ops.scatter(x, 1, idx, -2.0), {"x": a}, (3, 4)), want)


def test_scatter_nd(rng):
    a = rng.standard_normal((4, 3, 2)).astype(np.float32)
    idx = np.array([[3], [0]])
    upd = rng.standard_normal((2, 3, 2)).astype(np.float32)
    net = trtdsl.Network("t")
    x, u = net.input("x", "float32", a.shape), net.input("u", "float32", upd.shape)
    want = a.copy()
    want[[3, 0]] = upd
    np.testing.assert_array_equal(_run(net, ops.scatter_nd(x, idx, u), {"x": a, "u": upd}, a.shape), want)
    with pytest.raises(ShapeError, match=r"scatter_nd 'x': updates have shape \(2, 3, 2\), expected \(2, 2\)"):
        ops.scatter_nd(x, np.array([[3, 1], [0, 0]]), u)
