"""Explicit quantization: quantize, dequantize, fake (Q then DQ) and dynamic block quantization.

TensorRT 11 has no implicit INT8: a network is quantized by placing
``add_quantize``/``add_dequantize`` pairs, and TensorRT fuses them into the
neighbouring convolutions and matmuls (TensorRT developer guide, "Q/DQ
layer-placement recommendations"). Quantization is symmetric (TensorRT's
"quantized types" guide): ``q = clip(round_half_even(x / scale), lo, hi)`` for
int8/int4, ``q = cast(clip(x / scale, -max, max))`` for fp8/fp4, and
``x_hat = q * scale``; the ranges are the rows of ``trtdsl.dtypes.TABLE``. A scale
is a positive scalar (per-tensor), a 1-D array along ``axis`` (per-channel, for
weights), or an array of the input's rank with ``block_shape`` (block-wise, for
INT4 weight-only matmuls). Activations in MXFP8 and NVFP4 are quantized at run
time by ``dynamic_quantize``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import ShapeError, WeightError
from ..network import Network
from ..tensor import Tensor
from ._util import axis as norm_axis

__all__ = ["quantize", "dequantize", "fake_quantize", "dynamic_quantize", "dynamic_dequantize"]

# TensorRT's fixed pairings (IDynamicQuantizeLayer): value type -> (block size, scale type).
DYNAMIC = {"fp4": (16, "fp8"), "fp8": (32, "e8m0")}


def _scale(
    net: Network,
    x: Tensor,
    scale: Any,
    axis: int | None,
    *,
    op: str,
    name: str,
    const: str | None = None,
    block: tuple[int, ...] | None = None,
) -> tuple[Tensor, int | None]:
    """The scale as a float32 constant named ``const`` (or the given Tensor), checked against ``x``, ``axis``, ``block``."""
    ax = None if axis is None else norm_axis(axis, x.ndim, f"{op} axis")
    if isinstance(scale, Tensor):
        if block is not None:
            if scale.ndim != x.ndim:
                raise ShapeError(f"{op} {name!r}: a block scale must have the input's rank {x.ndim}, got {scale.shape}")
        elif ax is None and scale.ndim != 0:
            raise ShapeError(f"{op} {name!r}: a per-tensor scale must be a scalar, got shape {scale.shape}; pass axis=")
        return scale, ax
    s = np.asarray(scale, dtype=np.float64)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise WeightError(
            f"{op} {name!r}: scales must be positive and finite, got {s.ravel()[:4].tolist()}"
            f"{'...' if s.size > 4 else ''}; a zero scale comes from an all-zero amax"
        )
    if block is not None:
        want = tuple(d // b if d >= 0 else -1 for d, b in zip(x.shape, block, strict=True))
        if s.shape != want and not (s.ndim == x.ndim and all(w < 0 or w == g for w, g in zip(want, s.shape))):
            raise ShapeError(
                f"{op} {name!r}: block scale for input {x.shape} with block shape {block} needs shape {want}, "
                f"got {s.shape}"
            )
    elif ax is None:
        if s.size != 1:
            raise ShapeError(
                f"{op} {name!r}: per-tensor quantization needs a scalar scale, got shape {s.shape}; "
                "pass axis= for per-channel scales or block_shape= for block scales"
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


def _block(x: Tensor, block_shape: Sequence[int] | None, op: str) -> tuple[int, ...] | None:
    if block_shape is None:
        return None
    b = tuple(int(v) for v in block_shape)
    if len(b) != x.ndim or any(v <= 0 for v in b):
        raise ShapeError(f"{op} {x.name!r}: block_shape must give a positive size per axis of {x.shape}, got {b}")
    for d, v in zip(x.shape, b, strict=True):
        if d >= 0 and d % v:
            raise ShapeError(f"{op} {x.name!r}: block_shape {b} does not divide input shape {x.shape}")
    return b


def quantize(
    x: Tensor,
    scale: Any,
    *,
    axis: int | None = None,
    block_shape: Sequence[int] | None = None,
    dtype: dtypes.DTypeLike = "int8",
    name: str | None = None,
) -> Tensor:
    """Quantize ``x`` to int8, fp8, int4 or fp4: ``clip(round_half_even(x / scale), -128, 127)`` for int8.

    ``scale`` is a positive scalar for per-tensor quantization, a 1-D array of
    ``x.shape[axis]`` values for per-channel quantization along ``axis``, or an
    array of ``x.shape // block_shape`` for block quantization (INT4 weights take
    blocks of 64 or 128 along one of the last two axes).

    Example::

        q = ops.quantize(w, np.abs(w_np).max(axis=(1, 2, 3)) / 127, axis=0)
        q4 = ops.quantize(w, w_amax_per_block / 7, block_shape=(1, 128), dtype="int4")
    """
    net = x.net
    dt = dtypes.canonical(dtype)
    if dt not in dtypes.QUANTIZED:
        raise ShapeError(f"quantize {x.name!r}: dtype must be one of {dtypes.QUANTIZED}, got {dtype!r}")
    if not dtypes.is_float(x.dtype):
        raise ShapeError(f"quantize {x.name!r}: input must be a float tensor, got {x.dtype}")
    base = name or "quantize"
    block = _block(x, block_shape, "quantize")
    s, ax = _scale(net, x, scale, axis, op="quantize", name=base, block=block)
    # x is quantized in its own dtype: a cast to the compute dtype first would only add a rounding.
    layer = net.trt.add_quantize(x.trt, s.trt, dtypes.to_trt(dt))
    return _qdq_layer(net, layer, ax, block, "quantize", base)


def dequantize(
    q: Tensor,
    scale: Any,
    *,
    axis: int | None = None,
    block_shape: Sequence[int] | None = None,
    dtype: dtypes.DTypeLike | None = None,
    name: str | None = None,
) -> Tensor:
    """Dequantize int8/fp8/int4/fp4 ``q`` to ``q * scale`` in ``dtype`` (default: the compute dtype).

    Example::

        x_hat = ops.dequantize(q, 0.02)
    """
    net = q.net
    if q.dtype not in dtypes.QUANTIZED:
        raise ShapeError(f"dequantize {q.name!r}: input must be one of {dtypes.QUANTIZED}, got {q.dtype}")
    dt = dtypes.canonical(dtype) if dtype is not None else net.compute_dtype
    if dt not in dtypes.FLOATS:
        raise ShapeError(f"dequantize {q.name!r}: output dtype must be one of {dtypes.FLOATS}, got {dtype!r}")
    base = name or "dequantize"
    block = _block(q, block_shape, "dequantize")
    s, ax = _scale(net, q, scale, axis, op="dequantize", name=base, block=block)
    layer = net.trt.add_dequantize(q.trt, s.trt, dtypes.to_trt(dt))
    return _qdq_layer(net, layer, ax, block, "dequantize", base)


def fake_quantize(
    x: Tensor,
    scale: Any = None,
    *,
    amax: Any = None,
    axis: int | None = None,
    block_shape: Sequence[int] | None = None,
    dtype: dtypes.DTypeLike = "int8",
    name: str | None = None,
) -> Tensor:
    """Quantize then dequantize ``x``: what TensorRT fuses into the next conv or matmul.

    Give either ``scale`` or ``amax`` (``scale = amax / dtypes.qmax(dtype)``: 127 for int8,
    448 for fp8, 7 for int4, 6 for fp4). The result has ``x``'s float dtype.

    Example::

        x = ops.fake_quantize(x, amax=6.0)                     # activation, per-tensor
        w = ops.fake_quantize(w, amax=w_amax_per_k, axis=0)     # conv weight KCRS, per-channel
    """
    net = x.net
    dt = dtypes.canonical(dtype)
    if (scale is None) == (amax is None):
        raise ShapeError(f"fake_quantize {x.name!r}: give exactly one of scale= or amax=")
    if scale is None:
        top = dtypes.qmax(dt)
        scale = amax / top if isinstance(amax, Tensor) else np.asarray(amax, np.float64) / top
    full = net.op_name(name, "fake_quantize", x)
    prefix = net.current_scope
    with net.scope(full[len(prefix) + 1 :] if prefix else full):
        block = _block(x, block_shape, "fake_quantize")
        s, ax = _scale(net, x, scale, axis, op="fake_quantize", name=full, const="scale", block=block)
        q = quantize(x, s, axis=ax, block_shape=block, dtype=dt, name="q")
        return dequantize(q, s, axis=ax, block_shape=block, dtype=x.dtype, name="dq")


def dynamic_quantize(
    x: Tensor,
    *,
    dtype: dtypes.DTypeLike = "fp4",
    axis: int = -1,
    double_scale: float = 1.0,
    name: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Quantize ``x`` at run time in blocks: NVFP4 (``dtype='fp4'``) or MXFP8 (``dtype='fp8'``).

    The pairing is TensorRT's: NVFP4 is fp4 e2m1 values in blocks of 16 with fp8
    e4m3 block scales; MXFP8 is fp8 e4m3 values in blocks of 32 with e8m0
    (power-of-two) block scales. ``x`` is 2-D or 3-D, blocked along its last or
    second-to-last ``axis``, whose size must be a multiple of the block. Each
    block's scale is its amax over the value type's max (6 or 448), divided by
    the build-time ``double_scale`` (NVFP4 only: TensorRT takes none for MXFP8) and
    stored in the scale type; values are
    ``x / (scale * double_scale)`` rounded to the value type. Returns
    ``(values, scales)``; ``dynamic_dequantize`` reverses it.

    Example::

        q, s = ops.dynamic_quantize(x, dtype="fp4", double_scale=amax / (6 * 448))
        x_hat = ops.dynamic_dequantize(q, s, double_scale=amax / (6 * 448))
    """
    net = x.net
    dt = dtypes.canonical(dtype)
    if dt not in DYNAMIC:
        raise ShapeError(f"dynamic_quantize {x.name!r}: dtype must be 'fp4' (NVFP4) or 'fp8' (MXFP8), got {dtype!r}")
    if x.dtype not in dtypes.FLOATS:
        raise ShapeError(f"dynamic_quantize {x.name!r}: input must be one of {dtypes.FLOATS}, got {x.dtype}")
    if x.ndim not in (2, 3):
        raise ShapeError(f"dynamic_quantize {x.name!r}: input must be 2-D or 3-D, got shape {x.shape}")
    ax = norm_axis(axis, x.ndim, "dynamic_quantize axis")
    if ax < x.ndim - 2:
        raise ShapeError(
            f"dynamic_quantize {x.name!r}: axis must be the last or second-to-last of {x.shape}, got {axis}"
        )
    block, scale_dt = DYNAMIC[dt]
    n = x.shape[ax]
    if n < 0 or n % block:
        raise ShapeError(
            f"dynamic_quantize {x.name!r}: axis {ax} of {x.shape} must be a build-time multiple of {block} "
            f"({'NVFP4' if dt == 'fp4' else 'MXFP8'} blocks)"
        )
    ds = float(double_scale)
    if not np.isfinite(ds) or ds <= 0:
        raise WeightError(f"dynamic_quantize {x.name!r}: double_scale must be positive and finite, got {ds}")
    if scale_dt == "e8m0" and ds != 1.0:
        # TensorRT: "IDynamicQuantizeNode with scaleOutput kE8M0 requires only one input".
        raise ShapeError(f"dynamic_quantize {x.name!r}: MXFP8 (e8m0 scales) takes no double_scale, got {ds}")
    lname = net.op_name(name, "dynamic_quantize", x)
    layer = net.trt.add_dynamic_quantize(x.trt, ax, block, dtypes.to_trt(dt), dtypes.to_trt(scale_dt))
    if scale_dt == "fp8":  # NVFP4's fp8 block scales are quantized by the build-time double scale
        dq_scale = net.constant(np.float32(ds), f"{lname}.double_scale", dtype=x.dtype)
        layer.set_input(1, dq_scale.trt)
    outs = net.add(layer, "dynamic_quantize", lname)
    return outs[0], outs[1]


def dynamic_dequantize(
    q: Tensor,
    scale: Tensor,
    *,
    axis: int = -1,
    double_scale: float = 1.0,
    dtype: dtypes.DTypeLike | None = None,
    name: str | None = None,
) -> Tensor:
    """Dequantize the ``(values, scales)`` of ``dynamic_quantize``: ``q * scale * double_scale``.

    The fp8 block scales of NVFP4 are dequantized first (``scale * double_scale``), then
    the values by block; MXFP8's e8m0 scales dequantize the values directly.

    Example::

        x_hat = ops.dynamic_dequantize(*ops.dynamic_quantize(x, dtype="fp8"))
    """
    net = q.net
    if q.dtype not in DYNAMIC:
        raise ShapeError(f"dynamic_dequantize {q.name!r}: values must be fp4 or fp8, got {q.dtype}")
    block, scale_dt = DYNAMIC[q.dtype]
    if scale.dtype != scale_dt:
        raise ShapeError(
            f"dynamic_dequantize {q.name!r}: {q.dtype} values take {scale_dt} block scales, got {scale.dtype}"
        )
    ax = norm_axis(axis, q.ndim, "dynamic_dequantize axis")
    shape = [1] * q.ndim
    shape[ax] = block
    dt = dtypes.canonical(dtype) if dtype is not None else net.compute_dtype
    full = net.op_name(name, "dynamic_dequantize", q)
    prefix = net.current_scope
    with net.scope(full[len(prefix) + 1 :] if prefix else full):
        if scale_dt == "fp8":
            s = dequantize(scale, double_scale, dtype=dt, name="scale")
        else:
            s = scale
            if float(double_scale) != 1.0:
                raise ShapeError(f"dynamic_dequantize {q.name!r}: MXFP8 (e8m0 scales) takes no double_scale")
        return dequantize(q, s, block_shape=shape, dtype=dt, name="values")


def _qdq_layer(net: Any, layer: Any, axis: int | None, block: tuple[int, ...] | None, kind: str, name: str) -> Tensor:
    """Set a Q/DQ layer's per-channel axis (None: per-tensor) or block shape, and register it."""
    if axis is not None:
        layer.axis = axis
    if block is not None:
        layer.block_shape = block
    return net.register(layer, kind, name)
