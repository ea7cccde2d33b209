"""Reduce layers (reference/reduce.py): sums and means over trailing axes, against float64 NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ops
from trtdsl.reference import run

pytestmark = pytest.mark.usefixtures("trt", "reference_mode")  # fast and plain paths


@pytest.mark.parametrize(
    "shape, dims, keep",
    [
        ((1, 96, 7, 7), (2, 3), True),  # a global average pool (squeeze-excite): one matrix-vector product
        ((3, 40, 16), (2,), False),
        ((2, 5, 6, 7), (1, 2, 3), True),
        ((2, 3), (0, 1), False),  # every axis
        ((1, 2, 100, 100), (2, 3), True),  # 10,000 values a sum: NumPy's pairwise sum
        ((2, 6, 4, 5), (1, 2), True),  # not trailing
    ],
)
@pytest.mark.parametrize("which", ["mean", "sum"])
def test_trailing_sums_and_means_match_float64(shape, dims, keep, which, rng):
    x = rng.standard_normal(shape).astype(np.float32) + 0.5
    net = trtdsl.Network("reduce")
    t = net.input("x", "float32", shape)
    net.output(getattr(ops, which)(t, dims, keep), "y")
    got = run(net, {"x": x})["y"]
    want = getattr(np, which)(x.astype(np.float64), axis=dims, keepdims=keep)
    assert got.shape == want.shape and got.dtype == np.float32
    scale = np.abs(want).max()
    assert np.abs(got - want).max() <= 4e-7 * scale * (1 if which == "mean" else 4)


@pytest.mark.parametrize("dtype", ["float32", "int32"])
@pytest.mark.parametrize("which", ["amax", "amin"])
@pytest.mark.parametrize("keep", [True, False])
def test_max_and_min_of_an_empty_set_are_the_identity(which, dtype, keep):
    """ONNX's test_reduce_max_empty_set / test_reduce_min_empty_set: -inf for a max, +inf for a min
    (an integer type's lowest and highest value, ReduceMax-18); NumPy itself raises on an empty max."""
    net = trtdsl.Network("empty")
    t = net.input("x", dtype, (2, 0, 4))
    net.output(getattr(ops, which)(t, 1, keep), "y")
    got = run(net, {"x": np.zeros((2, 0, 4), dtype)})["y"]
    lowest, highest = (-np.inf, np.inf) if dtype == "float32" else (-(2**31), 2**31 - 1)
    want = np.full((2, 1, 4) if keep else (2, 4), lowest if which == "amax" else highest, dtype)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
