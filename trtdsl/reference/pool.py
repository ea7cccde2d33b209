"""Reference implementations: pooling (N-D) and cross-channel LRN.

Pooling reduces the padded input one spatial dim at a time (max and sum are
separable), with one elementwise ``np.maximum``/``np.add`` per window offset on
strided slices: sum(window) whole-tensor operations, 20x faster than reducing
a window view over its small trailing axes for a 3x3 window. Large windows
with few outputs (global pooling) reduce the window view (see
``reference.conv``) instead, which is the faster one there.

Following NvInfer.h, an average divides by the overlap of
the window with the unpadded input when ``average_count_excludes_padding``
is set (TensorRT's default), otherwise by its overlap with the padded input;
the part of a last window that EXPLICIT_ROUND_UP lets hang past the padding
counts in neither.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .conv import kernel_offsets, pad_or_crop, resolve_padding, windows
from .kernels import jit
from .registry import Node, interprets


def _count(real: tuple[int, ...], dims: list[tuple[int, int, int, int]], window: tuple[int, ...],
           stride: tuple[int, ...], include_padding: bool) -> np.ndarray:  # fmt: skip
    """Per-output-pixel divisor: window overlap with the input (and its padding if included)."""
    ones = np.ones(real, dtype=np.float32)
    if include_padding:
        ones = pad_or_crop(ones, [d[0] for d in dims], [d[1] for d in dims], 1.0)
        mask = pad_or_crop(ones, [0] * len(dims), [d[3] for d in dims])
    else:
        mask = pad_or_crop(ones, [d[0] for d in dims], [d[1] + d[3] for d in dims])
    out = tuple(d[2] for d in dims)
    nd = len(window)
    return windows(mask, window, stride, (1,) * nd, out).sum(axis=tuple(range(nd, 2 * nd)))


_MAX_OFFSETS = 64  # larger windows reduce a window view: fewer, longer NumPy calls


def _reduce_windows(
    ufunc: np.ufunc, x: np.ndarray, window: tuple[int, ...], stride: tuple[int, ...],
    dims: list[tuple[int, int, int, int]], *, dtype: np.dtype, fill: float, empty: Callable = np.empty,
) -> np.ndarray:  # fmt: skip
    """``ufunc`` over each window of the trailing len(window) dims of ``x`` padded with ``fill``, in ``dtype``.

    ``empty(shape, dtype)`` allocates the passes' arrays (``Node.empty``, to reuse dead buffers).
    """
    nd = len(window)
    out = tuple(d[2] for d in dims)
    if math.prod(window) > _MAX_OFFSETS or math.prod(out) == 1:
        xp = pad_or_crop(x, [d[0] for d in dims], [d[1] + d[3] for d in dims], fill)
        view = windows(xp, window, stride, (1,) * nd, out)
        return ufunc.reduce(view, axis=tuple(range(xp.ndim, view.ndim)), dtype=dtype)
    # Max and sum are separable: reduce one dim at a time, outermost first, so that the
    # larger early passes run along contiguous rows and only the last one is strided.
    # Padding holds ``fill``, the identity of ``ufunc``, so each window offset only
    # reduces the outputs that it reads real input for (as in conv.kernel_offsets), and
    # no padded copy is made.
    acc, made = x, False  # made: acc lies in an array made here, not in x
    for axis, f, s, m, d in zip(range(x.ndim - nd, x.ndim), window, stride, out, dims, strict=True):
        lead = (slice(None),) * axis
        boxes = [
            (dst, src) for _, (dst,), (src,) in kernel_offsets((acc.shape[axis],), (f,), (s,), (1,), (m,), (d[0],))
        ]
        whole = [src for dst, src in boxes if dst == slice(0, m)]
        if len(whole) == f == 1:
            acc = acc[(*lead, whole[0])]
            continue
        new = empty((*acc.shape[:axis], m, *acc.shape[axis + 1 :]), dtype)
        if whole:
            # Start from the offsets that read real input for every output: no fill pass.
            for src in whole[:2]:
                boxes.remove((slice(0, m), src))
            parts = [acc[(*lead, src)] for src in whole[:2]]
            if len(parts) == 2:
                ufunc(*parts, out=new)
            else:
                new[...] = parts[0]
        else:
            new.fill(fill)
        for dst, src in boxes:
            part = new[(*lead, dst)]
            ufunc(part, acc[(*lead, src)], out=part)
        acc, made = new, True
    return acc if made else np.array(acc, dtype=dtype)


def _pool_plan(layer, shape: tuple[int, ...]) -> tuple:
    """(window, stride, padding dims, PoolingType name) of a pooling layer on an input of ``shape``."""
    window, stride = tuple(layer.window_size_nd), tuple(layer.stride_nd)
    spatial = shape[len(shape) - len(window) :]
    mode = layer.padding_mode.name
    dims = [
        resolve_padding(mode, i, f, s, p, q)
        for i, f, s, p, q in zip(spatial, window, stride, layer.pre_padding, layer.post_padding, strict=True)
    ]
    return window, stride, dims, layer.type.name  # IPoolingLayer.type is the PoolingType


@interprets("pooling", fresh=True)
def pooling(node: Node, x: np.ndarray) -> np.ndarray:
    # The prepared node keeps the layer's parameters (a change to the layer drops it: reference.watch).
    window, stride, dims, kind = node.memo(("pool", x.shape), lambda: _pool_plan(node.layer, x.shape))
    if kind == "MAX" and node.fast and len(window) == 2 == x.ndim - 2 and x.dtype == np.float32 and jit.enabled():
        y = node.empty((*x.shape[:2], *(d[2] for d in dims)), x.dtype)
        if jit.max_pool(x, window, stride, tuple(d[2] for d in dims), tuple(d[0] for d in dims), y):
            return y
    spatial = x.shape[x.ndim - len(window) :]
    result = None
    if kind in ("MAX", "MAX_AVERAGE_BLEND"):
        result = _reduce_windows(np.maximum, x, window, stride, dims, dtype=x.dtype, fill=-np.inf, empty=node.empty)
    if kind in ("AVERAGE", "MAX_AVERAGE_BLEND"):
        total = _reduce_windows(np.add, x, window, stride, dims, dtype=np.dtype(np.float64), fill=0.0)
        count = node.memo(
            f"count:{spatial}",
            lambda: _count(spatial, dims, window, stride, not node.layer.average_count_excludes_padding),
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            avg = (total / count).astype(x.dtype)
        if kind == "AVERAGE":
            return avg
        blend = np.float32(node.layer.blend_factor)
        return (1 - blend) * result + blend * avg
    return result


@interprets("lrn", fresh=True)
def lrn(node: Node, x: np.ndarray) -> np.ndarray:
    """Cross-channel LRN: x / (k + alpha / n * sum of x^2 over n neighbouring channels) ** beta.

    The channels are axis -3 (the operator documentation's a_{n-2}), i.e. C of NCHW.
    """
    layer = node.layer
    n = layer.window_size
    axis = x.ndim - 3
    half = (n - 1) // 2
    widths = [(0, 0)] * x.ndim
    widths[axis] = (half + 1, n - 1 - half)  # one more zero before, for the cumulative-sum difference
    c = np.cumsum(np.pad(np.square(x.astype(np.float64)), widths), axis=axis)
    total = np.take(c, range(n, c.shape[axis]), axis=axis) - np.take(c, range(c.shape[axis] - n), axis=axis)
    return (x / (layer.k + layer.alpha / n * total) ** layer.beta).astype(x.dtype)
