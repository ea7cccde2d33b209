"""Quantize and dequantize layers (explicit Q/DQ quantization, symmetric only).

``quantize``: ``q = clamp(round_half_even(x / scale), lo, hi)`` for int8 (and
int4); for fp8 the quotient is rounded to float8 e4m3, saturating at 448.
``dequantize``: ``x = q * scale``. The scale is a scalar (per-tensor), a 1-D
array along ``layer.axis`` (per-channel), or an array of the input's rank whose
every axis divides the input's (block quantization).
"""

from __future__ import annotations

import numpy as np

from ..errors import InterpreterError, ShapeError, WeightError
from . import precision
from .registry import Node, interprets

_INT_RANGE = {"int8": (-128, 127), "int4": (-8, 7)}


def _broadcast_scale(node: Node, x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The scale shaped (or repeated) to broadcast against ``x``."""
    scale = np.asarray(scale, dtype=np.float32)
    if scale.size == 1:
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
    if scale.ndim == x.ndim and all(s and d % s == 0 for d, s in zip(x.shape, scale.shape, strict=True)):
        for axis, (d, s) in enumerate(zip(x.shape, scale.shape, strict=True)):
            scale = np.repeat(scale, d // s, axis=axis)
        return scale
    raise ShapeError(
        f"{node.type} layer {node.index} {node.name!r}: scale of shape {scale.shape} fits neither per-tensor, "
        f"per-channel nor block quantization of input {x.shape}"
    )


def _check_zero_point(node: Node, zero_point: np.ndarray | None) -> None:
    if zero_point is not None and np.any(np.asarray(zero_point) != 0):
        raise WeightError(
            f"{node.type} layer {node.index} {node.name!r}: zero point must be 0 "
            "(TensorRT supports symmetric quantization only)"
        )


@interprets("quantize")
def quantize(node: Node, x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None) -> np.ndarray:
    _check_zero_point(node, zero_point)
    s = _broadcast_scale(node, x, scale)
    if np.any(s <= 0):
        raise WeightError(f"quantize layer {node.index} {node.name!r}: scale must be positive, got min {s.min()}")
    q = np.asarray(x, dtype=np.float32) / s
    out = node.out_dtypes[0]
    if out in _INT_RANGE:
        lo, hi = _INT_RANGE[out]
        return np.clip(np.rint(q), lo, hi).astype(np.int8)
    if out == "fp8":
        return precision.round_fp8(q)
    raise InterpreterError(f"quantize layer {node.index} {node.name!r}: output type {out} is not supported")


@interprets("dequantize")
def dequantize(node: Node, q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None) -> np.ndarray:
    _check_zero_point(node, zero_point)
    s = _broadcast_scale(node, q, scale)
    return q.astype(np.float32) * s
