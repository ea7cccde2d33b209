"""Rounding to narrow TensorRT types, so the interpreter shows their error.

NumPy has float16 but no bfloat16 or fp8. A bfloat16 tensor is held as float32
values rounded to bfloat16 (round to nearest even on the top 16 bits). This is
five lines of bit arithmetic; ``ml_dtypes`` would give a dtype but would make
every array op go through a slower custom dtype.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes


def round_bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), kept as float32."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    out = ((bits + rounding) & np.uint32(0xFFFF0000)).view(np.float32)
    return np.where(np.isnan(x), x, out).astype(np.float32, copy=False)


def store(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` as it would be stored in a TensorRT tensor of ``dtype`` (canonical name)."""
    if dtype == "bfloat16":
        return round_bfloat16(x)
    if dtype == "int8" and x.dtype.kind == "f":
        # Only quantize layers produce int8; they round and clamp themselves.
        x = np.clip(np.rint(x), -128, 127)
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
