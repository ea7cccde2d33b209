"""Winograd F(2x2, 3x3): 3x3 stride-1 "same" convolutions in 16 GEMMs of 4/9 the work.

Why: in a ResNet the 3x3 convolutions are a third of the interpreter's time, all
of it in BLAS. Winograd's minimal filtering (Lavin and Gray, "Fast Algorithms
for Convolutional Neural Networks", 2016) computes each 2x2 block of outputs
from a 4x4 tile of input with 16 multiplies per input channel instead of 36,
so the GEMMs shrink by 2.25x for three cheap linear transforms:

    U = G g G^T         (the 3x3 kernel to 4x4; once per network)
    V = B^T d B         (each 4x4 input tile)
    Y = A^T (sum_c U * V) A

Both tile transforms are one small GEMM over all tiles (the 2-D transform is
the Kronecker product of the 1-D ones); the 16 products are one batched GEMM.
The bias rides in it too: the (1, 1) component of the transformed output reaches
all four outputs of a tile with weight 1, so it gets the bias as one more
weight column against a row of ones.

F(2x2, 3x3) is the variant whose error stays at the level of direct float32
convolution: its transforms are exact (0, +-1, +-1/2), and against a float64
direct convolution its largest error stays within 2e-6 of the largest output,
where direct float32 im2col lands near 5e-7 (tests/reference/test_convolution.py).
Its transforms cost memory passes, which
pay off only for enough channels and tiles: ``applies`` holds the thresholds,
measured on ResNet-50 (bench/reference.py --breakdown): its 7x7 stage, 16
tiles, is faster direct; the 56x56, 28x28 and 14x14 stages gain 0.2-0.5 ms a
convolution.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .scratch import kept

MIN_CHANNELS = 32  # input and output channels, at least
MIN_TILES = 32  # 2x2 output tiles (all images), at least

_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])
_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])
_B2 = np.kron(_BT, _BT).astype(np.float32)  # (16, 16): V over a tile flattened as (row, column)
_A2 = np.kron(_AT, _AT).astype(np.float32)  # (4, 16): the 2x2 outputs from the 16 products
_BIAS_SLOT = 5  # (1, 1) flattened: A2[:, 5] is all ones


def applies(
    x: np.ndarray, w: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...], groups: int,
    out: tuple[int, ...], pre: tuple[int, ...],
) -> bool:  # fmt: skip
    """Whether ``conv`` below computes this convolution, and is the faster way to."""
    if x.ndim != 4 or w.shape[2:] != (3, 3) or groups != 1:
        return False
    if stride != (1, 1) or dilation != (1, 1) or pre != (1, 1) or out != x.shape[2:]:
        return False
    if x.dtype != np.float32 or w.dtype != np.float32:
        return False
    n, c, h, wd = x.shape
    tiles = n * ((h + 1) // 2) * ((wd + 1) // 2)
    return min(c, w.shape[0]) >= MIN_CHANNELS and tiles >= MIN_TILES


def transformed_weights(w: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``G w G^T`` as (16, K, C), computed in float64; with ``bias``, (16, K, C + 1) with the bias column."""
    k, c = w.shape[:2]
    u = np.einsum("ai,kcij,bj->abkc", _G, w.astype(np.float64), _G).reshape(16, k, c)
    if bias is not None:
        column = np.zeros((16, k, 1))
        column[_BIAS_SLOT, :, 0] = bias
        u = np.concatenate([u, column], axis=2)
    return np.ascontiguousarray(u, dtype=np.float32)


def conv(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, *,
    memo: Callable[[Hashable, Callable[[], Any]], Any] | None, empty: Callable = np.empty,
    relu: bool = False,
) -> np.ndarray:  # fmt: skip
    """The 3x3, stride-1, pad-1 correlation of ``x`` (N, C, H, W) with ``w`` (K, C, 3, 3), plus ``bias``.

    ``memo(key, make)`` caches the transformed weights, the work arrays are kept
    (``scratch.kept``), ``empty`` allocates the output; ``relu`` rectifies it on the way out.
    """
    n, c, h, wd = x.shape
    k = w.shape[0]
    th, tw = (h + 1) // 2, (wd + 1) // 2
    tiles = n * th * tw
    fold = bias is not None
    if memo is None:
        u = transformed_weights(w, bias)
    else:
        u = memo(("winograd", w.shape, fold), lambda: transformed_weights(w, bias))
    rows = c + fold

    # The zero-padded input split into its four stride-2 phases, so that the tile
    # gather below copies unit-stride runs: phases[ph, pw, n, c, i, j] is padded
    # input pixel (2i + ph, 2j + pw), i.e. x[n, c, 2i + ph - 1, 2j + pw - 1]. Only
    # the input's boxes are written, so the padding's zeros stay from the first call.
    phases = kept(("winograd-phases", x.shape), lambda: np.zeros((2, 2, n, c, th + 1, tw + 1), np.float32))
    for ph in (0, 1):
        for pw in (0, 1):
            r0, c0 = 1 - ph, 1 - pw  # the phase's first input row (column), also its index there
            nr, nc = (h - r0 + 1) // 2, (wd - c0 + 1) // 2
            phases[ph, pw, :, :, r0 : r0 + nr, c0 : c0 + nc] = x[:, :, r0::2, c0::2]

    # Tiles as (16, C, tiles): tile offset (a, b) = (2 a2 + ap, 2 b2 + bp) of tile (i, j)
    # is phases[ap, bp, :, :, i + a2, j + b2].
    tiles_of = kept(("winograd-tiles", x.shape), lambda: np.empty((16, c, tiles), np.float32))
    s_ph, s_pw, s_n, s_c, s_i, s_j = phases.strides
    view = as_strided(phases, (2, 2, 2, 2, c, n, th, tw), (s_i, s_ph, s_j, s_pw, s_c, s_n, s_i, s_j))
    np.copyto(tiles_of.reshape(2, 2, 2, 2, c, n, th, tw), view)

    def make_v() -> np.ndarray:
        v = np.empty((16, rows, tiles), np.float32)
        v[:, c:] = 1  # the bias row
        return v

    v = kept(("winograd-v", x.shape, fold), make_v)
    np.matmul(_B2, tiles_of.reshape(16, c * tiles), out=v.reshape(16, rows * tiles)[:, : c * tiles])
    m = kept(("winograd-m", x.shape, k), lambda: np.empty((16, k, tiles), np.float32))
    np.matmul(u, v, out=m)
    y4 = kept(("winograd-y", x.shape, k), lambda: np.empty((4, k, tiles), np.float32))
    np.matmul(_A2, m.reshape(16, k * tiles), out=y4.reshape(4, k * tiles))

    # Output (2i + p, 2j + q) is y4[(p, q), :, tile (i, j)]; an odd size drops the last half tile.
    y = empty((n, k, h, wd), np.float32)
    blocks = y4.reshape(2, 2, k, n, th, tw)
    for p in (0, 1):
        for q in (0, 1):
            hp, wq = (h - p + 1) // 2, (wd - q + 1) // 2
            part = blocks[p, q, :, :, :hp, :wq].transpose(1, 0, 2, 3)
            if relu:
                np.maximum(part, 0, out=y[:, :, p::2, q::2])
            else:
                y[:, :, p::2, q::2] = part
    return y
