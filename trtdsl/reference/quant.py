"""Quantize, dequantize and dynamic-quantize layers (explicit quantization, symmetric only).

The formulas are TensorRT's ("quantized types" guide, Quantization Schemes), with the
ranges from ``trtdsl.dtypes.TABLE``:

- ``quantize``: ``q = clip(round_half_even(x / scale), lo, hi)`` for int8 and int4;
  ``q = cast(clip(x / scale, -max, max))`` for fp8 (+-448) and fp4 (+-6).
- ``dequantize``: ``x = q * scale``.

The scale is a scalar (per-tensor), a 1-D array along ``layer.axis`` (per-channel), or
an array of the input's rank, each element covering a block (``layer.block_shape``, or
the ratio of the shapes when it is unset).

``dynamic_quantize`` (IDynamicQuantizeLayer) computes one scale per block of the
blocked axis, with a build-time double-quantization scale ``d``:

- NVFP4 (fp4 values, blocks of 16, fp8 scales): ``s = cast_fp8(clip(amax / 6 / d, 448))``
  and ``q = cast_fp4(clip(x / (s * d), -6, 6))``, as NVIDIA's ModelOpt reference does
  for TensorRT's ``TRT_FP4DynamicQuantize``;
- MXFP8 (fp8 values, blocks of 32, e8m0 scales): ``s = 2**ceil(log2(amax / 448 / d))``,
  the power of two rounded up so that no value saturates (cuDNN's block-scale quantize:
  ``scale = quantize_round_up(amax / vmax)``), and ``q = cast_fp8(clip(x / (s * d), +-448))``.

A block of zeros gets the smallest scale and zero values.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import InterpreterError, ShapeError, WeightError
from . import precision
from .registry import Node, interprets


def _block_shape(node: Node) -> tuple[int, ...] | None:
    try:
        b = tuple(node.layer.block_shape)
    except (RuntimeError, AttributeError):  # unset: TensorRT raises "Could not get block_shape"
        return None
    return b or None


def _broadcast_scale(node: Node, x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The scale shaped (or repeated) to broadcast against ``x``."""
    scale = np.asarray(scale, dtype=np.float32)
    if scale.size == 1 and scale.ndim <= 1:
        return scale.reshape(())
    if scale.ndim == 1:
        axis = node.layer.axis % x.ndim
        if scale.shape[0] != x.shape[axis]:
            raise ShapeError(
                f"{node.type} layer {node.index} {node.name!r}: per-channel scale has {scale.shape[0]} values "
                f"but axis {axis} of input {x.shape} has {x.shape[axis]}"
            )
        shape = [1] * x.ndim
        shape[axis] = -1
        return scale.reshape(shape)
    block = _block_shape(node)
    if scale.ndim == x.ndim:
        if block is None and all(s and d % s == 0 for d, s in zip(x.shape, scale.shape, strict=True)):
            block = tuple(d // s for d, s in zip(x.shape, scale.shape, strict=True))
        if block is not None and len(block) == x.ndim:
            full = tuple(d if b == -1 else b for d, b in zip(x.shape, block, strict=True))
            if all(s * b == d for s, b, d in zip(scale.shape, full, x.shape, strict=True)):
                for axis, b in enumerate(full):
                    if b > 1:
                        scale = np.repeat(scale, b, axis=axis)
                return scale
    raise ShapeError(
        f"{node.type} layer {node.index} {node.name!r}: scale of shape {scale.shape} fits neither per-tensor, "
        f"per-channel nor block quantization (block shape {block}) of input {x.shape}"
    )


def _check_zero_point(node: Node, zero_point: np.ndarray | None) -> None:
    if zero_point is not None and np.any(np.asarray(zero_point) != 0):
        raise WeightError(
            f"{node.type} layer {node.index} {node.name!r}: zero point must be 0: TensorRT supports "
            "symmetric quantization only, and its builder refuses a Q/DQ with a non-zero zero point"
        )


def quantize_values(q: np.ndarray, out: str) -> np.ndarray:
    """``x / scale`` (``q``) clipped and rounded to quantized type ``out``, in the interpreter's storage."""
    d = dtypes.TABLE[out]
    if d.kind == "int":
        return precision.round_int(q, out)
    if d.saturates:
        return precision.round_to(q, out)
    raise InterpreterError(f"quantize to {out} is not a TensorRT quantization (types: {dtypes.QUANTIZED})")


@interprets("quantize")
def quantize(node: Node, x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None) -> np.ndarray:
    _check_zero_point(node, zero_point)
    s = _broadcast_scale(node, x, scale)
    if np.any(s <= 0):
        raise WeightError(f"quantize layer {node.index} {node.name!r}: scale must be positive, got min {s.min()}")
    out = node.out_dtypes[0]
    if out not in dtypes.QUANTIZED:
        raise InterpreterError(f"quantize layer {node.index} {node.name!r}: output type {out} is not supported")
    return quantize_values(np.asarray(x, dtype=np.float32) / s, out)


@interprets("dequantize")
def dequantize(node: Node, q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None) -> np.ndarray:
    _check_zero_point(node, zero_point)
    s = _broadcast_scale(node, q, scale)
    return q.astype(np.float32) * s


@interprets("dynamic_quantize")
def dynamic_quantize(node: Node, x: np.ndarray, double_scale: np.ndarray | None = None) -> tuple:
    layer = node.layer
    out, scale_dt = node.out_dtypes
    if double_scale is None:
        if scale_dt == "fp8":
            raise InterpreterError(
                f"dynamic_quantize layer {node.index} {node.name!r}: NVFP4 needs the double-quantization scale input"
            )
        double_scale = np.float32(1)
    d = float(np.asarray(double_scale, np.float32).reshape(-1)[0])
    axis = layer.axis % x.ndim
    block = layer.block_size
    n = x.shape[axis]
    if n % block:
        raise ShapeError(
            f"dynamic_quantize layer {node.index} {node.name!r}: axis {axis} of {x.shape} is not a multiple of {block}"
        )
    xb = np.moveaxis(np.asarray(x, np.float32), axis, -1)
    lead = xb.shape[:-1]
    xb = xb.reshape(*lead, n // block, block)
    amax = np.abs(xb).max(axis=-1, keepdims=True)
    top = dtypes.qmax(out)
    if scale_dt == "fp8":  # NVFP4
        s = precision.round_to(amax / top / d, "fp8")
    else:  # MXFP8: e8m0, a power of two rounded up, within e8m0's exponent range
        e8m0 = dtypes.info("e8m0")
        lo, hi = np.log2(e8m0.tiny), np.log2(e8m0.max)
        with np.errstate(divide="ignore"):
            e = np.ceil(np.log2(amax / top / d))
        s = np.exp2(np.clip(np.where(np.isfinite(e), e, lo), lo, hi)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(s > 0, xb / (s * d), 0.0)
    values = quantize_values(v, out).reshape(*lead, n)
    scales = s.reshape(*lead, n // block)
    return np.moveaxis(values, -1, axis), np.moveaxis(scales, -1, axis)
