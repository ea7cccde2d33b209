"""im2col: each kernel offset's strided slice of the unpadded input, one copy per offset.

The matrix (N, G, C/G * prod(F), prod(out)) is multiplied from the left by the
weights as (G, K/G, C/G * prod(F)) in one batched GEMM (``reference.conv.conv_nd``).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator

import numpy as np

from .phases import PhasePlan


def kernel_offsets(
    shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
    out: tuple[int, ...], pre: tuple[int, ...],
) -> tuple[tuple[int, tuple[slice, ...], tuple[slice, ...]], ...]:  # fmt: skip
    """For each kernel offset, (its index, output slices, input slices) of the outputs that read real input.

    Output ``o`` reads input ``o * stride + f * dilation - pre`` in each dim; the outputs
    whose read falls in the padding read zero, so no padded copy is made. Offsets that
    read only padding are left out. Kept per geometry (the arguments are tuples of ints):
    working them out costs more than the copies of a small convolution.
    """
    return _kept_offsets(*map(tuple, (shape, kernel, stride, dilation, out, pre)))


@functools.lru_cache(maxsize=1024)
def _kept_offsets(*geometry: tuple[int, ...]) -> tuple[tuple[int, tuple[slice, ...], tuple[slice, ...]], ...]:
    return tuple(_offsets(*geometry))


def _offsets(
    shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
    out: tuple[int, ...], pre: tuple[int, ...],
) -> Iterator[tuple[int, tuple[slice, ...], tuple[slice, ...]]]:  # fmt: skip
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


def weight_matrix(
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


def im2col(
    x: np.ndarray, cols: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
    pre: tuple[int, ...],
) -> None:  # fmt: skip
    """Fill ``cols`` (N, G, C/G, prod(F), *out) from ``x`` (N, G, C/G, *L): one strided copy per kernel offset.

    The copies read the unpadded input and write only the outputs whose window sample
    falls inside it; the rest of ``cols`` must already be zero.
    """
    for j, dst, src in kernel_offsets(x.shape[3:], kernel, stride, dilation, cols.shape[4:], pre):
        cols[(slice(None), slice(None), slice(None), j, *dst)] = x[(Ellipsis, *src)]
