"""Reference implementations: convolution and deconvolution, N-D.

One code path for every rank: the padded input is viewed as sliding windows
(``sliding_window_view``, no copy), strided and dilated by slicing the view,
copied once into im2col form per group, and multiplied with the kernel in one
batched ``np.matmul`` over the groups (BLAS). A deconvolution is the
convolution of the stride-dilated (zero-stuffed) input with the flipped,
transposed kernel.

The padding arithmetic follows the ``PaddingMode`` documentation of NvInfer.h,
and is shared with pooling.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import UnsupportedLayerError
from .registry import Node, interprets


def resolve_padding(  # noqa: PLR0917
    mode: str, size: int, window: int, stride: int, pre: int, post: int
) -> tuple[int, int, int, int]:
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


def resolve_deconv_padding(  # noqa: PLR0917
    mode: str, size: int, window: int, stride: int, pre: int, post: int
) -> tuple[int, int]:
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
        return w.astype(np.float32).reshape(shape)

    return node.memo(f"{attr}:{shape}", convert)


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


def conv_nd(  # noqa: PLR0917
    x: np.ndarray, w: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...], groups: int,
    out: tuple[int, ...],
) -> np.ndarray:  # fmt: skip
    """Grouped N-D correlation of padded ``x`` (N, C, *L) with ``w`` (K, C/groups, *F) -> (N, K, *out)."""
    n, c = x.shape[:2]
    k, kernel = w.shape[0], w.shape[2:]
    nd = len(kernel)
    cg, kg = c // groups, k // groups
    win = windows(x, kernel, stride, dilation, out).reshape(n, groups, cg, *out, *kernel)
    # (G, N, *out, Cg, *F): each group's im2col matrix, rows = output pixels
    perm = (1, 0, *range(3, 3 + nd), 2, *range(3 + nd, 3 + 2 * nd))
    cols = win.transpose(perm).reshape(groups, n * math.prod(out), cg * math.prod(kernel))
    wm = w.reshape(groups, kg, cg * math.prod(kernel)).transpose(0, 2, 1)
    y = np.matmul(cols, wm).reshape(groups, n, *out, kg)
    return y.transpose(1, 0, nd + 2, *range(2, 2 + nd)).reshape(n, k, *out)


def _add_bias(y: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    if bias is None:
        return y
    return y + bias.reshape(1, -1, *([1] * (y.ndim - 2)))


@interprets("convolution")
def convolution(node: Node, x: np.ndarray, kernel: np.ndarray | None = None, bias: np.ndarray | None = None):
    layer = node.layer
    groups, k = layer.num_groups, layer.num_output_maps
    fsize = tuple(layer.kernel_size_nd)
    stride, dilation = tuple(layer.stride_nd), tuple(layer.dilation_nd)
    w = layer_weights(node, "kernel", kernel, (k, x.shape[1] // groups, *fsize))
    b = layer_weights(node, "bias", bias, (k,))
    mode = layer.padding_mode.name
    spatial = x.shape[2:]
    dims = [
        resolve_padding(mode, i, d * (f - 1) + 1, s, p, q)
        for i, f, d, s, p, q in zip(
            spatial, fsize, dilation, stride, layer.pre_padding, layer.post_padding, strict=True
        )
    ]
    xp = pad_or_crop(x, [d[0] for d in dims], [d[1] + d[3] for d in dims])
    y = conv_nd(xp, w.astype(x.dtype, copy=False), stride, dilation, groups, tuple(d[2] for d in dims))
    return _add_bias(y, b)


@interprets("deconvolution")
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
    y = conv_nd(xp, wc.astype(x.dtype, copy=False), (1,) * nd, dilation, groups, out)
    return _add_bias(y, b)
