"""Data types: one record per TensorRT type, and the conversions every module reads from it.

TensorRT 11 is always strongly typed, so a tensor's dtype decides the precision
of the layers that read it. trtdsl spells types with one canonical name each
('float32', 'float16', 'bfloat16', 'fp8', 'fp4', 'e8m0', 'int4', 'int8', 'uint8',
'int32', 'int64', 'bool') and accepts the usual aliases, NumPy dtypes (including
the ``ml_dtypes`` ones) and ``trt.DataType`` values.

Every fact about a type lives in its ``DType`` row of ``TABLE``: its NumPy holder
(``ml_dtypes`` types where NumPy has none), its TensorRT attribute, its size in
bits, its integer range or largest finite value, its DLPack code and the default
golden tolerance of a network computed in it. Adding a type is adding one row.

Example::

    >>> dtypes.info("fp8").max
    448.0
    >>> dtypes.info("int4").range
    (-8, 7)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import ml_dtypes
import numpy as np

from . import _trt
from .errors import ShapeError

DTypeLike = Union[str, np.dtype, type, Any]  # noqa: UP007  (a runtime alias; | needs 3.10 types)


@dataclass(frozen=True)
class DType:
    """Everything trtdsl knows about one TensorRT data type.

    ``holder`` is the NumPy dtype of arrays of this type that users see (feeds,
    outputs, constants): ``ml_dtypes`` types for bfloat16, fp8, fp4, e8m0 and int4.
    ``storage`` is the dtype the reference interpreter computes on: narrow floats
    are held as float32 values already rounded to the type (NumPy arithmetic on
    ``ml_dtypes`` arrays goes through slow custom loops), int4 as int8.
    ``range`` is the integer range (lo, hi) of an integer type; ``max`` the
    largest finite value of a float type, ``tiny`` its smallest positive normal. ``saturates``: the type has no
    infinity, so a rounding that overflows clips to ``max`` (what TensorRT's
    quantization does) instead of producing inf/NaN. ``dlpack`` is the
    (DLDataTypeCode, bits) pair of dlpack.h. ``tolerance`` is (atol, rtol), the
    default golden tolerance of a network computed in this type.
    """

    name: str
    trt_name: str  # trt.DataType member name
    trt_attr: str  # attribute of the tensorrt module (trt.float32, trt.fp8, ...)
    holder: np.dtype
    storage: np.dtype
    bits: int
    kind: str  # "float", "int", "uint" or "bool"
    range: tuple[int, int] | None = None
    max: float | None = None
    tiny: float | None = None  # smallest positive normal value of a float type
    saturates: bool = False
    dlpack: tuple[int, int] | None = None
    tolerance: tuple[float, float] | None = None
    aliases: tuple[str, ...] = ()

    @property
    def itemsize(self) -> int | None:
        """Bytes per element, or None for a sub-byte type (4 bits: two per byte, first in the low bits)."""
        return self.bits // 8 if self.bits % 8 == 0 else None

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def narrow(self) -> bool:
        """True when NumPy has no native dtype for it (the holder is an ``ml_dtypes`` type)."""
        return self.holder != self.storage


_F32, _I8 = np.dtype(np.float32), np.dtype(np.int8)


def _float(name: str, trt_name: str, holder: Any, bits: int, storage: np.dtype = _F32, **kw: Any) -> DType:
    """A float row; its largest and smallest normal values come from ``ml_dtypes.finfo``."""
    fi = ml_dtypes.finfo(holder)
    return DType(name, trt_name, name, np.dtype(holder), storage, bits, "float", max=float(fi.max),
                 tiny=float(fi.tiny), **kw)  # fmt: skip


def _int(name: str, trt_name: str, holder: Any, bits: int, storage: Any = None, **kw: Any) -> DType:
    """An integer (or bool) row; its range comes from ``ml_dtypes.iinfo``."""
    h = np.dtype(holder)
    if h == np.bool_:
        rng, kind = (0, 1), "bool"
    else:
        ii = ml_dtypes.iinfo(holder)
        rng, kind = (int(ii.min), int(ii.max)), "uint" if int(ii.min) == 0 else "int"
    return DType(name, trt_name, name, h, np.dtype(storage or holder), bits, kind, range=rng, **kw)


# Tolerances, by the precision a network computes in. float32: a few ulps of accumulated
# rounding over long reductions (rtol 1e-4 is the ONNX Runtime comparison target of the
# project). float16 has a 2**-11 ~ 5e-4 ulp and deep networks accumulate several;
# bfloat16 has a 2**-8 ~ 4e-3 ulp. fp8 e4m3 rounds to 3 mantissa bits (half-ulp 2**-4).
# int8 (Q/DQ) networks are off by whole quantization steps: a step of an activation with
# amax ~3 is 3/127 ~ 0.024, so two steps fit atol 5e-2, and rtol 1e-1 covers large
# values. fp4 e2m1 keeps 1 mantissa bit (half-ulp up to 1/4 of the value) and int4 has
# 15 levels, so their steps are an order larger.
TABLE: dict[str, DType] = {
    d.name: d
    for d in (
        _float("float32", "FLOAT", np.float32, 32, _F32, dlpack=(2, 32), tolerance=(1e-5, 1e-4),
               aliases=("fp32", "float", "f32", "single")),
        _float("float16", "HALF", np.float16, 16, np.dtype(np.float16), dlpack=(2, 16), tolerance=(1e-3, 1e-2),
               aliases=("fp16", "half", "f16")),
        _float("bfloat16", "BF16", ml_dtypes.bfloat16, 16, dlpack=(4, 16), tolerance=(1e-2, 5e-2), aliases=("bf16",)),
        _float("fp8", "FP8", ml_dtypes.float8_e4m3fn, 8, saturates=True, dlpack=(10, 8), tolerance=(5e-2, 1.25e-1),
               aliases=("float8", "float8_e4m3fn", "fp8e4m3", "e4m3")),
        _float("fp4", "FP4", ml_dtypes.float4_e2m1fn, 4, saturates=True, dlpack=(17, 4), tolerance=(2.5e-1, 2.5e-1),
               aliases=("float4", "float4_e2m1fn", "fp4e2m1", "e2m1")),
        _float("e8m0", "E8M0", ml_dtypes.float8_e8m0fnu, 8, dlpack=(14, 8), aliases=("float8_e8m0fnu", "fp8e8m0")),
        _int("int4", "INT4", ml_dtypes.int4, 4, _I8, dlpack=(0, 4), tolerance=(1e-1, 2.5e-1)),
        _int("int8", "INT8", np.int8, 8, dlpack=(0, 8), tolerance=(5e-2, 1e-1), aliases=("i8",)),
        _int("uint8", "UINT8", np.uint8, 8, dlpack=(1, 8), aliases=("u8",)),
        _int("int32", "INT32", np.int32, 32, dlpack=(0, 32), aliases=("i32",)),
        _int("int64", "INT64", np.int64, 64, dlpack=(0, 64), aliases=("i64",)),
        _int("bool", "BOOL", np.bool_, 8, dlpack=(6, 8), aliases=("bool_",)),
    )
}  # fmt: skip

FLOATS = ("float32", "float16", "bfloat16")  # the types a network can compute in
QUANTIZED = ("int8", "fp8", "int4", "fp4")  # the output types of a Quantize layer
# TensorRT's builder produces these only from Quantize, DynamicQuantize, Constant,
# Concatenation, Shuffle or Identity layers (NvInfer.h; the "quantized types" guide).
LOW_PRECISION = ("fp8", "fp4", "int4")

_ALIASES = {a: d.name for d in TABLE.values() for a in (d.name, *d.aliases)}
_FROM_TRT_NAME = {d.trt_name: d.name for d in TABLE.values()}
_FROM_HOLDER = {d.holder: d.name for d in TABLE.values()}
_FLOATISH = frozenset(n for n, d in TABLE.items() if d.is_float)
_STORAGE = {n: d.storage for n, d in TABLE.items()}
_by_trt_value: dict[int, str] | None = None  # int(trt.DataType) -> canonical name, filled on first use


def info(dtype: DTypeLike) -> DType:
    """The ``DType`` record of a dtype (any spelling ``canonical`` accepts)."""
    if dtype.__class__ is str and dtype in TABLE:
        return TABLE[dtype]  # type: ignore[index]
    return TABLE[canonical(dtype)]


def from_trt(dtype: Any) -> str:
    """Canonical name of a ``trt.DataType``: the fast path behind ``Tensor.dtype``.

    Reading ``DataType.name`` through pybind costs about four times ``int(dtype)``,
    and every op reads its inputs' dtypes several times, so the lookup is by value.
    """
    global _by_trt_value
    if _by_trt_value is None:
        trt = _trt.load()
        _by_trt_value = {int(getattr(trt, d.trt_attr)): n for n, d in TABLE.items() if hasattr(trt, d.trt_attr)}
    name = _by_trt_value.get(int(dtype))
    return name if name is not None else canonical(dtype)


def canonical(dtype: DTypeLike) -> str:
    """Canonical dtype name for a string alias, NumPy (or ml_dtypes) dtype or ``trt.DataType``."""
    if isinstance(dtype, str):
        key = dtype.lower()
        if key in _ALIASES:
            return _ALIASES[key]
        raise ShapeError(f"unknown dtype {dtype!r}; expected one of {', '.join(TABLE)}")
    trt_name = getattr(dtype, "name", None)
    if type(dtype).__name__ == "DataType" and trt_name in _FROM_TRT_NAME:
        return _FROM_TRT_NAME[trt_name]
    try:
        np_dtype = np.dtype(dtype)
    except TypeError as e:
        raise ShapeError(f"unknown dtype {dtype!r}") from e
    if np_dtype in _FROM_HOLDER:
        return _FROM_HOLDER[np_dtype]
    if np_dtype.name in _ALIASES:
        return _ALIASES[np_dtype.name]
    raise ShapeError(f"dtype {np_dtype.name} has no TensorRT equivalent; TensorRT types are {', '.join(TABLE)}")


def to_trt(dtype: DTypeLike):
    """``trt.DataType`` for a dtype."""
    return getattr(_trt.load(), info(dtype).trt_attr)


def to_numpy(dtype: DTypeLike) -> np.dtype:
    """NumPy dtype the reference interpreter stores ``dtype`` in (float32 for narrow floats, int8 for int4).

    Use ``holder`` for the dtype of user-facing arrays (``ml_dtypes.bfloat16``, ...).
    """
    if dtype.__class__ is str:  # a canonical name: skip canonical()
        np_dtype = _STORAGE.get(dtype)  # type: ignore[arg-type]
        if np_dtype is not None:
            return np_dtype
    return info(dtype).storage


def holder(dtype: DTypeLike) -> np.dtype:
    """NumPy dtype of user-facing arrays of ``dtype``: ``ml_dtypes`` types for bfloat16, fp8, fp4, e8m0, int4."""
    return info(dtype).holder


def is_float(dtype: DTypeLike) -> bool:
    if dtype.__class__ is str and dtype in _FLOATISH:  # the common case: a Tensor.dtype
        return True
    return info(dtype).is_float


def qmax(dtype: DTypeLike) -> float:
    """Largest magnitude a symmetric quantization to ``dtype`` produces: 127 (int8), 448 (fp8), 7, 6."""
    d = info(dtype)
    if d.range is not None:
        return float(d.range[1])
    if d.max is None:
        raise ShapeError(f"dtype {d.name} has no quantization range")
    return d.max


# ------------------------------------------------------------------ the feed rule
_KIND_OF = {"f": "float", "i": "int", "u": "int", "b": "bool"}
_WORD = {"float": "float", "int": "integer", "bool": "bool"}


def _kind(dt: np.dtype) -> str | None:
    """'float', 'int' or 'bool' for a NumPy or ml_dtypes dtype (ml_dtypes types have NumPy kind 'V')."""
    name = _FROM_HOLDER.get(dt)
    if name is not None:
        k = TABLE[name].kind
        return "int" if k == "uint" else k
    return _KIND_OF.get(dt.kind)


def convert(value: Any, dtype: DTypeLike, *, name: str = "feed") -> np.ndarray:
    """``value`` as an array of ``dtype``'s holder, converted only when no value changes.

    The rule, for every input of the interpreter and of a runtime Session:

    - an array of the input's own type (``ml_dtypes`` arrays for bfloat16, fp8, fp4,
      e8m0 and int4) passes unchanged;
    - an integer array feeds an integer input when every value fits its range
      (int64 ids within int32 range feed an int32 input);
    - a float array feeds a float input when every value is exact in the input's type
      (float64 values exact in float32), checked on the values;
    - narrow float inputs (bfloat16, fp8, fp4) also take float arrays whose values
      are exact in float32, rounded as a TensorRT cast rounds them (ties to even;
      fp8 and fp4 saturate at +-448 and +-6);
    - everything else raises ``ShapeError`` naming the input, both types and the
      first value that would change (an id of 2**32+7 fed to int32 raises instead of
      wrapping to 7; a float fed to an integer input raises).

    Example::

        dtypes.convert(np.array([1, 2], np.int64), "int32", name="ids")  # int32 [1, 2]
    """
    d = info(dtype)
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    src = array.dtype
    if src == d.holder:
        return array
    src_kind, want_kind = _kind(src), _kind(d.holder)
    if src_kind != want_kind:
        raise ShapeError(
            f"{name}: input has dtype {d.name}, got an array of dtype {src} "
            f"({_WORD.get(src_kind, src.kind)} values, expected {_WORD[want_kind]}); "
            "convert it explicitly if that is intended"
        )
    if d.kind in ("int", "uint"):
        lo, hi = d.range  # type: ignore[misc]
        wide = array.astype(np.int64) if src.kind == "V" else array
        bad = (wide < lo) | (wide > hi) if wide.size else np.zeros(0, bool)
        if bad.any():
            _raise_changed(name, d, src, array, bad, f"outside {d.name}'s range {lo}..{hi}")
        return wide.astype(d.holder)
    if d.kind == "bool":
        return array.astype(np.bool_)
    # floats
    if d.narrow and d.name != "e8m0":
        f32 = _exact(name, array, np.dtype(np.float32), d, src)
        if d.saturates:
            f32 = np.clip(f32, -d.max, d.max)  # ml_dtypes casts do not saturate (500 -> NaN in e4m3fn)
        return f32.astype(d.holder)
    return _exact(name, array, d.holder, d, src)


def _exact(name: str, array: np.ndarray, target: np.dtype, d: DType, src: np.dtype) -> np.ndarray:
    """``array`` cast to ``target``, raising when a value changes."""
    if array.dtype == target:
        return array
    with np.errstate(over="ignore", invalid="ignore"):
        out = array.astype(target)
        back = out.astype(array.dtype) if array.dtype.kind != "V" else out
        changed = (back != array) & ~(np.isnan(back) & np.isnan(array.astype(np.float64)))
    if changed.any():
        _raise_changed(name, d, src, array, changed, f"not exact in {target.name}")
    return out


def _raise_changed(name: str, d: DType, src: np.dtype, array: np.ndarray, bad: np.ndarray, why: str) -> None:
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    value = (array[where] if array.ndim else array[()]).item()
    raise ShapeError(
        f"{name}: input has dtype {d.name}, got an array of dtype {src} whose value {value!r} at index "
        f"{where} is {why}; {int(bad.sum())} value(s) would change. Convert the array yourself if that is intended"
    )


# ------------------------------------------------------------- narrow arrays
def cast(value: Any, dtype: DTypeLike, *, name: str = "value") -> np.ndarray:
    """``value`` as an array of ``dtype``'s holder, rounded as a TensorRT cast rounds.

    Floats round half to even; fp8 and fp4 saturate at their largest finite value (the
    ``ml_dtypes`` casts alone turn 500 into NaN in e4m3fn). Integer types take integer
    values in range only (``convert``'s rule): silently wrapping a weight is never wanted.
    """
    d = info(dtype)
    array = np.asarray(value)
    if array.dtype == d.holder:
        return array
    if d.is_float and _kind(array.dtype) == "float":
        a32 = array.astype(np.float32)
        if d.saturates:
            a32 = np.clip(a32, -d.max, d.max)
        with np.errstate(invalid="ignore", over="ignore"):
            return a32.astype(d.holder)
    return convert(array, d.name, name=name)


def pack(array: np.ndarray) -> np.ndarray:
    """The bytes TensorRT reads for an array of its type: 4-bit types two per byte, the first in the low bits."""
    d = TABLE[_FROM_HOLDER[array.dtype]] if array.dtype in _FROM_HOLDER else None
    flat = np.ascontiguousarray(array).reshape(-1)
    if d is None or d.bits % 8 == 0:
        return flat.view(np.uint8) if d is not None and d.narrow else flat
    codes = flat.view(np.uint8) & np.uint8(0x0F)
    if codes.size % 2:
        codes = np.append(codes, np.uint8(0))
    return codes[0::2] | (codes[1::2] << np.uint8(4))


def unpack(packed: np.ndarray, dtype: DTypeLike, count: int) -> np.ndarray:
    """The inverse of ``pack``: ``count`` values of a 4-bit ``dtype`` from packed bytes."""
    d = info(dtype)
    b = np.asarray(packed, np.uint8).reshape(-1)
    codes = np.empty(b.size * 2, np.uint8)
    codes[0::2], codes[1::2] = b & np.uint8(0x0F), b >> np.uint8(4)
    codes = codes[:count]
    if d.kind == "int":  # sign-extend the 4-bit two's complement code
        return (codes.astype(np.int8) << 4 >> 4).astype(d.holder)
    return codes.view(d.holder)


def producer_rule(what: str, dtype: str) -> str:
    """The sentence of TensorRT's rule on which layers may produce fp8, fp4 and int4 tensors."""
    return (
        f"{what}: TensorRT only produces {dtype} tensors from Quantize, DynamicQuantize, Constant, "
        "Concatenation, Shuffle or Identity layers, never from a Cast (the builder refuses it); "
        "use ops.quantize / ops.dynamic_quantize, or a constant of that dtype"
    )
