"""Depthwise convolution: one filter per channel, so no GEMM (one output row per group runs BLAS far below speed).

``depthwise_2d`` (fast mode, 2-D): the zero-padded input is split into its stride
phases, each laid out with rows of one common width ``q``. Output pixel (i, j)
at kernel offset (a, b) then reads phase (a*d % s, b*d % s) at flat index
``(i + a*d//s) * q + j + b*d//s``: for every offset, the whole output is one
contiguous, shifted run of one phase, so for a block of channels the runs of all
offsets are copied as the rows of one matrix per channel, and one batched GEMM
with the channels' weights (and bias, against a row of ones) sums them
(``_taps_gemm``). The ``q - out`` extra columns are computed and dropped. Measured
against the strided multiply-accumulate (``depthwise_mac``) on MobileNetV2's
shapes: 1.9-2.9x faster. The padding's zeros stay from the first call (kept).

Where numba is installed, ``reference.conv`` runs the compiled kernel of ``kernels.jit``
instead (2-5x faster again), which also applies the layer's fused activation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .im2col import kernel_offsets
from .scratch import kept, shared

if TYPE_CHECKING:
    from ..fusion import Epilogue

# Channels per block: the size of a block's tap matrices (see _taps_gemm).
_GEMM_BLOCK_BYTES = 2 << 20


def depthwise_mac(
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


def depthwise_2d(
    x: np.ndarray, w: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...], out: tuple[int, ...],
    pre: tuple[int, ...], bias: np.ndarray | None = None, empty: Callable = np.empty,
    epilogue: Epilogue | None = None,
) -> np.ndarray:  # fmt: skip
    """The depthwise correlation of ``x`` (N, C, H, W) with ``w`` (C, 1, FH, FW), plus ``bias``, then ``epilogue``."""
    n, c, h, wd = x.shape
    fh, fw = w.shape[2:]
    (sh, sw), (dh, dw), (oh, ow), (ph, pw) = stride, dilation, out, pre
    rows = oh + (fh - 1) * dh // sh + 1  # one spare row: the last offsets' runs read past the last row
    q = ow + (fw - 1) * dw // sw
    phases = kept(("dw-phases", x.shape, x.dtype, stride, dilation, out, pre),
                  lambda: np.zeros((sh, sw, n * c, rows, q), x.dtype))  # fmt: skip
    xs = x.reshape(n * c, h, wd)
    for r in range(sh):
        i0 = max(0, -((r - ph) // sh))  # first phase row inside the input
        a0 = i0 * sh + r - ph
        ni = max(0, min(rows - i0, (h - 1 - a0) // sh + 1))
        for t in range(sw):
            j0 = max(0, -((t - pw) // sw))
            b0 = j0 * sw + t - pw
            nj = max(0, min(q - j0, (wd - 1 - b0) // sw + 1))
            if ni and nj:
                phases[r, t, :, i0 : i0 + ni, j0 : j0 + nj] = xs[:, a0 : a0 + (ni - 1) * sh + 1 : sh,
                                                                b0 : b0 + (nj - 1) * sw + 1 : sw]  # fmt: skip
    flat = phases.reshape(sh, sw, n * c, rows * q)
    length = oh * q
    taps = [(a * fw + b, a * dh % sh, b * dw % sw, (a * dh // sh) * q + b * dw // sw)
            for a in range(fh) for b in range(fw)]  # fmt: skip
    wc = w.reshape(c, fh * fw)
    ext = _taps_gemm(flat, wc, bias, taps, n, length, x.dtype)
    y = empty((n, c, oh, ow), x.dtype)
    y[...] = ext.reshape(n, c, oh, q)[..., :ow]
    return y if epilogue is None else epilogue(y)


def _taps_gemm(
    flat: np.ndarray, wc: np.ndarray, bias: np.ndarray | None, taps: list, n: int, length: int, dtype: np.dtype
) -> np.ndarray:
    """Each block of channels: its taps' runs copied into the rows of a (taps [+ ones], length)
    matrix per channel, times that channel's weights (and bias) in one batched GEMM.

    Measured on MobileNetV2's and EfficientNet-B0's shapes against two ufunc passes
    (multiply, add) per tap: about as fast for 3x3 kernels at 112x112, 1.2-1.8x faster for
    5x5 kernels and for many channels; 2 MiB blocks beat 0.25-1 MiB ones.
    """
    c = wc.shape[0]
    k = len(taps) + (bias is not None)
    wk = wc if bias is None else np.concatenate([wc, bias.reshape(c, 1)], axis=1)
    wk = np.ascontiguousarray(np.tile(wk, (n, 1)) if n > 1 else wk, dtype=dtype).reshape(n * c, 1, k)
    per = max(1, _GEMM_BLOCK_BYTES // (k * length * dtype.itemsize))

    cols = shared("dw-cols", (min(per, n * c), k, length), dtype)
    if bias is not None:
        cols[:, -1] = 1  # the ones row
    ext = shared("dw-out", (n * c, 1, length), dtype)
    for c0 in range(0, n * c, per):
        c1 = min(n * c, c0 + per)
        block = cols[: c1 - c0]
        for j, r, t, off in taps:
            block[:, j] = flat[r, t, c0:c1, off : off + length]
        np.matmul(wk[c0:c1], block, out=ext[c0:c1])
    return ext.reshape(n * c, length)
