"""Elementwise binary ops with NumPy broadcasting, and unary math.

Binary ops broadcast like NumPy: the lower-rank operand gets leading size-1
axes, Python and NumPy values become constants in the other operand's dtype,
and float operands are cast to the network's compute dtype.
"""

from __future__ import annotations

from .. import _trt
from ..tensor import Tensor
from ._util import TensorLike, broadcast, net_of

__all__ = [
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "floor_divide", "remainder",
    "equal", "not_equal", "greater", "less", "greater_equal", "less_equal",
    "logical_and", "logical_or", "logical_xor", "logical_not",
    "neg", "abs", "exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tan",
    "sinh", "cosh", "asin", "acos", "atan", "asinh", "acosh", "atanh",
    "ceil", "floor", "round", "erf", "sign", "isinf", "isnan", "square",
]  # fmt: skip


def _binary(op: str, a: TensorLike, b: TensorLike, name: str | None, kind: str) -> Tensor:
    net = net_of(a, b)
    ta, tb = broadcast(net, a, b)
    layer = net.trt.add_elementwise(ta.trt, tb.trt, getattr(_trt.load().ElementWiseOperation, op))
    return net.register(layer, kind, name)


def add(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    """``a + b`` with NumPy broadcasting."""
    return _binary("SUM", a, b, name, "add")


def sub(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    return _binary("SUB", a, b, name, "sub")


def mul(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    return _binary("PROD", a, b, name, "mul")


def div(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    """True division for floats; for ints TensorRT's DIV truncates toward zero."""
    return _binary("DIV", a, b, name, "div")


def pow(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:  # noqa: A001
    return _binary("POW", a, b, name, "pow")


def maximum(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    return _binary("MAX", a, b, name, "maximum")


def minimum(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    return _binary("MIN", a, b, name, "minimum")


def floor_divide(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    return _binary("FLOOR_DIV", a, b, name, "floor_divide")


def remainder(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    """``a % b`` as Python and ``torch.remainder`` define it: the result has the sign of ``b``.

    TensorRT has no modulo operation, so it is ``a - floor_divide(a, b) * b`` (three layers).
    """
    net = net_of(a, b)
    ta, tb = broadcast(net, a, b)
    full = net.op_name(name, "remainder", ta)
    prefix = net.current_scope
    with net.scope(full[len(prefix) + 1 :] if prefix else full):
        q = floor_divide(ta, tb, name="div")
        return sub(ta, mul(q, tb, name="mul"), name="sub")


def equal(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    return _binary("EQUAL", a, b, name, "equal")


def greater(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    return _binary("GREATER", a, b, name, "greater")


def less(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    return _binary("LESS", a, b, name, "less")


def not_equal(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    return logical_not(equal(a, b), name=name or "not_equal")


def greater_equal(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    # TensorRT has no GREATER_EQUAL; NOT(LESS) is exact except for NaN operands.
    return logical_not(less(a, b), name=name or "greater_equal")


def less_equal(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    return logical_not(greater(a, b), name=name or "less_equal")


def logical_and(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    return _binary("AND", a, b, name, "logical_and")


def logical_or(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    return _binary("OR", a, b, name, "logical_or")


def logical_xor(a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    return _binary("XOR", a, b, name, "logical_xor")


def _unary(op: str, x: Tensor, name: str | None, kind: str) -> Tensor:
    net = x.net
    x = net.to_compute(x)
    layer = net.trt.add_unary(x.trt, getattr(_trt.load().UnaryOperation, op))
    return net.register(layer, kind, name)


def logical_not(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("NOT", x, name, "logical_not")


def neg(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("NEG", x, name, "neg")


def abs(x: Tensor, *, name: str | None = None) -> Tensor:  # noqa: A001
    return _unary("ABS", x, name, "abs")


def exp(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("EXP", x, name, "exp")


def log(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("LOG", x, name, "log")


def sqrt(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("SQRT", x, name, "sqrt")


def reciprocal(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("RECIP", x, name, "reciprocal")


def rsqrt(x: Tensor, *, name: str | None = None) -> Tensor:
    return reciprocal(sqrt(x), name=name or "rsqrt")


def square(x: Tensor, *, name: str | None = None) -> Tensor:
    return mul(x, x, name=name or "square")


def sin(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("SIN", x, name, "sin")


def cos(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("COS", x, name, "cos")


def tan(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("TAN", x, name, "tan")


def sinh(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("SINH", x, name, "sinh")


def cosh(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("COSH", x, name, "cosh")


def asin(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("ASIN", x, name, "asin")


def acos(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("ACOS", x, name, "acos")


def atan(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("ATAN", x, name, "atan")


def asinh(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("ASINH", x, name, "asinh")


def acosh(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("ACOSH", x, name, "acosh")


def atanh(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("ATANH", x, name, "atanh")


def ceil(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("CEIL", x, name, "ceil")


def floor(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("FLOOR", x, name, "floor")


def round(x: Tensor, *, name: str | None = None) -> Tensor:  # noqa: A001
    """Round half to even, like ``numpy.round``."""
    return _unary("ROUND", x, name, "round")


def erf(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("ERF", x, name, "erf")


def sign(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("SIGN", x, name, "sign")


def isinf(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("ISINF", x, name, "isinf")


def isnan(x: Tensor, *, name: str | None = None) -> Tensor:
    return _unary("ISNAN", x, name, "isnan")
