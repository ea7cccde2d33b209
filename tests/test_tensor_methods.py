"""Tensor methods and operators delegate to the ops with numpy/torch semantics."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import reference

pytestmark = pytest.mark.usefixtures("trt")

CASES = {
    "matmul": (lambda x, y: x @ y, lambda x, y: x @ y),
    "rmatmul_const": (lambda x, y: np.ones((5, 2), np.float32) @ x.T, lambda x, y: np.ones((5, 2), np.float32) @ x.T),
    "reshape": (lambda x, y: x.reshape(4, 3), lambda x, y: x.reshape(4, 3)),
    "reshape_tuple": (lambda x, y: x.reshape((3, -1)), lambda x, y: x.reshape((3, -1))),
    "view": (lambda x, y: x.view(12), lambda x, y: x.reshape(12)),
    "permute": (lambda x, y: x.permute(1, 0), lambda x, y: x.transpose(1, 0)),
    "transpose": (lambda x, y: x.transpose(0, 1), lambda x, y: x.T),
    "T": (lambda x, y: x.T, lambda x, y: x.T),
    "flatten": (lambda x, y: x.unsqueeze(0).flatten(1), lambda x, y: x.reshape(1, 6 * 2)),
    "unsqueeze_squeeze": (lambda x, y: x.unsqueeze(1).squeeze(1), lambda x, y: x),
    "sum": (lambda x, y: x.sum(1, keepdim=True), lambda x, y: x.sum(1, keepdims=True)),
    "sum_all": (lambda x, y: x.sum(), lambda x, y: np.array(x.sum())),
    "mean": (lambda x, y: x.mean(0), lambda x, y: x.mean(0)),
    "max": (lambda x, y: x.max(1), lambda x, y: x.max(1)),
    "min": (lambda x, y: x.min(0, keepdim=True), lambda x, y: x.min(0, keepdims=True)),
    "getitem": (lambda x, y: x[1:, ::-1], lambda x, y: x[1:, ::-1]),
    "getitem_int_ellipsis": (lambda x, y: x[..., 0], lambda x, y: x[..., 0]),
    "cast": (lambda x, y: (x * 10).cast("int32"), lambda x, y: np.trunc(x * 10).astype(np.int32)),
    "astype": (lambda x, y: x.astype("float16"), lambda x, y: x.astype(np.float16)),
    "pow_rpow": (lambda x, y: abs(x) ** 2 + 2.0**x, lambda x, y: np.abs(x) ** 2 + 2.0**x),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tensor_method(name, rng):
    fn, ref = CASES[name]
    xv = rng.standard_normal((6, 2)).astype(np.float32)
    yv = rng.standard_normal((2, 3)).astype(np.float32)
    net = trtdsl.Network("t")
    x = net.input("x", "float32", xv.shape)
    y = net.input("y", "float32", yv.shape)
    out = fn(x, y)
    expected = ref(xv.astype(np.float64) if name != "cast" else xv, yv.astype(np.float64))
    assert out.shape == expected.shape  # TensorRT's own shape inference
    net.output(out, "out", dtype=out.dtype)
    got = reference.run(net, {"x": xv, "y": yv})["out"]
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=2e-3 if name == "astype" else 1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(got, expected)


def test_shapes_read_through_the_bounded_cache_stay_right(monkeypatch):
    # Tensor.shape goes through str(Dims) and a cache that is cleared when it fills: every
    # shape, including dynamic dims and ranks 0 to 8, must still read back as TensorRT has it.
    from trtdsl import tensor

    monkeypatch.setattr(tensor, "_SHAPES", {})
    monkeypatch.setattr(tensor, "_SHAPES_MAX", 3)
    net = trtdsl.Network("shapes")
    specs = [(2,), (1, 3), ("batch", 4), (2, 3, 4, 5, 6, 7, 8, 9), (5, 1), (1, 3), ("n", "m", 2)]
    for i, spec in enumerate(specs):
        want = tuple(-1 if isinstance(d, str) else d for d in spec)
        x = net.input(f"x{i}", "float32", spec)
        assert x.shape == want
        assert x.shape == want  # read again, from the cache
        assert len(tensor._SHAPES) <= 3
