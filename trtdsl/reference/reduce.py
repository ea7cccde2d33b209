"""Reduce, TopK and Cumulative layers."""

from __future__ import annotations

import numpy as np

from ..errors import InterpreterError
from .registry import Node, interprets


def _axes(mask: int, ndim: int) -> tuple[int, ...]:
    return tuple(i for i in range(ndim) if mask >> i & 1)


def _mean(x: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    m = np.mean(x, axis=axis, keepdims=keepdims)
    # Integer AVG stays integer in TensorRT; truncation toward zero is assumed here.
    return np.trunc(m).astype(x.dtype) if x.dtype.kind in "iu" else m.astype(x.dtype, copy=False)


_REDUCE = {
    "SUM": np.sum,
    "PROD": np.prod,
    "MAX": np.max,
    "MIN": np.min,
    "AVG": _mean,
}


@interprets("reduce")
def reduce(node: Node, x: np.ndarray) -> np.ndarray:
    # The prepared node keeps the layer's parameters (a change to the layer drops it: reference.watch).
    op, mask, keep = node.memo("reduce", lambda: (node.layer.op.name, node.layer.axes, bool(node.layer.keep_dims)))
    fn = _REDUCE.get(op)
    if fn is None:
        raise InterpreterError(f"reduce layer {node.name!r}: ReduceOperation.{op} has no reference implementation")
    out = fn(x, axis=_axes(mask, x.ndim), keepdims=keep)
    return np.asarray(out).astype(x.dtype, copy=False)


@interprets("topk")
def topk(node: Node, x: np.ndarray, k_tensor: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted top-k values and indices; equal values keep their order (lower index first)."""
    layer = node.layer
    axes = _axes(layer.axes, x.ndim)
    if len(axes) != 1:
        raise InterpreterError(f"topk layer {node.name!r}: axes bitmask {layer.axes:#b} must select exactly one axis")
    d = axes[0]
    k = int(np.asarray(k_tensor).reshape(-1)[0]) if k_tensor is not None else int(layer.k)
    if not 0 <= k <= x.shape[d]:
        raise InterpreterError(f"topk layer {node.name!r}: k={k} is outside 0..{x.shape[d]} (axis {d} of {x.shape})")
    key = x.astype(np.float64) if x.dtype.kind in "iub" else x
    if layer.op.name == "MAX":
        key = -key
    # A stable sort keeps equal keys in index order, so ties go to the lower index.
    order = np.argsort(key, axis=d, kind="stable")
    indices = np.take(order, np.arange(k), axis=d)
    values = np.take_along_axis(x, indices, axis=d)
    return values, indices.astype(np.int64 if node.out_dtypes[1] == "int64" else np.int32)


@interprets("cumulative")
def cumulative(node: Node, x: np.ndarray, axis: np.ndarray) -> np.ndarray:
    layer = node.layer
    op = layer.op.name
    if op != "SUM":
        raise InterpreterError(f"cumulative layer {node.name!r}: CumulativeOperation.{op} is not implemented")
    d = int(np.asarray(axis).reshape(-1)[0]) % x.ndim
    y = np.flip(x, d) if layer.reverse else x
    out = np.cumsum(y, axis=d, dtype=x.dtype)
    if layer.exclusive:
        # Shift by one along the axis: element j holds the sum of the elements before it.
        pad = [(0, 0)] * x.ndim
        pad[d] = (1, 0)
        out = np.pad(out, pad)[tuple(slice(0, n) for n in x.shape)]
    return np.flip(out, d) if layer.reverse else out
