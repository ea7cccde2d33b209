"""Rounding to narrow TensorRT types, so the interpreter shows their error.

Every tensor is stored as TensorRT would store it: a float16 tensor as NumPy
float16, an int8 tensor as int8. NumPy has no bfloat16 or fp8, so those are
held as float32 values already rounded to the narrow type. That is a few lines
of bit arithmetic; ``ml_dtypes`` would give real dtypes but would send every
array op through a slower custom dtype.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes

FP8_MAX = 448.0  # largest finite float8 e4m3 value (the "fn" variant: no inf)
_INT_RANGE = {"int8": (-128, 127), "int4": (-8, 7), "uint8": (0, 255)}


def round_bfloat16(x: np.ndarray) -> np.ndarray:
    """Values rounded to the nearest bfloat16 (ties to even), kept as float32.

    Overflow rounds to inf, as a hardware conversion does; NaN stays NaN.
    """
    # Not ascontiguousarray: it turns a 0-d array into shape (1,).
    x32 = np.require(np.asarray(x, dtype=np.float32), requirements="C")
    bits = x32.view(np.uint32)
    # Adding 0x7FFF plus the lowest kept bit, then truncating, is round-half-even
    # on the 16 dropped bits; a carry into the exponent is the correct rounding up.
    rounding = ((bits >> np.uint32(16)) & np.uint32(1)) + np.uint32(0x7FFF)
    out = ((bits + rounding) & np.uint32(0xFFFF0000)).view(np.float32)
    nan = np.isnan(x32)
    if nan.any():
        out = np.where(nan, x32, out)
    return out


def round_fp8(x: np.ndarray) -> np.ndarray:
    """Values rounded to the nearest float8 e4m3 (ties to even), saturated to +-448, kept as float32."""
    x32 = np.asarray(x, dtype=np.float32)
    a = np.minimum(np.abs(x32), np.float32(FP8_MAX))
    # e4m3 has 3 mantissa bits; below 2**-6 the spacing is fixed at 2**-9 (subnormals).
    # frexp gives the exponent exactly, where floor(log2(a)) can be off by one.
    exp = np.maximum(np.frexp(a)[1] - 1, -6)
    quantum = np.ldexp(np.float32(1), exp - 3).astype(np.float32)
    out = (np.rint(a / quantum) * quantum).astype(np.float32)
    out = np.copysign(np.minimum(out, np.float32(FP8_MAX)), x32)
    return np.where(np.isnan(x32), x32, out).astype(np.float32, copy=False)


_NATIVE = {name: np.dtype(name) for name in ("float32", "float16", "int32", "int64", "int8", "uint8", "bool")}


def store(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` as it would be stored in a TensorRT tensor of ``dtype`` (canonical name)."""
    native = _NATIVE.get(dtype)
    if native is not None and x.dtype == native:  # already stored as TensorRT would: the common case
        return x
    if dtype == "bfloat16":
        return round_bfloat16(x)
    if dtype == "fp8":
        return round_fp8(x)
    if dtype in _INT_RANGE and x.dtype.kind == "f":
        # Quantize layers round and clamp themselves; this only guards other producers.
        lo, hi = _INT_RANGE[dtype]
        x = np.clip(np.rint(x), lo, hi)
    target = dtypes.to_numpy(dtype)
    if x.dtype == target:
        return x
    return x.astype(target)


def compute(x: np.ndarray) -> np.ndarray:
    """The array a layer function computes on: half precision is widened to float32.

    TensorRT's half-precision kernels accumulate in float32 and round on store;
    widening here and rounding in ``store`` models that.
    """
    if x.dtype == np.float16:
        return x.astype(np.float32)
    return x
