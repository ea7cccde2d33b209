"""Runtime (Tensor) bounds for slice/getitem, reshape, pad and arange; Tensor // and %; take_along_dim.

References: NumPy slicing and arithmetic, torch.nn.functional.pad, torch.arange, torch.take_along_dim.
Each network also builds into a plan on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trtdsl
from trtdsl import ShapeError, ops, reference

pytestmark = pytest.mark.usefixtures("trt")


def _seq_net():
    """x: (3, seq) with seq in 2..16, and n = seq as a runtime int64 scalar."""
    net = trtdsl.Network("rb")
    net.dim("seq", 2, 8, 16)
    x = net.input("x", "float32", (3, "seq"))
    return net, x, ops.shape_of(x)[1]


def _run(net, seq):
    xv = np.arange(3 * seq, dtype=np.float32).reshape(3, seq)
    return xv, reference.run(net, {"x": xv})


@pytest.mark.parametrize("seq", [2, 5, 10, 16])
def test_getitem_and_slice_with_runtime_bounds(seq):
    net, x, n = _seq_net()
    cases = {
        "half": (x[:, : n // 2], lambda a, k: a[:, : k // 2]),
        "tail": (x[:, -(n % 3 + 1) :], lambda a, k: a[:, -(k % 3 + 1) :]),
        "mid": (ops.slice(x, 1, n // 4, n - 1, 2), lambda a, k: a[:, k // 4 : k - 1 : 2]),
        "back": (x[:, n - 2 : 0 : -1], lambda a, k: a[:, k - 2 : 0 : -1]),
        "neg_start": (x[:, n - 100 :], lambda a, k: a[:, k - 100 :]),  # clamped as Python clamps
    }
    for key, (t, _) in cases.items():
        net.output(t, key)
    xv, out = _run(net, seq)
    for key, (_, ref) in cases.items():
        np.testing.assert_array_equal(out[key], ref(xv, seq), err_msg=key)
    assert trtdsl.build(net) is not None


@pytest.mark.parametrize("seq", [4, 12])
def test_reshape_pad_arange_with_runtime_sizes(seq):
    net, x, n = _seq_net()
    net.output(ops.reshape(x, (n, -1)), "r")
    net.output(ops.pad(x, (1, 16 - n)), "p")
    net.output(ops.pad(x, (n // 4, 0, 0, 1), mode="reflect"), "q")
    net.output(ops.pad(x, (0, n % 3), mode="replicate"), "c")
    net.output(ops.arange(net, n), "a")
    net.output(ops.arange(net, n, 1, -3), "b")
    net.output(ops.arange(net, 0.5, n, 1.5), "f")
    xv, out = _run(net, seq)
    t = torch.from_numpy(xv)[None]
    np.testing.assert_array_equal(out["r"], xv.reshape(seq, -1))
    np.testing.assert_array_equal(out["p"], torch.nn.functional.pad(t, (1, 16 - seq))[0].numpy())
    np.testing.assert_array_equal(out["q"], torch.nn.functional.pad(t, (seq // 4, 0, 0, 1), mode="reflect")[0].numpy())
    np.testing.assert_array_equal(out["c"], torch.nn.functional.pad(t, (0, seq % 3), mode="replicate")[0].numpy())
    np.testing.assert_array_equal(out["a"], torch.arange(seq).numpy())
    np.testing.assert_array_equal(out["b"], torch.arange(seq, 1, -3).numpy())
    np.testing.assert_allclose(out["f"], torch.arange(0.5, seq, 1.5).numpy())
    assert out["a"].dtype == np.int64
    assert trtdsl.build(net) is not None


def test_runtime_bound_errors():
    _, x, n = _seq_net()
    f = ops.cast(n, "float32")
    with pytest.raises(ShapeError, match=r"runtime bound .* has dtype float32; expected int32 or int64"):
        x[:, :f]
    with pytest.raises(ShapeError, match=r"a slice step must be a Python int"):
        x[:, ::n]
    v = ops.shape_of(x)
    with pytest.raises(ShapeError, match=r"runtime bound .* must be a scalar \(or one element\), got shape \(2,\)"):
        ops.reshape(x, (v, -1))


# ------------------------------------------------------------- // and %
@pytest.mark.parametrize("dtype", ["int32", "int64", "float32"])
def test_floordiv_and_mod_operators_match_python(dtype, rng):
    net = trtdsl.Network("fm")
    a = net.input("a", dtype, (12,))
    b = net.input("b", dtype, (12,))
    outs = {"fd": a // b, "md": a % b, "fd3": a // 3, "md3": a % -3, "rfd": 7 // b, "rmd": 7 % b}
    outs["rem"] = ops.remainder(a, b)
    for k, t in outs.items():
        net.output(t, k)
    av = rng.integers(-20, 20, 12).astype(dtype)
    bv = rng.choice([-5, -3, -1, 1, 2, 4], 12).astype(dtype)
    out = reference.run(net, {"a": av, "b": bv})
    ref = {"fd": av // bv, "md": av % bv, "fd3": av // 3, "md3": av % -3, "rfd": 7 // bv, "rmd": 7 % bv}
    ref["rem"] = torch.remainder(torch.from_numpy(av), torch.from_numpy(bv)).numpy()
    for k in outs:
        np.testing.assert_array_equal(out[k], ref[k].astype(dtype), err_msg=k)  # sign of the divisor, as Python
    assert trtdsl.build(net) is not None


# ------------------------------------------------------------- take_along_dim
@pytest.mark.parametrize(
    ("xshape", "ishape", "dim"),
    [((3, 5), (3, 2), 1), ((3, 1, 5), (1, 4, 2), 2), ((4, 6), (2, 6), 0), ((2, 3, 4), (5,), None)],
)
def test_take_along_dim_matches_torch(xshape, ishape, dim, rng):
    x = rng.standard_normal(xshape).astype(np.float32)
    size = int(np.prod(xshape)) if dim is None else xshape[dim]
    idx = rng.integers(0, size, ishape)
    net = trtdsl.Network("tad")
    xi = net.input("x", "float32", xshape)
    ii = net.input("i", "int64", ishape)
    net.output(ops.take_along_dim(xi, ii, dim), "y")
    got = reference.run(net, {"x": x, "i": idx})["y"]
    want = torch.take_along_dim(torch.from_numpy(x), torch.from_numpy(idx), dim).numpy()
    np.testing.assert_array_equal(got, want)
    assert trtdsl.build(net) is not None


def test_take_along_dim_errors():
    net = trtdsl.Network("e")
    x = net.input("x", "float32", (3, 4))
    with pytest.raises(ShapeError, match=r"indices have rank 1, input has rank 2"):
        ops.take_along_dim(x, np.array([0, 1]), 1)
    with pytest.raises(ShapeError, match=r"input \(3, 4\) and indices \(2, 1\) do not broadcast at dim 0"):
        ops.take_along_dim(x, np.zeros((2, 1), np.int64), 1)
