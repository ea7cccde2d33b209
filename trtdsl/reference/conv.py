"""Reference implementations: convolution and deconvolution, N-D.

One code path for every rank, all in NCHW order. The plain path (``fast=False``,
the oracle): each kernel offset copies its strided, dilated slice of the
unpadded input into a zeroed im2col matrix (N, G, C/G, prod(F), *out) (the
padding's share stays zero, so no padded copy is made), and the kernel
multiplies it from the left in one batched ``np.matmul`` over the groups (BLAS),
which yields the output with no transpose; the bias is added after.

The fast path (``fast=True``, the default) picks a kernel of
``reference.kernels`` by shape, each checked against the plain path and torch:
the im2col matrices are kept between calls (their zeros never change) and the
bias rides in the GEMM as a column of weights against a row of ones; a 1x1
kernel needs no im2col; a strided kernel with many offsets per stride phase (a
7x7 stride-2 stem) fills the matrix phase by phase (``kernels.phases``); a 3x3
stride-1 "same" convolution with enough channels runs as Winograd F(2x2, 3x3)
(``kernels.winograd``); a depthwise kernel multiply-accumulates over the kernel
offsets instead (``kernels.depthwise``; where numba is installed, the compiled grouped
kernel of ``kernels.jit``, which also runs stride-1 groups of few channels). The choice,
and for the GEMM path everything but the data, is kept on the node per input shape
(``_Route``). An activation fused into the layer (``epilogue=``) is applied in the
same call: by the GEMM paths to their finished output, by the compiled kernels to each
output plane as it is stored. A deconvolution is the
convolution of the stride-dilated (zero-stuffed) input with the flipped,
transposed kernel."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import UnsupportedLayerError
from .kernels import jit, winograd
from .kernels.depthwise import depthwise_2d, depthwise_mac
from .kernels.im2col import im2col, kernel_offsets, weight_matrix
from .kernels.phases import im2col_phased, phase_plan
from .kernels.scratch import zeroed
from .registry import Node, interprets

if TYPE_CHECKING:
    from .fusion import Epilogue

__all__ = ["conv_nd", "kernel_offsets", "pad_or_crop", "resolve_padding", "windows"]


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


def conv_nd(
    x: np.ndarray, w: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...], groups: int,
    out: tuple[int, ...], bias: np.ndarray | None = None, pre: tuple[int, ...] | None = None,
    memo: Callable[[Hashable, Callable[[], Any]], Any] | None = None, empty: Callable = np.empty,
    epilogue: Epilogue | None = None, fast: bool = True,
) -> np.ndarray:  # fmt: skip
    """Grouped N-D correlation of ``x`` (N, C, *L) with ``w`` (K, C/groups, *F) -> (N, K, *out), plus ``bias``.

    ``x`` is zero-padded by ``pre`` before each spatial dim (negative crops) and as far
    after it as ``out`` needs. The output comes straight out of one batched GEMM in NCHW
    order: ``w`` as (groups, K/groups, C/groups * prod(F)) times the im2col matrix of each
    image and group, (C/groups * prod(F), prod(out)). ``memo(key, make)`` caches derived weights,
    ``empty(shape, dtype)`` allocates the output, and ``epilogue`` is applied to it. ``fast=False``
    runs the plain path (see the module docstring) and ignores ``memo`` and ``empty``.
    """
    n, c, *spatial = x.shape
    k, kernel = w.shape[0], w.shape[2:]
    nd = len(kernel)
    pre = pre or (0,) * nd
    cg, kg, taps = c // groups, k // groups, math.prod(kernel)
    pixels = math.prod(out)
    relu = epilogue is not None and epilogue.relu
    # An empty batch (a dynamic batch of 0) or output has nothing to speed up, and the fast
    # kernels' reshapes (a -1 beside a 0 cannot be inferred) and compiled loops assume data.
    if not fast or x.size == 0 or n * k * pixels == 0:
        cols = np.zeros((n, groups, cg, taps, *out), dtype=np.result_type(x, w))
        im2col(x.reshape(n, groups, cg, *spatial), cols, kernel, stride, dilation, pre)
        y = np.matmul(w.reshape(groups, kg, cg * taps), cols.reshape(n, groups, cg * taps, pixels)).reshape(n, k, *out)
        if bias is not None:
            y += bias.reshape(k, *([1] * nd))
        return _finish(y, epilogue)
    route = (
        _route(x, w, stride, dilation, groups, out, bias, pre, epilogue, memo)
        if memo is None
        else memo(("route", x.shape, x.dtype, epilogue), lambda: _route(x, w, stride, dilation, groups, out, bias, pre,
                                                                         epilogue, memo))
    )  # fmt: skip
    kind = route.kind
    if kind == "gemm":
        return _gemm(x, route, empty, epilogue)
    if kind == "grouped":
        y = empty((n, k, *out), x.dtype)
        jit.grouped(x, w, groups, stride, dilation, out, pre, bias, y, route.activation)
        return y if route.activation is not None or epilogue is None else _finish(y, epilogue)
    if kind == "matvec":
        # A 1x1 convolution of 1x1 images (squeeze-excite): matrix-vector products, compiled with
        # the bias and the activation (a BLAS call and a pass for each would cost more).
        y = empty((n, k, *out), x.dtype)
        jit.matvec(w.reshape(k, c), x.reshape(n, c), bias, y.reshape(n, k), route.activation)
        return y
    if kind == "winograd":
        y = winograd.conv(x, w, bias, memo=memo, empty=empty, relu=relu)
        return y if relu else _finish(y, epilogue)
    if nd == 2:  # depthwise
        return depthwise_2d(x, w, stride, dilation, out, pre, bias, empty, epilogue)
    y = depthwise_mac(x, w, stride, dilation, out, pre)
    if bias is not None:
        y += bias.reshape(k, *([1] * nd))
    return _finish(y, epilogue)


class _Route(NamedTuple):
    """How the fast path computes a convolution of one input shape: the kernel, and for the GEMM
    path everything but the data (kept on the node per input shape: deciding costs microseconds)."""

    kind: str  # "grouped", "depthwise", "winograd", "matvec" or "gemm"
    activation: tuple | None = None  # the compiled kernels' fused activation (None: applied after, or none)
    wm: np.ndarray | None = None  # the weight matrix, with the bias column when ``fold``
    fold: bool = False
    pointwise: bool = False  # a 1x1 kernel: the matrix is the strided input (a copy of it when ``fold``)
    view: bool = False  # a 1x1 kernel whose strided input is the matrix: no copy
    strided: tuple = ()
    plan: Any = None  # the phase plan of a phased im2col
    cols: tuple = ()  # (shape, dtype, geometry) of the kept im2col matrix
    y_shape: tuple = ()  # the GEMM's output, (N, G, K/G, pixels)
    out_shape: tuple = ()
    bias: np.ndarray | None = None  # added after the GEMM when not folded, shaped (K, 1, ...)
    n_g_cg: tuple = ()  # (N, G, C/G), the grouped view of the input


def _route(
    x: np.ndarray, w: np.ndarray, stride: tuple[int, ...], dilation: tuple[int, ...], groups: int,
    out: tuple[int, ...], bias: np.ndarray | None, pre: tuple[int, ...], epilogue: Epilogue | None,
    memo: Callable | None,
) -> _Route:  # fmt: skip
    n, c, *spatial = x.shape
    k, kernel = w.shape[0], w.shape[2:]
    nd = len(kernel)
    cg, kg, taps = c // groups, k // groups, math.prod(kernel)
    pixels = math.prod(out)
    activation = None if epilogue is None else epilogue.activation
    if nd == 2 and _compiled_grouped(x, w, groups, cg, taps, stride):
        return _Route("grouped", activation if jit.compiles(activation) else None)
    if groups == c == k and cg == 1 and taps > 1:
        return _Route("depthwise")
    if winograd.applies(x, w, stride, dilation, groups, out, pre):
        return _Route("winograd")
    pointwise = (
        taps == 1 and not any(pre) and all((m - 1) * s < size for m, s, size in zip(out, stride, spatial, strict=True))
    )
    if pointwise and groups == 1 and pixels == 1 and spatial == [1] * nd and jit.enabled() and jit.compiles(activation):
        if x.dtype == w.dtype == np.float32:
            return _Route("matvec", activation)
    strided = (Ellipsis, *(slice(0, (m - 1) * s + 1, s) for m, s in zip(out, stride, strict=True)))
    # The bias rides in the GEMM as one more column of weights against a row of ones when
    # the matrix is copied anyway, or when copying the input costs less than a pass over
    # the larger output; but only when the weights are no larger than the output, since the
    # column makes a kept copy of them (ResNet-50's late stages: 60 MB of copies otherwise).
    fold = bias is not None and (not pointwise or any(s > 1 for s in stride) or cg < kg) and w.size <= n * k * pixels
    # Many kernel offsets per stride phase (a 7x7 stride-2 stem): im2col by phases.
    phased = not pointwise and math.prod(kernel) >= 4 * math.prod(stride) > 4
    plan = phase_plan(tuple(spatial), kernel, stride, dilation, pre, out) if phased else None
    geometry = (tuple(spatial), kernel, stride, dilation, pre)
    return _Route(
        "gemm", wm=weight_matrix(w, bias if fold else None, groups, memo, plan), fold=fold, pointwise=pointwise,
        view=pointwise and not fold, strided=strided, plan=plan,
        cols=((n, groups, cg * taps + fold, pixels), np.result_type(x, w), geometry),
        y_shape=(n, groups, kg, pixels), out_shape=(n, k, *out),
        bias=None if bias is None or fold else bias.reshape(k, *([1] * nd)), n_g_cg=(n, groups, cg),
    )  # fmt: skip


def _gemm(x: np.ndarray, r: _Route, empty: Callable, epilogue: Epilogue | None) -> np.ndarray:
    """The GEMM path of ``conv_nd``: im2col (or the input itself) times the weight matrix."""
    shape, dtype, (spatial, kernel, stride, dilation, pre) = r.cols
    n, groups, cg = r.n_g_cg
    out = r.out_shape[2:]
    if r.view:
        cols = x[r.strided].reshape(shape)
    else:
        xg = x.reshape(n, groups, cg, *spatial)
        cols = zeroed(shape, dtype, r.fold, r.cols[2])
        body = cols[:, :, : shape[2] - r.fold]
        if r.pointwise:
            body.reshape(n, groups, cg, *out)[...] = xg[r.strided]
        elif r.plan is not None:
            im2col_phased(xg, body, r.plan, out)
        else:
            im2col(xg, body.reshape(n, groups, cg, -1, *out), kernel, stride, dilation, pre)
    y = np.matmul(r.wm, cols, out=empty(r.y_shape, cols.dtype)).reshape(r.out_shape)
    if r.bias is not None:
        y += r.bias
    return _finish(y, epilogue)


# Channels per group up to which a stride-1 grouped convolution runs compiled rather than as
# im2col and one GEMM per group. Measured against the GEMM path (2 threads, 3x3, bias): 1.2-3.5x
# faster at 2-8 channels per group (RegNet's 8, ResNeXt's 4 and 8; 7x7 to 112x112), 0.8-1.4x at
# 16, 0.7x at 24 and 32; with stride 2, 0.65-0.75x at 8 (a loop per output row).
GROUPED_CHANNELS = 8


def _compiled_grouped(x: np.ndarray, w: np.ndarray, groups: int, cg: int, taps: int, stride: tuple[int, ...]) -> bool:
    """Whether the compiled grouped kernel (``kernels.jit.grouped``) runs this 2-D convolution: a depthwise
    one (with any channel multiplier), or a stride-1 one of few channels per group; float32, numba present."""
    if groups == 1 or not (x.dtype == w.dtype == np.float32) or not jit.enabled():
        return False
    return (cg == 1 and taps > 1) or (cg <= GROUPED_CHANNELS and all(s == 1 for s in stride))


def _finish(y: np.ndarray, epilogue: Epilogue | None) -> np.ndarray:
    """``y`` with ``epilogue`` applied in place."""
    return y if epilogue is None else epilogue(y)


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


@interprets("convolution", fresh=True, fuses=True)
def convolution(
    node: Node, x: np.ndarray, kernel: np.ndarray | None = None, bias: np.ndarray | None = None,
    epilogue: Epilogue | None = None,
):  # fmt: skip
    # Reading a layer attribute through the bindings costs microseconds; 53 convolutions read 8 each.
    plan = node.memo(("plan", x.shape), lambda: _conv_plan(node.layer, x.shape[2:]))
    groups, k, fsize, stride, dilation, out, pre = plan
    w = layer_weights(node, "kernel", kernel, (k, x.shape[1] // groups, *fsize)).astype(x.dtype, copy=False)
    b = layer_weights(node, "bias", bias, (k,))
    b = None if b is None else b.astype(w.dtype, copy=False)
    return conv_nd(
        x, w, stride, dilation, groups, out, b, pre,
        memo=node.memo if kernel is None and bias is None else node.memo_over(kernel, bias), empty=node.empty,
        epilogue=epilogue, fast=node.fast,
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

    wc = (node.memo if kernel is None else node.memo_over(kernel))("deconv_kernel", flipped)
    xp = pad_or_crop(stuffed, [e - 1 - cb for e, (cb, _) in zip(extent, crops, strict=True)],
                     [e - 1 - ca for e, (_, ca) in zip(extent, crops, strict=True)])  # fmt: skip
    out = tuple(xp.shape[2 + i] - extent[i] + 1 for i in range(nd))
    wc = wc.astype(x.dtype, copy=False)
    bias_ = None if b is None else b.astype(wc.dtype, copy=False)
    return conv_nd(xp, wc, (1,) * nd, dilation, groups, out, bias_, fast=node.fast)
