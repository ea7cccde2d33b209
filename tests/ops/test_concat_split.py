"""concat/cat, split, chunk, stack against NumPy and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trtdsl
from trtdsl import ops, reference
from trtdsl.errors import ShapeError, TrtdslError

pytestmark = pytest.mark.usefixtures("trt")


def _inputs(net, shapes, dtype="float32"):
    return [net.input(f"x{i}", dtype, s) for i, s in enumerate(shapes)]


@pytest.mark.parametrize(
    ("shapes", "dim"),
    [([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 5)], 1), ([(2, 3, 4), (2, 3, 2)], -1), ([(5,)], 0)],
)
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_concat(shapes, dim, dtype, rng):
    net = trtdsl.Network("t")
    xs = _inputs(net, shapes, dtype)
    arrays = [(rng.standard_normal(s) * 10).astype(dtype) for s in shapes]
    y = ops.concat(xs, dim)
    want = np.concatenate(arrays, dim)
    assert y.shape == want.shape
    net.output(y, "y")
    out = reference.run(net, {f"x{i}": a for i, a in enumerate(arrays)})["y"]
    np.testing.assert_array_equal(out, want)


def test_cat_dynamic_batch_with_constant(rng):
    net = trtdsl.Network("t", dtype="float16")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 3))
    y = ops.cat([net.to_compute(x), net.to_compute(x)], 1)
    assert y.shape == (-1, 6)
    assert y.dtype == "float16"
    net.output(y, "y")
    a = rng.standard_normal((3, 3)).astype(np.float32)
    want = np.concatenate([a, a], 1).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(reference.run(net, {"x": a})["y"], want)


def test_concat_errors():
    net = trtdsl.Network("t")
    a, b, c = _inputs(net, [(2, 3), (2, 3, 1), (4, 4)])
    i = net.input("i", "int32", (2, 3))
    with pytest.raises(
        ShapeError, match=r"concat: tensors have ranks \[2, 3\] \('x0', 'x1'\); all must have the same rank"
    ):
        ops.concat([a, b])
    with pytest.raises(
        ShapeError, match=r"concat along dim 0: 'x2' has shape \(4, 4\), 'x0' has \(2, 3\); they differ in dim 1"
    ):
        ops.concat([a, c])
    with pytest.raises(ShapeError, match=r"concat: tensors have different dtypes \['float32', 'int32'\]"):
        ops.concat([a, i])
    with pytest.raises(ShapeError, match="concat dim 2 is out of range for a tensor of rank 2"):
        ops.concat([a, a], 2)


@pytest.mark.parametrize(("size", "dim"), [(2, 0), (3, 0), ([1, 4, 2], 0), (1, 1), ([2, 0, 1], 1), (5, -1)])
def test_split(size, dim, rng):
    a = rng.standard_normal((7, 3, 5)).astype(np.float32)
    net = trtdsl.Network("t")
    x = net.input("x", "float32", a.shape)
    parts = ops.split(x, size, dim, name="heads")
    want = torch.split(torch.from_numpy(a), size, dim)
    assert [p.shape for p in parts] == [tuple(w.shape) for w in want]
    assert [p.name for p in parts] == [f"heads.{i}.out" for i in range(len(want))]
    for i, p in enumerate(parts):
        net.output(p, f"y{i}")
    out = reference.run(net, {"x": a})
    for i, w in enumerate(want):
        np.testing.assert_array_equal(out[f"y{i}"], w.numpy())


def test_split_dynamic_other_axis(rng):
    net = trtdsl.Network("t")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 6))
    q, _k, v = ops.split(x, 2, 1)
    assert q.shape == (-1, 2)
    net.output(v, "v")
    a = rng.standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_array_equal(reference.run(net, {"x": a})["v"], a[:, 4:])


def test_split_errors():
    net = trtdsl.Network("t")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 5))
    with pytest.raises(ShapeError, match=r"split 'x': sections \[2, 2\] sum to 4, but dim 1 has size 5"):
        ops.split(x, [2, 2], 1)
    with pytest.raises(ShapeError, match=r"split 'x': dim 0 is dynamic; split needs its size \(shape \(-1, 5\)\)"):
        ops.split(x, 1, 0)
    with pytest.raises(ShapeError, match="split size must be positive"):
        ops.split(x, 0, 1)


@pytest.mark.parametrize(("n", "chunks"), [(6, 3), (7, 3), (5, 2), (2, 4)])
def test_chunk(n, chunks, rng):
    a = rng.standard_normal((2, n)).astype(np.float32)
    net = trtdsl.Network("t")
    x = net.input("x", "float32", a.shape)
    parts = ops.chunk(x, chunks, 1)
    want = torch.chunk(torch.from_numpy(a), chunks, 1)
    assert len(parts) == len(want)
    for i, p in enumerate(parts):
        net.output(p, f"y{i}")
    out = reference.run(net, {"x": a})
    for i, w in enumerate(want):
        np.testing.assert_array_equal(out[f"y{i}"], w.numpy())


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_stack(dim, rng):
    arrays = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(3)]
    net = trtdsl.Network("t")
    xs = _inputs(net, [(2, 3)] * 3)
    y = ops.stack(xs, dim, name="stacked")
    want = np.stack(arrays, dim)
    assert y.shape == want.shape
    assert y.name == "stacked.out"
    net.output(y, "y")
    out = reference.run(net, {f"x{i}": a for i, a in enumerate(arrays)})["y"]
    np.testing.assert_array_equal(out, want)


def test_stack_errors():
    net = trtdsl.Network("t")
    a, b = _inputs(net, [(2, 3), (3, 2)])
    with pytest.raises(ShapeError, match=r"stack: 'x1' has shape \(3, 2\), 'x0' has \(2, 3\); all must match"):
        ops.stack([a, b])
    with pytest.raises(TrtdslError, match=r"needs at least one trtdsl\.Tensor"):
        ops.stack([], 0)
