"""pad (every mode), where, expand/broadcast_to, repeat/tile, shape_of, arange against torch/NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import trtdsl
from trtdsl import ops, reference
from trtdsl.errors import ShapeError

pytestmark = pytest.mark.usefixtures("trt")


def _run(net, y, feeds, reported=None):
    if reported is not None:
        assert y.shape == tuple(reported)
    net.output(y, "y")
    return reference.run(net, feeds)["y"]


def _torch_pad(a, pad, mode, **kwargs):
    """F.pad; non-constant modes take (N, spatial...) inputs only, so leading axes are merged first."""
    k = len(pad) // 2
    t = torch.from_numpy(a)
    if mode != "constant":
        t = t.reshape(-1, *a.shape[a.ndim - k :])
    out = F.pad(t, pad, mode=mode, **kwargs)
    return out.reshape(*a.shape[: a.ndim - k], *out.shape[1:]).numpy() if mode != "constant" else out.numpy()


PADS = [(1, 1), (2, 0), (0, 3), (1, 2, 2, 1), (1, 1, 1, 1, 1, 1)]
CASES = [(p, m) for p in PADS for m in ("constant", "reflect", "replicate", "circular")]
CASES += [((-1, 2), "constant"), ((1, -2, -1, 0), "constant")]  # negative padding crops


@pytest.mark.parametrize(("pad", "mode"), CASES, ids=str)
@pytest.mark.parametrize("compute", ["float32", "float16"])
def test_pad_modes(pad, mode, compute, rng):
    a = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    net = trtdsl.Network("t", dtype=compute)
    x = net.to_compute(net.input("x", "float32", a.shape))
    kwargs = {"value": 1.5} if mode == "constant" else {}
    want = _torch_pad(a.astype(compute).astype(np.float32), pad, mode, **kwargs)
    y = ops.pad(x, pad, mode=mode, **kwargs)
    assert y.dtype == compute
    np.testing.assert_array_equal(_run(net, y, {"x": a}, want.shape), want)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_dynamic_padded_axis(mode, rng):
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 3, trtdsl.Dim("w", 3, 6, 9)))
    y = ops.pad(x, (2, 1, 1, 1), mode=mode)
    for w in (3, 8):
        a = rng.standard_normal((2, 3, w)).astype(np.float32)
        want = _torch_pad(a, (2, 1, 1, 1), mode)
        net2 = net  # the same network runs for every width
        out = _run(net2, y, {"x": a}, (2, 5, -1)) if w == 3 else reference.run(net2, {"x": a})["y"]
        np.testing.assert_array_equal(out, want)


def test_pad_int_constant_and_names(rng):
    net = trtdsl.Network("t")
    x = net.input("x", "int32", (3, 4))
    with net.scope("stem"):
        y = ops.pad(x, (1, 0, 0, 2), value=7)
    assert y.name == "stem.pad.out"
    assert y.dtype == "int32"
    a = rng.integers(-5, 5, (3, 4)).astype(np.int32)
    want = F.pad(torch.from_numpy(a), (1, 0, 0, 2), value=7).numpy()
    np.testing.assert_array_equal(_run(net, y, {"x": a}, (5, 5)), want)


def test_pad_zero_is_noop():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (3, 4))
    assert ops.pad(x, (0, 0, 0, 0)) is x


def test_pad_errors():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (3, 4))
    with pytest.raises(ShapeError, match=r"pad 'x': reflect padding \(4, 0\) must be smaller than dim 1 \(size 4\)"):
        ops.pad(x, (4, 0), mode="reflect")
    with pytest.raises(ShapeError, match=r"pad 'x': pad \(1, 1, 1\) needs an even number of values, at most 4"):
        ops.pad(x, (1, 1, 1))
    with pytest.raises(ShapeError, match="pad 'x': mode 'edge' is not one of"):
        ops.pad(x, (1, 1), mode="edge")


@pytest.mark.parametrize(
    ("cshape", "ashape", "bshape"),
    [((2, 3), (2, 3), (2, 3)), ((3,), (2, 3), (1,)), ((2, 1), (1, 3), ()), ((4, 1, 3), (2, 3), (2, 1))],
)
def test_where(cshape, ashape, bshape, rng):
    c = rng.random(cshape) > 0.5
    a = rng.standard_normal(ashape).astype(np.float32)
    b = rng.standard_normal(bshape).astype(np.float32)
    net = trtdsl.Network("t")
    tc, ta, tb = net.input("c", "bool", cshape), net.input("a", "float32", ashape), net.input("b", "float32", bshape)
    want = torch.where(torch.from_numpy(c), torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_array_equal(_run(net, ops.where(tc, ta, tb), {"c": c, "a": a, "b": b}, want.shape), want)


def test_where_scalars_and_comparison(rng):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    net = trtdsl.Network("t")
    x = net.input("x", "float32", a.shape)
    y = ops.where(x > 0, x, 0.25) + ops.where(x < 0, 1.0, 0.0)
    want = np.where(a > 0, a, 0.25) + np.where(a < 0, 1.0, 0.0)
    np.testing.assert_allclose(_run(net, y, {"x": a}, (2, 3)), want, rtol=1e-6)


def test_where_errors():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 3))
    y = net.input("y", "float32", (4, 3))
    with pytest.raises(ShapeError, match=r"where: condition 'x' has dtype float32; expected bool \(compare first"):
        ops.where(x, x, x)
    with pytest.raises(ShapeError, match=r"shapes .*\(2, 3\).*\(4, 3\).* do not broadcast"):
        ops.where(x > 0, x, y)


@pytest.mark.parametrize(
    ("shape", "sizes"), [((3, 1), (3, 4)), ((1,), (2, 5)), ((2, 1, 1), (-1, 3, 4)), ((1, 3), (2, 2, -1))]
)
def test_expand(shape, sizes, rng):
    a = rng.standard_normal(shape).astype(np.float32)
    net = trtdsl.Network("t")
    x = net.input("x", "float32", shape)
    want = torch.from_numpy(a).expand(*sizes).numpy()
    np.testing.assert_array_equal(_run(net, ops.expand(x, *sizes), {"x": a}, want.shape), want)


def test_expand_dynamic_batch_and_broadcast_to(rng):
    net = trtdsl.Network("t")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 1, 3))
    y = ops.expand(x, -1, 4, 3)
    z = ops.broadcast_to(net.constant(np.arange(3, dtype=np.float32)), (2, 3))
    a = rng.standard_normal((3, 1, 3)).astype(np.float32)
    np.testing.assert_array_equal(_run(net, y, {"x": a}, (-1, 4, 3)), np.broadcast_to(a, (3, 4, 3)))
    net.output(z, "z")
    np.testing.assert_array_equal(reference.run(net, {"x": a})["z"], np.broadcast_to(np.arange(3), (2, 3)))


def test_expand_errors():
    net = trtdsl.Network("t")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 3))
    with pytest.raises(ShapeError, match=r"expand 'x': dim 1 of size 3 cannot expand to 4 \(shape \(-1, 3\)\)"):
        ops.expand(x, -1, 4)
    with pytest.raises(ShapeError, match="pass -1 to keep a dynamic axis"):
        ops.expand(x, 2, 3)


@pytest.mark.parametrize(("shape", "reps"), [((2, 3), (2, 1)), ((2, 3), (1, 3)), ((2,), (3, 2)), ((2, 3), (2, 2, 2))])
def test_repeat(shape, reps, rng):
    a = rng.standard_normal(shape).astype(np.float32)
    net = trtdsl.Network("t")
    x = net.input("x", "float32", shape)
    want = torch.from_numpy(a).repeat(*reps).numpy()
    np.testing.assert_array_equal(_run(net, ops.repeat(x, *reps), {"x": a}, want.shape), want)


def test_repeat_dynamic_and_tile(rng):
    net = trtdsl.Network("t")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 3))
    y = ops.tile(x, (2, 2))
    a = rng.standard_normal((3, 3)).astype(np.float32)
    np.testing.assert_array_equal(_run(net, y, {"x": a}, (-1, 6)), np.tile(a, (2, 2)))
    z = ops.tile(x, 3)
    net.output(z, "z")
    assert z.shape == (-1, 9)
    np.testing.assert_array_equal(reference.run(net, {"x": a})["z"], np.tile(a, 3))


def test_shape_of_dynamic(rng):
    net = trtdsl.Network("t")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 3, 5))
    s = ops.shape_of(x)
    assert s.shape == (3,) and s.dtype == "int64"
    assert ops.shape_of(x) is s  # one shape layer per tensor
    out = _run(net, s, {"x": np.zeros((4, 3, 5), np.float32)})
    np.testing.assert_array_equal(out, [4, 3, 5])


@pytest.mark.parametrize(
    ("args", "dtype"),
    [
        ((5,), None),
        ((2, 9, 3), None),
        ((1.0, 2.0, 0.25), None),
        ((10, 0, -3), None),
        ((0, 5), "float32"),
        ((4,), "int32"),
    ],
)
def test_arange(args, dtype):
    net = trtdsl.Network("t")
    net.input("unused", "float32", (1,))
    y = ops.arange(net, *args, dtype=dtype)
    want = torch.arange(*args, dtype=getattr(torch, dtype) if dtype else None).numpy()
    assert y.dtype == str(want.dtype)
    np.testing.assert_array_equal(_run(net, y, {"unused": np.zeros(1, np.float32)}, want.shape), want)
