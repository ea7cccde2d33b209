"""Reference implementations: convolution and deconvolution, N-D.

One code path for every rank, all in NCHW order. Each kernel offset copies its
strided, dilated slice of the unpadded input into an im2col matrix
(N, C, prod(F), *out) (the padding's share stays zero, so no padded copy is
made), and the kernel multiplies it from the left in one batched ``np.matmul``
over the groups (BLAS), which yields the output with no transpose. The bias
rides in the same GEMM as a column of weights against a row of ones. The
matrices are kept between calls (their zeros and ones never change). Special
cases, each for speed and each checked against torch like the general path:
a 1x1 kernel needs no im2col; a strided kernel with many offsets per stride
phase (a 7x7 stride-2 stem) fills the matrix phase by phase, its weight columns
permuted to match; a 3x3 stride-1 "same" convolution with enough channels runs
as Winograd F(2x2, 3x3) (``reference.winograd``); a depthwise kernel
multiply-accumulates over the kernel offsets instead. A ReLU fused into the
layer (``relu=True``) rectifies the output in the same call. A deconvolution
is the convolution of the stride-dilated (zero-stuffed) input with the
flipped, transposed kernel."""

from __future__ import annotations

import functools
import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from ..errors import UnsupportedLayerError
from . import winograd
from .elementwise import rectify
from .registry import Node, interprets


def resolve_padding(mode: str, size: int, window: int, stride: int, pre: int, post: int) -> tuple[int, int, int, int]:
    """``(before, after, output, overhang)`` of one spatial dim of a convolution or pooling.

    ``window`` is the dilated kernel extent ``1 + D * (F - 1)``. ``overhang``
    is how far the last window reaches past the padded input (EXPLICIT_ROUND_UP).
    """
    if mode.startswith("SAME"):
        out = -(-size // stride)
        total = max(0, (size - 1) // stride * stride + window - size)
        before = total // 2 if mode == "SAME_UPPER" else total - total // 2
        pre, post = before, total - before
    else:  # EXPLICIT_* (and the CAFFE_* modes of older TensorRT, which are explicit too)
        span = size + pre + post - window
        out = (-(-span // stride) if mode.endswith("ROUND_UP") else span // stride) + 1
    overhang = max(0, (out - 1) * stride + window - (size + pre + post))
    return pre, post, out, overhang


def resolve_deconv_padding(mode: str, size: int, window: int, stride: int, pre: int, post: int) -> tuple[int, int]:
    """``(before, after)`` cropped from the full transposed-convolution output of one dim."""
    if mode.startswith("SAME"):
        total = max(window - stride, 0)
        before = total // 2 if mode == "SAME_UPPER" else total - total // 2
        return before, total - before
    return pre, post


def layer_weights(node: Node, attr: str, given: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """A kernel or bias: the layer input when one is wired, else the layer's weights (converted once)."""
    if given is not None:
        return given.reshape(shape)

    def convert() -> np.ndarray | None:
        w = getattr(node.layer, attr)
        if not isinstance(w, np.ndarray):
            if getattr(w, "size", 0) == 0:
                return None
            raise UnsupportedLayerError(
                f"layer {node.index} {node.name!r}: its {attr} weights have type {w.dtype}, which NumPy cannot "
                f"read; pass them as a constant tensor on input {1 if attr == 'kernel' else 2} instead"
            )
        if w.size == 0:
            return None
        return w.astype(np.float32, copy=False).reshape(shape)  # float32 weights: a view, no copy

    return node.memo((attr, shape), convert)


def pad_or_crop(x: np.ndarray, before: list[int], after: list[int], value: float = 0.0) -> np.ndarray:
    """Pad the trailing len(before) dims (crop where an amount is negative)."""
    lead = x.ndim - len(before)
    crop = tuple([slice(None)] * lead + [slice(max(0, -b), x.shape[lead + i] - max(0, -a))
                                         for i, (b, a) in enumerate(zip(before, after, strict=True))])  # fmt: skip
    x = x[crop]
    widths = [(0, 0)] * lead + [(max(0, b), max(0, a)) for b, a in zip(before, after, strict=True)]
    if any(w != (0, 0) for w in widths):
        x = np.pad(x, widths, constant_values=value)
    return x


def windows(x: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
            out: tuple[int, ...]) -> np.ndarray:  # fmt: skip
    """A view of the trailing len(kernel) dims as (..., *out, *kernel) windows."""
    nd = len(kernel)
    extent = tuple(d * (f - 1) + 1 for f, d in zip(kernel, dilation, strict=True))
    view = sliding_window_view(x, extent, axis=tuple(range(x.ndim - nd, x.ndim)))
    pick = (Ellipsis, *(slice(0, (o - 1) * s + 1, s) for o, s in zip(out, stride, strict=True)),
            *(slice(None, None, d) for d in dilation))  # fmt: skip
    return view[pick]


def kernel_offsets(
    shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
    out: tuple[int, ...], pre: tuple[int, ...],
) -> Iterator[tuple[int, tuple[slice, ...], tuple[slice, ...]]]:  # fmt: skip
    """For each kernel offset, (its index, output slices, input slices) of the outputs that read real input.

    Output ``o`` reads input ``o * stride + f * dilation - pre`` in each dim; the outputs
    whose read falls in the padding read zero, so no padded copy is made. Offsets that
    read only padding are left out.
    """
    for j, offset in enumerate(itertools.product(*(range(f) for f in kernel))):
        dst, src = [], []
        for f, d, s, m, p, size in zip(offset, dilation, stride, out, pre, shape, strict=True):
            start = f * d - p
            lo = max(0, -(start // s))  # first o with o * s + start >= 0
            hi = min(m, (size - 1 - start) // s + 1)  # one past the last o with o * s + start < size
            if lo >= hi:
                break
            dst.append(slice(lo, hi))
            src.append(slice(start + lo * s, start + (hi - 1) * s + 1, s))
        else:
            yield j, tuple(dst), tuple(src)


def conv_nd(
    x: np.ndarray, w: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...], groups: int,
    out: tuple[int, ...], bias: np.ndarray | None = None, pre: tuple[int, ...] | None = None,
    memo: Callable[[Hashable, Callable[[], Any]], Any] | None = None, empty: Callable = np.empty, relu: bool = False,
) -> np.ndarray:  # fmt: skip
    """Grouped N-D correlation of ``x`` (N, C, *L) with ``w`` (K, C/groups, *F) -> (N, K, *out), plus ``bias``.

    ``x`` is zero-padded by ``pre`` before each spatial dim (negative crops) and as far
    after it as ``out`` needs. The output comes straight out of one batched GEMM in NCHW
    order: ``w`` as (groups, K/groups, C/groups * prod(F)) times the im2col matrix of each
    image and group, (C/groups * prod(F), prod(out)). ``memo(key, make)`` caches derived weights,
    ``empty(shape, dtype)`` allocates the output, and ``relu`` rectifies it.
    """
    n, c, *spatial = x.shape
    k, kernel = w.shape[0], w.shape[2:]
    nd = len(kernel)
    pre = pre or (0,) * nd
    cg, kg, taps = c // groups, k // groups, math.prod(kernel)
    pixels = math.prod(out)
    if groups == c == k and cg == 1 and taps > 1:
        y = _depthwise(x, w, stride, dilation, out, pre)
        if bias is not None:
            y += bias.reshape(k, *([1] * nd))
        return rectify(y, inplace=True) if relu else y
    if winograd.applies(x, w, stride, dilation, groups, out, pre):
        return winograd.conv(x, w, bias, memo=memo, kept=kept, empty=empty, relu=relu)
    pointwise = (
        taps == 1 and not any(pre) and all((m - 1) * s < size for m, s, size in zip(out, stride, spatial, strict=True))
    )
    strided = (Ellipsis, *(slice(0, (m - 1) * s + 1, s) for m, s in zip(out, stride, strict=True)))
    # The bias rides in the GEMM as one more column of weights against a row of ones when
    # the matrix is copied anyway, or when copying the input costs less than a pass over
    # the larger output.
    fold = bias is not None and (not pointwise or any(s > 1 for s in stride) or cg < kg)
    # Many kernel offsets per stride phase (a 7x7 stride-2 stem): im2col by phases.
    phased = not pointwise and math.prod(kernel) >= 4 * math.prod(stride) > 4
    plan = _phase_plan(tuple(spatial), kernel, stride, dilation, pre, out) if phased else None
    wm = _weight_matrix(w, bias if fold else None, groups, memo, plan)
    xg = x.reshape(n, groups, cg, *spatial)
    if pointwise and not fold:
        # A 1x1 kernel needs no im2col: the strided input is the matrix.
        cols = x[strided].reshape(n, groups, cg, pixels)
    else:
        geometry = (tuple(spatial), kernel, stride, dilation, pre)
        cols = _scratch((n, groups, cg * taps + fold, pixels), np.result_type(x, w), fold, geometry)
        body = cols[:, :, : cg * taps]
        if pointwise:
            body.reshape(n, groups, cg, *out)[...] = xg[strided]
        elif plan is not None:
            _im2col_phased(xg, body, plan, out)
        else:
            _im2col(xg, body.reshape(n, groups, cg, taps, *out), kernel, stride, dilation, pre)
    y = np.matmul(wm, cols, out=empty((n, groups, k // groups, pixels), cols.dtype)).reshape(n, k, *out)
    if bias is not None and not fold:
        y += bias.reshape(k, *([1] * nd))
    return rectify(y, inplace=True) if relu else y


def _weight_matrix(
    w: np.ndarray, bias: np.ndarray | None, groups: int, memo: Callable | None, plan: PhasePlan | None = None
) -> np.ndarray:
    """``w`` as (groups, K/groups, C/groups * prod(F)), plus ``bias`` as one more column when given.

    With a ``plan``, the columns follow the rows of its phase-ordered im2col matrix.
    """

    def make() -> np.ndarray:
        k = w.shape[0]
        wm = w.reshape(groups, k // groups, -1)
        if plan is not None:
            wm = wm[:, :, plan.columns(w.shape[1])]
        if bias is None:
            return wm
        return np.concatenate([wm, bias.reshape(groups, k // groups, 1).astype(w.dtype, copy=False)], axis=2)

    if memo is None or (bias is None and plan is None):
        return make()
    return memo(("weight_matrix", w.shape, w.dtype, groups, bias is None, plan and plan.key), make)


_SCRATCH_BYTES = 64 << 20
_scratch_local = threading.local()


def kept(key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
    """The work array cached under ``key``, made by ``make()`` the first time, kept for reuse.

    Kept per thread (two threads never share one), the most recently used first, up to
    _SCRATCH_BYTES in all; an array larger than that is made anew on every call.
    """
    cache: OrderedDict | None = getattr(_scratch_local, "cache", None)
    if cache is None:
        cache = _scratch_local.cache = OrderedDict()
    found = cache.get(key)
    if found is not None:
        cache.move_to_end(key)
        return found
    array = make()
    if array.nbytes <= _SCRATCH_BYTES:
        cache[key] = array
        total = sum(a.nbytes for a in cache.values())
        while total > _SCRATCH_BYTES:
            total -= cache.popitem(last=False)[1].nbytes
    return array


def _scratch(shape: tuple[int, ...], dtype: np.dtype, ones_row: bool, geometry: tuple) -> np.ndarray:
    """A zeroed im2col matrix (N, G, rows, pixels), its last row ones if ``ones_row``, kept for reuse.

    Every call with the same shape and ``geometry`` writes the same boxes of the matrix,
    so what lies outside them (the padding's zeros, the ones row) never changes and a
    kept matrix needs no clearing: that saves a memset of the whole matrix per call.
    """

    def make() -> np.ndarray:
        cols = np.zeros(shape, dtype=dtype)
        if ones_row:
            cols[:, :, -1] = 1
        return cols

    return kept(("im2col", shape, np.dtype(dtype), ones_row, geometry), make)


def _im2col(
    x: np.ndarray, cols: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
    pre: tuple[int, ...],
) -> None:  # fmt: skip
    """Fill ``cols`` (N, G, C/G, prod(F), *out) from ``x`` (N, G, C/G, *L): one strided copy per kernel offset.

    The copies read the unpadded input and write only the outputs whose window sample
    falls inside it; the rest of ``cols`` must already be zero.
    """
    for j, dst, src in kernel_offsets(x.shape[3:], kernel, stride, dilation, cols.shape[4:], pre):
        cols[(slice(None), slice(None), slice(None), j, *dst)] = x[(Ellipsis, *src)]


@dataclass(frozen=True)
class PhasePlan:
    """How a strided kernel's offsets fall into the stride phases of the padded input, per spatial dim.

    Padded input pixel ``o * s + f * d`` (output ``o``, kernel offset ``f``) lies in phase
    ``r = f * d % s`` at index ``o + f * d // s`` of that phase. The offsets of one phase
    step through it evenly, so each combination of phases fills its rows of the im2col
    matrix with one strided copy, each row a unit-stride run of the phase. The rows come
    phase by phase, so the weight matrix's columns are permuted to match (``columns``).
    """

    key: tuple
    lengths: tuple[int, ...]  # per dim: length of each phase
    fills: tuple[tuple[tuple[slice, slice], ...], ...]  # per dim, per phase: (phase slice, input slice)
    groups: tuple[tuple[tuple[int, int, int, tuple[int, ...]], ...], ...]  # per dim: (phase, first, step, offsets)

    def columns(self, channels: int) -> np.ndarray:
        """Weight-matrix column (c * prod(F) + flat offset) of each im2col row, in row order."""
        kernel = tuple(sum(len(g[3]) for g in dim) for dim in self.groups)
        out = []
        for combo in itertools.product(*self.groups):
            flat = np.ravel_multi_index(np.ix_(*(g[3] for g in combo)), kernel).reshape(-1)
            out.append((np.arange(channels)[:, None] * math.prod(kernel) + flat).reshape(-1))
        return np.concatenate(out)


@functools.lru_cache(maxsize=256)
def _phase_plan(
    spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
    pre: tuple[int, ...], out: tuple[int, ...],
) -> PhasePlan:  # fmt: skip
    lengths, fills, groups = [], [], []
    for size, f, s, d, p, m in zip(spatial, kernel, stride, dilation, pre, out, strict=True):
        q = m + (f - 1) * d // s  # phase pixels any output reads
        by_phase: dict[int, list[int]] = {}
        for j in range(f):
            by_phase.setdefault(j * d % s, []).append(j)
        dim_groups = []
        for r, js in sorted(by_phase.items()):
            firsts = [j * d // s for j in js]
            dim_groups.append((r, firsts[0], firsts[1] - firsts[0] if len(js) > 1 else 1, tuple(js)))
        dim_fills = []
        for r in range(s):
            q0 = max(0, -((r - p) // s))  # first phase index at or after the input's start
            i0 = q0 * s + r - p
            count = max(0, min(q - q0, (size - 1 - i0) // s + 1))
            dim_fills.append((slice(q0, q0 + count), slice(i0, i0 + max(count - 1, 0) * s + 1, s)))
        lengths.append(q)
        fills.append(tuple(dim_fills))
        groups.append(tuple(dim_groups))
    return PhasePlan((spatial, kernel, stride, dilation, pre, out), tuple(lengths), tuple(fills), tuple(groups))


def _im2col_phased(x: np.ndarray, cols: np.ndarray, plan: PhasePlan, out: tuple[int, ...]) -> None:
    """Fill ``cols`` (N, G, rows, prod(out)) from ``x`` (N, G, C/G, *L) in the phase order of ``plan``."""
    lead, nd = x.shape[:3], len(out)
    strides = tuple(len(dim) for dim in plan.fills)
    # The zero-padded input split into its stride phases, kept: only the input's boxes are
    # written, so the padding's zeros stay from the first call.
    phases = kept(("phases", x.shape, x.dtype, plan.key), lambda: np.zeros((*strides, *lead, *plan.lengths), x.dtype))
    for rs in itertools.product(*(range(s) for s in strides)):
        boxes = [plan.fills[i][r] for i, r in enumerate(rs)]
        if all(dst.stop > dst.start for dst, _ in boxes):
            phases[rs][(Ellipsis, *(dst for dst, _ in boxes))] = x[(Ellipsis, *(src for _, src in boxes))]
    pixel = phases.strides[-nd:]
    row = 0
    for combo in itertools.product(*plan.groups):
        start = phases[tuple(g[0] for g in combo)][(Ellipsis, *(slice(g[1], None) for g in combo))]
        counts = tuple(len(g[3]) for g in combo)
        view = as_strided(
            start, (*lead, *counts, *out), (*start.strides[:3], *(g[2] * st for g, st in zip(combo, pixel)), *pixel)
        )
        rows = lead[2] * math.prod(counts)
        cols[:, :, row : row + rows].reshape(*lead, *counts, *out)[...] = view
        row += rows


def _depthwise(
    x: np.ndarray, w: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...], out: tuple[int, ...],
    pre: tuple[int, ...],
) -> np.ndarray:  # fmt: skip
    """One filter per channel: multiply-accumulate over the kernel offsets (prod(F) strided slices).

    An im2col GEMM would have one output row per group, which BLAS runs far below speed.
    """
    nd = len(out)
    kernel = w.shape[2:]
    wc = w.reshape(w.shape[0], math.prod(kernel))
    y = np.zeros((*x.shape[:2], *out), dtype=np.result_type(x, w))
    for j, dst, src in kernel_offsets(x.shape[2:], kernel, stride, dilation, out, pre):
        part = y[(Ellipsis, *dst)]
        part += x[(Ellipsis, *src)] * wc[:, j].reshape(-1, *([1] * nd))
    return y


def _conv_plan(layer: Any, spatial: tuple[int, ...]) -> tuple:
    """(groups, K, kernel, stride, dilation, output size, pre-padding) of a convolution layer on ``spatial``."""
    fsize = tuple(layer.kernel_size_nd)
    stride, dilation = tuple(layer.stride_nd), tuple(layer.dilation_nd)
    mode = layer.padding_mode.name
    dims = [
        resolve_padding(mode, i, d * (f - 1) + 1, s, p, q)
        for i, f, d, s, p, q in zip(
            spatial, fsize, dilation, stride, layer.pre_padding, layer.post_padding, strict=True
        )
    ]
    out, pre = tuple(d[2] for d in dims), tuple(d[0] for d in dims)
    return layer.num_groups, layer.num_output_maps, fsize, stride, dilation, out, pre


@interprets("convolution", fresh=True, fuses_relu=True)
def convolution(
    node: Node, x: np.ndarray, kernel: np.ndarray | None = None, bias: np.ndarray | None = None, relu: bool = False
):
    # Reading a layer attribute through the bindings costs microseconds; 53 convolutions read 8 each.
    plan = node.memo(("plan", x.shape), lambda: _conv_plan(node.layer, x.shape[2:]))
    groups, k, fsize, stride, dilation, out, pre = plan
    w = layer_weights(node, "kernel", kernel, (k, x.shape[1] // groups, *fsize)).astype(x.dtype, copy=False)
    b = layer_weights(node, "bias", bias, (k,))
    b = None if b is None else b.astype(w.dtype, copy=False)
    return conv_nd(
        x, w, stride, dilation, groups, out, b, pre,
        memo=node.memo if kernel is None and bias is None else None, empty=node.empty, relu=relu,
    )  # fmt: skip


@interprets("deconvolution", fresh=True)
def deconvolution(node: Node, x: np.ndarray, kernel: np.ndarray | None = None, bias: np.ndarray | None = None):
    layer = node.layer
    groups, k = layer.num_groups, layer.num_output_maps
    n, c, *spatial = x.shape
    nd = len(spatial)
    fsize = tuple(layer.kernel_size_nd)
    stride, dilation = tuple(layer.stride_nd), tuple(layer.dilation_nd)
    w = layer_weights(node, "kernel", kernel, (c, k // groups, *fsize))
    b = layer_weights(node, "bias", bias, (k,))
    mode = layer.padding_mode.name
    extent = [d * (f - 1) + 1 for f, d in zip(fsize, dilation, strict=True)]
    crops = [
        resolve_deconv_padding(mode, i, e, s, p, q)
        for i, e, s, p, q in zip(spatial, extent, stride, layer.pre_padding, layer.post_padding, strict=True)
    ]
    stuffed = np.zeros((n, c, *((i - 1) * s + 1 for i, s in zip(spatial, stride, strict=True))), dtype=x.dtype)
    stuffed[(slice(None), slice(None), *(slice(None, None, s) for s in stride))] = x

    def flipped() -> np.ndarray:
        # (C, K/G, *F) grouped as (G, C/G, K/G, *F) -> flipped (K, C/G, *F)
        wg = w.reshape(groups, c // groups, k // groups, *fsize)
        wg = np.flip(wg, axis=tuple(range(3, 3 + nd))).swapaxes(1, 2)
        return np.ascontiguousarray(wg.reshape(k, c // groups, *fsize))

    wc = flipped() if kernel is not None else node.memo("deconv_kernel", flipped)
    xp = pad_or_crop(stuffed, [e - 1 - cb for e, (cb, _) in zip(extent, crops, strict=True)],
                     [e - 1 - ca for e, (_, ca) in zip(extent, crops, strict=True)])  # fmt: skip
    out = tuple(xp.shape[2 + i] - extent[i] + 1 for i in range(nd))
    wc = wc.astype(x.dtype, copy=False)
    return conv_nd(xp, wc, (1,) * nd, dilation, groups, out, None if b is None else b.astype(wc.dtype, copy=False))
