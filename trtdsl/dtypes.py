"""Data types: one canonical string per type, and conversions to TensorRT and NumPy.

TensorRT 11 is always strongly typed, so a tensor's dtype decides the precision
of the layers that read it. trtdsl spells types as NumPy does ('float32',
'float16', 'bfloat16', 'int8', ...) and accepts the usual aliases.
"""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from . import _trt
from .errors import ShapeError

DTypeLike = Union[str, np.dtype, type, Any]  # noqa: UP007  (a runtime alias; | needs 3.10 types)

_ALIASES = {
    "float32": "float32", "fp32": "float32", "float": "float32", "f32": "float32",
    "float16": "float16", "fp16": "float16", "half": "float16", "f16": "float16",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "int8": "int8", "int32": "int32", "int64": "int64", "uint8": "uint8",
    "bool": "bool", "fp8": "fp8", "float8": "fp8", "int4": "int4",
}  # fmt: skip
FLOATS = ("float32", "float16", "bfloat16")
# bfloat16 and fp8 have no NumPy dtype; the interpreter keeps them as float32
# values that are rounded to the narrow type (see reference.precision).
_NUMPY = {
    "float32": np.float32, "float16": np.float16, "bfloat16": np.float32,
    "int8": np.int8, "int32": np.int32, "int64": np.int64, "uint8": np.uint8,
    "bool": np.bool_, "fp8": np.float32, "int4": np.int8,
}  # fmt: skip
_TRT_ATTR = {
    "float32": "float32", "float16": "float16", "bfloat16": "bfloat16", "int8": "int8",
    "int32": "int32", "int64": "int64", "uint8": "uint8", "bool": "bool", "fp8": "fp8",
    "int4": "int4",
}  # fmt: skip
_FROM_TRT_NAME = {
    "FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8",
    "INT32": "int32", "INT64": "int64", "UINT8": "uint8", "BOOL": "bool", "FP8": "fp8",
    "INT4": "int4",
}  # fmt: skip


def canonical(dtype: DTypeLike) -> str:
    """Canonical dtype name for a string alias, NumPy dtype or ``trt.DataType``."""
    if isinstance(dtype, str):
        key = dtype.lower()
        if key in _ALIASES:
            return _ALIASES[key]
        raise ShapeError(f"unknown dtype {dtype!r}; expected one of {', '.join(sorted(set(_ALIASES.values())))}")
    trt_name = getattr(dtype, "name", None)
    if type(dtype).__name__ == "DataType" and trt_name in _FROM_TRT_NAME:
        return _FROM_TRT_NAME[trt_name]
    try:
        np_name = np.dtype(dtype).name
    except TypeError as e:
        raise ShapeError(f"unknown dtype {dtype!r}") from e
    if np_name in _ALIASES:
        return _ALIASES[np_name]
    raise ShapeError(f"dtype {np_name} has no TensorRT equivalent")


def to_trt(dtype: DTypeLike):
    """``trt.DataType`` for a dtype."""
    return getattr(_trt.load(), _TRT_ATTR[canonical(dtype)])


def to_numpy(dtype: DTypeLike) -> np.dtype:
    """NumPy dtype that holds values of ``dtype`` (float32 for bfloat16/fp8)."""
    return np.dtype(_NUMPY[canonical(dtype)])


def is_float(dtype: DTypeLike) -> bool:
    return canonical(dtype) in FLOATS or canonical(dtype) == "fp8"
