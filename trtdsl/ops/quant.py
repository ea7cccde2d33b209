"""Explicit quantization: quantize, dequantize and fake (Q then DQ) quantization.

TensorRT 11 has no implicit INT8: a network is quantized by placing
``add_quantize``/``add_dequantize`` pairs, and TensorRT fuses them into the
neighbouring convolutions and matmuls (TensorRT developer guide, "Explicit
Quantization", Q/DQ layer-placement recommendations). Quantization is symmetric: ``q = clamp(round_half_even(x / scale), -128, 127)``
and ``x_hat = q * scale``. A scale is a positive scalar (per-tensor) or a 1-D
array along ``axis`` (per-channel, for weights).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtypes
from ..errors import ShapeError, WeightError
from ..network import Network
from ..tensor import Tensor
from ._util import axis as norm_axis

__all__ = ["quantize", "dequantize", "fake_quantize"]

_QTYPES = ("int8", "fp8")
_QMAX = {"int8": 127.0, "fp8": 448.0}


def _scale(
    net: Network, x: Tensor, scale: Any, axis: int | None, *, op: str, name: str, const: str | None = None
) -> tuple[Tensor, int | None]:
    """The scale as a float32 constant named ``const`` (or the given Tensor), checked against ``x`` and ``axis``."""
    ax = None if axis is None else norm_axis(axis, x.ndim, f"{op} axis")
    if isinstance(scale, Tensor):
        if ax is None and scale.ndim != 0:
            raise ShapeError(f"{op} {name!r}: a per-tensor scale must be a scalar, got shape {scale.shape}; pass axis=")
        return scale, ax
    s = np.asarray(scale, dtype=np.float64)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise WeightError(
            f"{op} {name!r}: scales must be positive and finite, got {s.ravel()[:4].tolist()}"
            f"{'...' if s.size > 4 else ''}; a zero scale comes from an all-zero amax"
        )
    if ax is None:
        if s.size != 1:
            raise ShapeError(
                f"{op} {name!r}: per-tensor quantization needs a scalar scale, got shape {s.shape}; "
                "pass axis= for per-channel scales"
            )
        s = s.reshape(())
    else:
        n = x.shape[ax]
        if s.ndim != 1 or (n >= 0 and s.shape[0] != n):
            raise ShapeError(
                f"{op} {name!r}: per-channel scale along axis {ax} needs shape ({n},) for input {x.shape}, "
                f"got {s.shape}"
            )
    return net.constant(s.astype(np.float32), const or f"{name}.scale", dtype="float32"), ax


def quantize(
    x: Tensor, scale: Any, *, axis: int | None = None, dtype: dtypes.DTypeLike = "int8", name: str | None = None
) -> Tensor:
    """Quantize ``x`` to int8 (or fp8): ``clamp(round_half_even(x / scale), -128, 127)``.

    ``scale`` is a positive scalar for per-tensor quantization, or a 1-D array of
    ``x.shape[axis]`` values for per-channel quantization along ``axis``.

    Example::

        q = ops.quantize(w, np.abs(w_np).max(axis=(1, 2, 3)) / 127, axis=0)
    """
    net = x.net
    dt = dtypes.canonical(dtype)
    if dt not in _QTYPES:
        raise ShapeError(f"quantize {x.name!r}: dtype must be one of {_QTYPES}, got {dtype!r}")
    if not dtypes.is_float(x.dtype):
        raise ShapeError(f"quantize {x.name!r}: input must be a float tensor, got {x.dtype}")
    base = name or "quantize"
    s, ax = _scale(net, x, scale, axis, op="quantize", name=base)
    # x is quantized in its own dtype: a cast to the compute dtype first would only add a rounding.
    return _qdq_layer(net, net.trt.add_quantize(x.trt, s.trt, dtypes.to_trt(dt)), ax, "quantize", base)


def dequantize(
    q: Tensor,
    scale: Any,
    *,
    axis: int | None = None,
    dtype: dtypes.DTypeLike | None = None,
    name: str | None = None,
) -> Tensor:
    """Dequantize int8/fp8 ``q`` to ``q * scale`` in ``dtype`` (default: the compute dtype).

    Example::

        x_hat = ops.dequantize(q, 0.02)
    """
    net = q.net
    if q.dtype not in _QTYPES:
        raise ShapeError(f"dequantize {q.name!r}: input must be one of {_QTYPES}, got {q.dtype}")
    dt = dtypes.canonical(dtype) if dtype is not None else net.compute_dtype
    if dt not in dtypes.FLOATS:
        raise ShapeError(f"dequantize {q.name!r}: output dtype must be one of {dtypes.FLOATS}, got {dtype!r}")
    base = name or "dequantize"
    s, ax = _scale(net, q, scale, axis, op="dequantize", name=base)
    return _qdq_layer(net, net.trt.add_dequantize(q.trt, s.trt, dtypes.to_trt(dt)), ax, "dequantize", base)


def fake_quantize(
    x: Tensor,
    scale: Any = None,
    *,
    amax: Any = None,
    axis: int | None = None,
    dtype: dtypes.DTypeLike = "int8",
    name: str | None = None,
) -> Tensor:
    """Quantize then dequantize ``x``: what TensorRT fuses into the next conv or matmul.

    Give either ``scale`` or ``amax`` (``scale = amax / 127`` for int8, ``amax / 448`` for fp8).
    The result has ``x``'s float dtype.

    Example::

        x = ops.fake_quantize(x, amax=6.0)                     # activation, per-tensor
        w = ops.fake_quantize(w, amax=w_amax_per_k, axis=0)     # conv weight KCRS, per-channel
    """
    net = x.net
    dt = dtypes.canonical(dtype)
    if (scale is None) == (amax is None):
        raise ShapeError(f"fake_quantize {x.name!r}: give exactly one of scale= or amax=")
    if scale is None:
        scale = (
            amax / _QMAX.get(dt, 127.0)
            if isinstance(amax, Tensor)
            else np.asarray(amax, np.float64) / _QMAX.get(dt, 127.0)
        )
    full = net.op_name(name, "fake_quantize", x)
    prefix = net.current_scope
    with net.scope(full[len(prefix) + 1 :] if prefix else full):
        s, ax = _scale(net, x, scale, axis, op="fake_quantize", name=full, const="scale")
        q = quantize(x, s, axis=ax, dtype=dt, name="q")
        return dequantize(q, s, axis=ax, dtype=x.dtype, name="dq")


def _qdq_layer(net: Any, layer: Any, axis: int | None, kind: str, name: str) -> Tensor:
    """Set a Q/DQ layer's per-channel axis (None: per-tensor) and register it."""
    if axis is not None:
        layer.axis = axis
    return net.register(layer, kind, name)
