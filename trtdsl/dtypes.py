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
_NUMPY_DTYPES = {k: np.dtype(v) for k, v in _NUMPY.items()}
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


_FLOATISH = frozenset((*FLOATS, "fp8"))
_by_trt_value: dict[int, str] | None = None  # int(trt.DataType) -> canonical name, filled on first use


def from_trt(dtype: Any) -> str:
    """Canonical name of a ``trt.DataType``: the fast path behind ``Tensor.dtype``.

    Reading ``DataType.name`` through pybind costs about four times ``int(dtype)``,
    and every op reads its inputs' dtypes several times, so the lookup is by value.
    Types trtdsl has no name for (FP4, E8M0) take ``canonical``'s path and its error.
    """
    global _by_trt_value
    if _by_trt_value is None:
        trt = _trt.load()
        _by_trt_value = {int(getattr(trt, a)): c for c, a in _TRT_ATTR.items() if hasattr(trt, a)}
    name = _by_trt_value.get(int(dtype))
    return name if name is not None else canonical(dtype)


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
    if dtype.__class__ is str:  # a canonical name: skip canonical()
        np_dtype = _NUMPY_DTYPES.get(dtype)
        if np_dtype is not None:
            return np_dtype
    return np.dtype(_NUMPY[canonical(dtype)])


def is_float(dtype: DTypeLike) -> bool:
    if dtype.__class__ is str and dtype in _FLOATISH:  # the common case: a Tensor.dtype
        return True
    return canonical(dtype) in _FLOATISH
