"""Elementwise binary and unary ops against NumPy/torch, in float32 and float16 networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trtdsl
from trtdsl import ShapeError, ops, reference

pytestmark = pytest.mark.usefixtures("trt")

# op name -> (independent reference, input domain)
UNARY = {
    "exp": (np.exp, (-3, 3)), "log": (np.log, (0.1, 5)), "sqrt": (np.sqrt, (0.1, 5)),
    "rsqrt": (lambda x: 1 / np.sqrt(x), (0.1, 5)), "reciprocal": (np.reciprocal, (0.5, 5)),
    "square": (np.square, (-3, 3)), "abs": (np.abs, (-3, 3)), "neg": (np.negative, (-3, 3)),
    "sin": (np.sin, (-3, 3)), "cos": (np.cos, (-3, 3)), "tan": (np.tan, (-1, 1)),
    "sinh": (np.sinh, (-2, 2)), "cosh": (np.cosh, (-2, 2)), "asin": (np.arcsin, (-0.9, 0.9)),
    "acos": (np.arccos, (-0.9, 0.9)), "atan": (np.arctan, (-3, 3)), "asinh": (np.arcsinh, (-3, 3)),
    "acosh": (np.arccosh, (1.1, 4)), "atanh": (np.arctanh, (-0.9, 0.9)), "ceil": (np.ceil, (-3, 3)),
    "floor": (np.floor, (-3, 3)), "round": (np.round, (-3, 3)), "sign": (np.sign, (-3, 3)),
    "erf": (lambda x: torch.erf(torch.from_numpy(x)).numpy(), (-3, 3)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_unary(name, dtype, rng):
    fn, (lo, hi) = UNARY[name]
    net = trtdsl.Network("u", dtype=dtype)
    x = net.input("x", "float32", ("batch", 7))
    net.dim("batch", 1, 3, 4)
    y = getattr(ops, name)(x)
    assert y.shape == (-1, 7) and y.dtype == dtype
    net.output(y, "y")
    xv = rng.uniform(lo, hi, (3, 7)).astype(np.float32)
    if name == "round":
        xv[0, :3] = [0.5, 1.5, -2.5]  # ties go to even, like numpy
    got = reference.run(net, {"x": xv})["y"]
    if dtype == "float32":
        np.testing.assert_allclose(got, fn(xv.astype(np.float64)), rtol=2e-6, atol=1e-6)
    else:
        # Input and output rounded to fp16 around an exact computation.
        x16 = xv.astype(np.float16).astype(np.float64)
        np.testing.assert_allclose(got, fn(x16).astype(np.float16), rtol=1e-3, atol=1e-3)


BINARY = {
    "maximum": np.maximum, "minimum": np.minimum, "floor_divide": lambda a, b: np.floor(a / b),
    "pow": np.power, "sub": np.subtract, "div": np.divide,
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcasting(name, rng):
    net = trtdsl.Network("b")
    a = net.input("a", "float32", (2, 1, 5))
    b = net.input("b", "float32", (4, 1))
    y = getattr(ops, name)(a, b)
    assert y.shape == (2, 4, 5)
    net.output(y, "y")
    av = rng.uniform(0.5, 3, (2, 1, 5)).astype(np.float32)
    bv = rng.uniform(0.5, 3, (4, 1)).astype(np.float32)
    got = reference.run(net, {"a": av, "b": bv})["y"]
    np.testing.assert_allclose(got, BINARY[name](av.astype(np.float64), bv), rtol=2e-6)


def test_integer_division_truncates_toward_zero_like_tensorrt():
    net = trtdsl.Network("i")
    a = net.input("a", "int32", (4,))
    net.output(ops.div(a, np.int32(3)), "q")
    net.output(ops.floor_divide(a, np.int32(3)), "f")
    av = np.array([7, -7, 6, -1], np.int32)
    got = reference.run(net, {"a": av})
    np.testing.assert_array_equal(got["q"], np.trunc(av / 3).astype(np.int32))
    np.testing.assert_array_equal(got["f"], av // 3)


@pytest.mark.parametrize(
    "name,fn", [("logical_and", np.logical_and), ("logical_or", np.logical_or), ("logical_xor", np.logical_xor)]
)
def test_logical(name, fn):
    net = trtdsl.Network("l")
    a = net.input("a", "bool", (4,))
    b = net.input("b", "bool", (4,))
    net.output(getattr(ops, name)(a, b), "y")
    net.output(ops.logical_not(a), "n")
    av, bv = np.array([0, 0, 1, 1], bool), np.array([0, 1, 0, 1], bool)
    got = reference.run(net, {"a": av, "b": bv})
    np.testing.assert_array_equal(got["y"], fn(av, bv))
    np.testing.assert_array_equal(got["n"], ~av)


def test_isnan_isinf():
    net = trtdsl.Network("n")
    x = net.input("x", "float32", (4,))
    net.output(ops.isnan(x), "nan")
    net.output(ops.isinf(x), "inf")
    xv = np.array([1.0, np.nan, np.inf, -np.inf], np.float32)
    got = reference.run(net, {"x": xv})
    np.testing.assert_array_equal(got["nan"], np.isnan(xv))
    np.testing.assert_array_equal(got["inf"], np.isinf(xv))


def test_mixed_dtypes_need_an_explicit_cast():
    net = trtdsl.Network("m")
    a = net.input("a", "float32", (3,))
    b = net.input("b", "int32", (3,))
    with pytest.raises(ShapeError, match=r"operands have different dtypes float32 \(a\) and int32 \(b\); cast one"):
        ops.add(a, b)


def test_every_elementwise_op_builds_into_a_plan():
    net = trtdsl.Network("all", dtype="float16")
    net.dim("batch", 1, 2, 8)
    x = net.input("x", "float32", ("batch", 16))
    y = x
    for name in sorted(UNARY):
        y = getattr(ops, name)(ops.clip(y, 0.2, 0.8) if hasattr(ops, "clip") else y)
    y = ops.maximum(y, 0.1) + ops.minimum(y, 0.5) * ops.pow(y, 2.0) - ops.floor_divide(y, 0.3)
    net.output(ops.where(ops.greater_equal(y, 0.0), y, -y) if hasattr(ops, "where") else y, "y")
    plan = trtdsl.build(net, progress=False)
    assert plan.outputs["y"].shape == ("batch", 16)
