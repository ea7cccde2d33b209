"""Elementwise binary and unary layers."""

from __future__ import annotations

import math

import numpy as np

from .registry import Node, interprets


def _floor_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.floor_divide(a, b) if a.dtype.kind in "iu" else np.floor(a / b)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # TensorRT's integer DIV truncates toward zero (C semantics), unlike numpy's //.
    if a.dtype.kind in "iu":
        q = np.abs(a) // np.abs(b)
        return (np.sign(a) * np.sign(b) * q).astype(a.dtype)
    return a / b


_BINARY = {
    "SUM": np.add, "PROD": np.multiply, "MAX": np.maximum, "MIN": np.minimum,
    "SUB": np.subtract, "DIV": _div, "POW": np.power, "FLOOR_DIV": _floor_div,
    "AND": np.logical_and, "OR": np.logical_or, "XOR": np.logical_xor,
    "EQUAL": np.equal, "GREATER": np.greater, "LESS": np.less,
}  # fmt: skip


@interprets("elementwise")
def elementwise(node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return _BINARY[node.layer.op.name](a, b)


_erf = None


def _erf_impl():
    # scipy's erf is vectorized C; math.erf per element is the exact but slow
    # fallback. Resolved on first use so that importing trtdsl stays cheap.
    global _erf
    if _erf is None:
        try:
            from scipy.special import erf as fast
        except ImportError:  # pragma: no cover - scipy is in the dev and fast extras
            fast = np.vectorize(math.erf, otypes=[np.float64])
        _erf = fast
    return _erf


_UNARY = {
    "EXP": np.exp, "LOG": np.log, "SQRT": np.sqrt, "RECIP": np.reciprocal, "ABS": np.abs,
    "NEG": np.negative, "SIN": np.sin, "COS": np.cos, "TAN": np.tan, "SINH": np.sinh,
    "COSH": np.cosh, "ASIN": np.arcsin, "ACOS": np.arccos, "ATAN": np.arctan,
    "ASINH": np.arcsinh, "ACOSH": np.arccosh, "ATANH": np.arctanh, "CEIL": np.ceil,
    "FLOOR": np.floor, "NOT": np.logical_not, "SIGN": np.sign, "ROUND": np.rint,
    "ISINF": np.isinf, "ISNAN": np.isnan,
}  # fmt: skip


def erf(x: np.ndarray) -> np.ndarray:
    """erf in the input's dtype. NumPy has none; scipy's is used when installed."""
    return _erf_impl()(x).astype(x.dtype, copy=False)


@interprets("unary")
def unary(node: Node, x: np.ndarray) -> np.ndarray:
    op = node.layer.op.name
    if op == "RECIP" and x.dtype.kind in "iu":
        x = x.astype(np.float32)
    with np.errstate(all="ignore"):
        return erf(x) if op == "ERF" else _UNARY[op](x)
