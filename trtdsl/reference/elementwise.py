"""Elementwise binary and unary layers."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from .registry import Node, interprets

if TYPE_CHECKING:
    from .fusion import Epilogue


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


_IN_PLACE = {"SUM", "PROD", "MAX", "MIN", "SUB"}  # ufuncs whose result has the inputs' common dtype


def _donated_out(donated: tuple[int, ...], operands: tuple[np.ndarray, ...], dtype: np.dtype, shape: tuple) -> Any:
    """A donated operand that can hold the result (same dtype and shape, writeable), else None."""
    for i in donated:
        x = operands[i]
        if x.dtype == dtype and x.shape == shape and x.flags.writeable:
            return x
    return None


_ZEROS_BLOCK = 16384
_zeros: dict[np.dtype, np.ndarray] = {}


def rectify(x: np.ndarray, inplace: bool = False) -> np.ndarray:
    """max(x, 0), into ``x`` itself when ``inplace`` (and ``x`` is writeable)."""
    # NumPy's maximum against a scalar skips its SIMD loop (3x slower than array
    # against array), so a contiguous input is compared row by row with a block of zeros.
    if x.dtype.kind != "f" or not x.flags.c_contiguous:
        return np.maximum(x, 0, out=x if inplace else None)
    zeros = _zeros.get(x.dtype)
    if zeros is None:
        zeros = _zeros[x.dtype] = np.zeros(_ZEROS_BLOCK, dtype=x.dtype)
    flat = x.reshape(-1)
    out = flat if inplace else np.empty_like(flat)
    whole = flat.size - flat.size % _ZEROS_BLOCK
    np.maximum(flat[:whole].reshape(-1, _ZEROS_BLOCK), zeros, out=out[:whole].reshape(-1, _ZEROS_BLOCK))
    np.maximum(flat[whole:], zeros[: flat.size - whole], out=out[whole:])
    return out.reshape(x.shape)


@interprets("elementwise", donates=True, fuses=True)
def elementwise(
    node: Node, a: np.ndarray, b: np.ndarray, donated: tuple[int, ...] = (), epilogue: Epilogue | None = None
) -> np.ndarray:
    op = node.memo("op", lambda: node.layer.op.name)
    fn = _BINARY[op]
    out = None
    if donated and (op in _IN_PLACE or (op == "DIV" and a.dtype.kind == "f")):
        out = _donated_out(donated, (a, b), np.result_type(a, b), np.broadcast_shapes(a.shape, b.shape))
    with np.errstate(all="ignore"):
        if out is not None:
            # Same ufunc loop as without out=, so the same bits; a residual add reuses its dead operand.
            result = np.divide(a, b, out=out) if op == "DIV" else fn(a, b, out=out)
        else:
            result = fn(a, b)
    # (a 0-d result comes back from the ufunc as a NumPy scalar, which cannot be written to)
    return result if epilogue is None else epilogue(np.asarray(result))


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


_UNARY_IN_PLACE = {"EXP", "LOG", "SQRT", "RECIP", "ABS", "NEG", "SIN", "COS", "TAN", "SINH", "COSH", "ASIN",
                   "ACOS", "ATAN", "ASINH", "ACOSH", "ATANH", "CEIL", "FLOOR", "SIGN", "ROUND"}  # fmt: skip


@interprets("unary", donates=True)
def unary(node: Node, x: np.ndarray, donated: tuple[int, ...] = ()) -> np.ndarray:
    op = node.memo("op", lambda: node.layer.op.name)
    if op == "RECIP" and x.dtype.kind in "iu":
        x = x.astype(np.float32)
    with np.errstate(all="ignore"):
        if op == "ERF":
            return erf(x)
        if donated and op in _UNARY_IN_PLACE and x.dtype.kind == "f" and x.flags.writeable:
            return _UNARY[op](x, out=x)
        return _UNARY[op](x)
