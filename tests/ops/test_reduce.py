"""Reductions, var/std, top-k, arg-max/min and cumsum against torch on the CPU."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import trtdsl  # noqa: E402
from trtdsl import ShapeError, ops, reference  # noqa: E402

from ._oprun import run_many as run  # noqa: E402

pytestmark = pytest.mark.usefixtures("trt")

TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float16": dict(rtol=1e-2, atol=2e-2)}


def t64(x: np.ndarray):
    return torch.from_numpy(x.astype(np.float64))


def torch_reduce(fn, x, dim, keepdim):
    # torch's amax/amin take dim=() for "all"; sum/mean/prod take dim=None.
    if dim is None:
        out = fn(t64(x)) if fn not in (torch.amax, torch.amin) else fn(t64(x), dim=tuple(range(x.ndim)))
        return out.reshape((1,) * x.ndim if keepdim else ()).numpy()
    if fn is torch.prod and isinstance(dim, tuple):
        out = t64(x)
        for d in sorted((d % x.ndim for d in dim), reverse=True):
            out = torch.prod(out, d, keepdim=keepdim)
        return out.numpy()
    return fn(t64(x), dim, keepdim=keepdim).numpy()


REDUCTIONS = {
    "sum": (ops.sum, torch.sum),
    "mean": (ops.mean, torch.mean),
    "amax": (ops.amax, torch.amax),
    "amin": (ops.amin, torch.amin),
    "prod": (ops.prod, torch.prod),
}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [None, 0, -1, 2, (1, 2), (0, -1)])
@pytest.mark.parametrize("which", sorted(REDUCTIONS))
def test_reduce_matches_torch(which, dim, keepdim, dtype, rng):
    op, ref = REDUCTIONS[which]
    # Values near 1 keep products of up to 60 factors well inside float16.
    x = rng.uniform(0.8, 1.2, (2, 3, 4, 5)).astype(np.float32) * rng.choice([-1, 1], (2, 3, 4, 5))
    (y,), (reported,), _ = run(lambda t: op(t, dim, keepdim), x, dtype=dtype)
    expected = torch_reduce(ref, x, dim, keepdim)
    assert reported == expected.shape == y.shape
    np.testing.assert_allclose(y, expected, **TOL[dtype])


def test_tensor_methods_reduce(rng):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    ys, shapes, _ = run(lambda t: (t.sum(1), t.mean((0, 2), True), t.max(-1), t.min(), ops.sum(t, ())), x)
    tx = torch.from_numpy(x)
    expected = [tx.sum(1), tx.mean((0, 2), keepdim=True), tx.amax(-1), tx.amin(), tx.sum()]
    for y, shape, e in zip(ys, shapes, expected, strict=True):
        assert shape == tuple(e.shape)
        np.testing.assert_allclose(y, e.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("correction", [0, 1])
@pytest.mark.parametrize(("dim", "keepdim"), [(None, False), (1, True), ((0, 2), False), (-1, False)])
def test_var_std_match_torch(dim, keepdim, correction, rng):
    x = (rng.standard_normal((3, 4, 5)) * 2 + 1).astype(np.float32)
    (v, s), shapes, _ = run(
        lambda t: (
            ops.var(t, dim, correction=correction, keepdim=keepdim),
            ops.std(t, dim, correction=correction, keepdim=keepdim),
        ),
        x,
    )
    ev = torch.var(t64(x), dim, correction=correction, keepdim=keepdim).numpy()
    es = torch.std(t64(x), dim, correction=correction, keepdim=keepdim).numpy()
    assert shapes == [ev.shape, es.shape]
    np.testing.assert_allclose(v, ev, rtol=1e-5)
    np.testing.assert_allclose(s, es, rtol=1e-5)


def distinct(rng, shape) -> np.ndarray:
    """Values without ties, so indices are unambiguous."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.5 - 7).astype(np.float32)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dim", [0, 1, 3, -1, -2])
def test_argmax_argmin_match_torch(dim, keepdim, dtype, rng):
    x = distinct(rng, (2, 3, 4, 5))
    (imax, imin), shapes, _ = run(lambda t: (ops.argmax(t, dim, keepdim), ops.argmin(t, dim, keepdim)), x, dtype=dtype)
    emax = torch.argmax(torch.from_numpy(x), dim, keepdim=keepdim).numpy()
    emin = torch.argmin(torch.from_numpy(x), dim, keepdim=keepdim).numpy()
    assert shapes == [emax.shape, emin.shape]
    assert imax.dtype == np.int32  # torch gives int64; TensorRT's TopK indices default to int32
    np.testing.assert_array_equal(imax, emax)
    np.testing.assert_array_equal(imin, emin)


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize(("k", "dim"), [(1, -1), (3, -1), (2, 1), (4, 2), (2, 0)])
def test_topk_matches_torch(k, dim, largest, rng):
    x = distinct(rng, (3, 4, 6))
    (values, indices), shapes, _ = run(lambda t: ops.topk(t, k, dim, largest), x)
    ev, ei = torch.topk(torch.from_numpy(x), k, dim, largest=largest)
    assert shapes == [tuple(ev.shape)] * 2
    np.testing.assert_array_equal(values, ev.numpy())
    np.testing.assert_array_equal(indices, ei.numpy())


def test_topk_int64_indices(rng):
    x = distinct(rng, (2, 6))
    (_, indices), _, _net = run(lambda t: ops.topk(t, 2, index_dtype="int64"), x)
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, torch.topk(torch.from_numpy(x), 2).indices.numpy())


def test_topk_ties_take_the_lower_index():
    x = np.array([[1.0, 3.0, 2.0, 3.0, 3.0], [5.0, 5.0, 1.0, 1.0, 0.0]], np.float32)
    (values, indices), _, _ = run(lambda t: ops.topk(t, 2), x)
    np.testing.assert_array_equal(values, [[3, 3], [5, 5]])
    np.testing.assert_array_equal(indices, [[1, 3], [0, 1]])
    (low, low_idx), _, _ = run(lambda t: ops.topk(t, 3, largest=False), x)
    np.testing.assert_array_equal(low, [[1, 2, 3], [0, 1, 1]])
    np.testing.assert_array_equal(low_idx, [[0, 2, 1], [4, 2, 3]])


def test_topk_k_from_second_input(rng):
    # The interpreter reads k from input 1 when one is set (ITopKLayer.set_input(1, k)).
    x = distinct(rng, (3, 8))
    net = trtdsl.Network("t")
    t = net.input("x", "float32", x.shape)
    values, indices = ops.topk(t, 1)
    values.layer.set_input(1, net.constant(np.asarray(3, np.int32), "k").trt)
    net.output(values, "v")
    net.output(indices, "i")
    out = reference.run(net, {"x": x})
    ev, ei = torch.topk(torch.from_numpy(x), 3)
    np.testing.assert_array_equal(out["v"], ev.numpy())
    np.testing.assert_array_equal(out["i"], ei.numpy())


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize(("exclusive", "reverse"), [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum_matches_torch(dim, exclusive, reverse, dtype, rng):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    (y,), (reported,), _ = run(lambda t: ops.cumsum(t, dim, exclusive=exclusive, reverse=reverse), x, dtype=dtype)
    tx = t64(x)
    src = torch.flip(tx, (dim,)) if reverse else tx
    expected = torch.cumsum(src, dim)
    if exclusive:
        expected = expected - src
    if reverse:
        expected = torch.flip(expected, (dim,))
    assert reported == x.shape
    np.testing.assert_allclose(y, expected.numpy(), **TOL[dtype])


# ------------------------------------------------------------------ errors
@pytest.fixture
def x5():
    net = trtdsl.Network("t")
    return net.input("x", "float32", (2, 3, 4, 5, 6))


def test_reduce_bad_dim(x5):
    with pytest.raises(ShapeError, match=r"sum 'total' on 'x': dim 5 is out of range for a tensor of rank 5"):
        ops.sum(x5, (1, 5), name="total")


def test_topk_axis_outside_last_four(x5):
    with pytest.raises(ShapeError, match=r"topk: TensorRT's TopK reduces one of the last four axes; dim 0 .*axis 0"):
        ops.topk(x5, 1, 0)


def test_topk_k_too_large(x5):
    with pytest.raises(ShapeError, match=r"topk: k=7 is larger than axis 4 of 'x' \(2, 3, 4, 5, 6\)"):
        ops.topk(x5, 7)
    with pytest.raises(ShapeError, match=r"k must be in 1\.\.3840"):
        ops.topk(x5, 4000)


def test_argmax_needs_dim(x5):
    with pytest.raises(ShapeError, match=r"argmax on 'x': dim=None .* flatten first with x\.reshape\(-1\)"):
        ops.argmax(x5)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_tensorrt_builds_every_reduction(dtype):
    """TensorRT itself accepts what the ops emit (an ahead-of-time build; no GPU needed)."""
    net = trtdsl.Network("reductions", dtype=dtype)
    x = net.input("x", "float32", (2, 3, 4, 5))
    outs = [op(x, (1, -1), False) for op, _ in REDUCTIONS.values()] + [ops.sum(x), ops.mean(x, 0, True)]
    outs += [ops.var(x, 1), ops.std(x, (2, 3), keepdim=True), ops.argmax(x, 1), ops.argmin(x, -1, True)]
    outs += [*ops.topk(x, 2, 2), ops.topk(x, 3, largest=False, index_dtype="int64")[1]]
    outs += [ops.cumsum(x, 1), ops.cumsum(x, -1, exclusive=True, reverse=True)]
    for i, y in enumerate(outs):
        net.output(y, f"y{i}")
    config = net.builder.create_builder_config()
    assert net.builder.build_serialized_network(net.trt, config) is not None
