"""Max and average pooling (1-D to 3-D), adaptive and global pools, with PyTorch semantics.

TensorRT pools only 2-D and 3-D windows, so 1-D pools run on an ``(N, C, 1, L)``
view. ``ceil_mode`` maps onto ``PaddingMode.EXPLICIT_ROUND_UP``, and
``count_include_pad`` onto ``average_count_excludes_padding`` (whose TensorRT
default is True, the opposite of PyTorch's).

One rule of PyTorch's ceil mode has no TensorRT switch: a last window that
would start in the right padding is dropped. With static spatial dims the ops
reproduce it exactly (extra post padding for max and padding-excluding
average pools, whose results it does not change; a slice for the others).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _trt
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import bitmask, pair
from .conv import Padding, _as_2d, _check_rank, _reshape_1d, _spatial_padding

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "global_avg_pool", "global_max_pool",
]  # fmt: skip

IntOrSeq = int | Sequence[int]


def _torch_ceil_size(i: int, k: int, s: int, b: int, a: int) -> int:
    o = -(-(i + b + a - k) // s) + 1
    if (o - 1) * s >= i + b:  # PyTorch: the last window must start inside the input or left padding
        o -= 1
    return o


def _pool(
    kind: str,
    nd: int,
    ptype: str,
    x: Tensor,
    kernel_size: IntOrSeq,
    stride: IntOrSeq | None,
    padding: Padding,
    ceil_mode: bool,
    count_include_pad: bool,
    name: str | None,
) -> Tensor:
    trt = _trt.load()
    net = x.net
    lname = net.op_name(name, kind, x)
    what = f"{kind} {lname!r}"
    _check_rank(x, nd, what)
    x = net.to_compute(x)
    window = pair(kernel_size, nd, f"{what}: kernel_size")
    strides = window if stride is None else pair(stride, nd, f"{what}: stride")
    if min(window) < 1 or min(strides) < 1:
        raise ShapeError(f"{what}: kernel_size {window} and stride {strides} must be positive")
    mode, pre, post = _spatial_padding(padding, nd, what)
    spatial = x.shape[2:]
    padding_mode = "SAME_UPPER" if mode == "same" else "EXPLICIT_ROUND_DOWN"
    slice_to = None
    if ceil_mode and mode is None:
        padding_mode = "EXPLICIT_ROUND_UP"
        if min(spatial) >= 0:
            want = [
                _torch_ceil_size(i, k, s, b, a)
                for i, k, s, b, a in zip(spatial, window, strides, pre, post, strict=True)
            ]
            trt_size = [
                -(-(i + b + a - k) // s) + 1 for i, k, s, b, a in zip(spatial, window, strides, pre, post, strict=True)
            ]
            includes_pad = ptype == "AVERAGE" and count_include_pad
            if not includes_pad:
                # Padding never changes a max or a padding-excluding average, so pad
                # just enough for round-down to give PyTorch's window count.
                padding_mode = "EXPLICIT_ROUND_DOWN"
                post = tuple(
                    a + max(0, (o - 1) * s + k - (i + b + a))
                    for i, k, s, b, a, o in zip(spatial, window, strides, pre, post, want, strict=True)
                )
            elif want != trt_size:
                slice_to = want
    if nd == 1:
        x = _reshape_1d(net, x, lname, squeeze=False)
        window, strides, pre, post = _as_2d(window, 1), _as_2d(strides, 1), _as_2d(pre, 0), _as_2d(post, 0)
    layer = net.trt.add_pooling_nd(x.trt, getattr(trt.PoolingType, ptype), window)
    layer.stride_nd = strides
    layer.pre_padding = pre
    layer.post_padding = post
    layer.padding_mode = getattr(trt.PaddingMode, padding_mode)
    if ptype == "AVERAGE":
        layer.average_count_excludes_padding = not count_include_pad
    out = net.register(layer, kind, lname, resolved=True)
    if slice_to is not None:
        if min(out.shape) < 0:
            raise ShapeError(
                f"{what}: ceil_mode with count_include_pad and padding {padding!r} drops a last window that "
                f"starts in the padding; that needs static shapes, got input shape {x.shape}"
            )
        shape = (*out.shape[:2], *([1] if nd == 1 else []), *slice_to)
        sl = net.trt.add_slice(out.trt, (0,) * len(shape), shape, (1,) * len(shape))
        out = net.register(sl, "slice", f"{lname}.ceil_crop", scoped=False)
    return _reshape_1d(net, out, lname, squeeze=True) if nd == 1 else out


def max_pool1d(
    x: Tensor, kernel_size: IntOrSeq, stride: IntOrSeq | None = None, padding: Padding = 0, dilation: int = 1,
    ceil_mode: bool = False, *, name: str | None = None,
) -> Tensor:  # fmt: skip
    """Max pooling over (N, C, L). See :func:`max_pool2d`."""
    _no_dilation("max_pool1d", dilation)
    return _pool("max_pool1d", 1, "MAX", x, kernel_size, stride, padding, ceil_mode, True, name)


def max_pool2d(
    x: Tensor, kernel_size: IntOrSeq, stride: IntOrSeq | None = None, padding: Padding = 0, dilation: int = 1,
    ceil_mode: bool = False, *, name: str | None = None,
) -> Tensor:  # fmt: skip
    """Max pooling over NCHW, like ``torch.nn.functional.max_pool2d`` (``stride`` defaults to the window).

    ``padding`` also takes per-dim ``(before, after)`` pairs and ``'same'``
    (SAME_UPPER, like Keras). TensorRT pooling has no dilation.

    Example::

        y = ops.max_pool2d(x, 3, stride=2, padding=1)  # ResNet stem
    """
    _no_dilation("max_pool2d", dilation)
    return _pool("max_pool2d", 2, "MAX", x, kernel_size, stride, padding, ceil_mode, True, name)


def max_pool3d(
    x: Tensor, kernel_size: IntOrSeq, stride: IntOrSeq | None = None, padding: Padding = 0, dilation: int = 1,
    ceil_mode: bool = False, *, name: str | None = None,
) -> Tensor:  # fmt: skip
    """Max pooling over NCDHW. See :func:`max_pool2d`."""
    _no_dilation("max_pool3d", dilation)
    return _pool("max_pool3d", 3, "MAX", x, kernel_size, stride, padding, ceil_mode, True, name)


def _no_dilation(kind: str, dilation: IntOrSeq) -> None:
    if any(d != 1 for d in np.atleast_1d(dilation)):
        raise ShapeError(f"{kind}: TensorRT pooling has no dilation, got dilation={dilation!r}")


def avg_pool1d(
    x: Tensor, kernel_size: IntOrSeq, stride: IntOrSeq | None = None, padding: Padding = 0,
    ceil_mode: bool = False, count_include_pad: bool = True, *, name: str | None = None,
) -> Tensor:  # fmt: skip
    """Average pooling over (N, C, L). See :func:`avg_pool2d`."""
    return _pool("avg_pool1d", 1, "AVERAGE", x, kernel_size, stride, padding, ceil_mode, count_include_pad, name)


def avg_pool2d(
    x: Tensor, kernel_size: IntOrSeq, stride: IntOrSeq | None = None, padding: Padding = 0,
    ceil_mode: bool = False, count_include_pad: bool = True, *, name: str | None = None,
) -> Tensor:  # fmt: skip
    """Average pooling over NCHW, like ``torch.nn.functional.avg_pool2d``.

    ``count_include_pad=False`` divides by the real pixels only (what Keras'
    'same' average pooling does).

    Example::

        y = ops.avg_pool2d(x, 3, stride=1, padding="same", count_include_pad=False)
    """
    return _pool("avg_pool2d", 2, "AVERAGE", x, kernel_size, stride, padding, ceil_mode, count_include_pad, name)


def avg_pool3d(
    x: Tensor, kernel_size: IntOrSeq, stride: IntOrSeq | None = None, padding: Padding = 0,
    ceil_mode: bool = False, count_include_pad: bool = True, *, name: str | None = None,
) -> Tensor:  # fmt: skip
    """Average pooling over NCDHW. See :func:`avg_pool2d`."""
    return _pool("avg_pool3d", 3, "AVERAGE", x, kernel_size, stride, padding, ceil_mode, count_include_pad, name)


# -------------------------------------------------------------- global/adaptive
def _global(kind: str, op: str, x: Tensor, name: str | None) -> Tensor:
    net = x.net
    if x.ndim < 3:
        raise ShapeError(f"{kind}: input {x.name!r} needs spatial dims after (N, C), got shape {x.shape}")
    x = net.to_compute(x)
    layer = net.trt.add_reduce(
        x.trt, getattr(_trt.load().ReduceOperation, op), bitmask(range(2, x.ndim)), keep_dims=True
    )
    return net.register(layer, kind, name)


def global_avg_pool(x: Tensor, *, name: str | None = None) -> Tensor:
    """Mean over every spatial dim, keeping them as size 1: (N, C, H, W) -> (N, C, 1, 1).

    Works for dynamic spatial sizes (a reduce layer, not a pooling window).
    """
    return _global("global_avg_pool", "AVG", x, name)


def global_max_pool(x: Tensor, *, name: str | None = None) -> Tensor:
    """Max over every spatial dim, keeping them as size 1: (N, C, H, W) -> (N, C, 1, 1)."""
    return _global("global_max_pool", "MAX", x, name)


def _adaptive(kind: str, nd: int, ptype: str, x: Tensor, output_size: IntOrSeq, name: str | None) -> Tensor:
    _check_rank(x, nd, kind)
    out = pair(output_size, nd, f"{kind}: output_size")
    if all(o == 1 for o in out):
        return _global(kind, "AVG" if ptype == "AVERAGE" else "MAX", x, name)
    spatial = x.shape[2:]
    if min(spatial) < 0 or any(i % o for i, o in zip(spatial, out, strict=True)):
        raise ShapeError(
            f"{kind}: output_size {out} needs static spatial dims divisible by it (then the pool is a plain "
            f"window), got input shape {x.shape}; output_size 1 works for any shape"
        )
    window = tuple(i // o for i, o in zip(spatial, out, strict=True))
    return _pool(kind, nd, ptype, x, window, window, 0, False, True, name)


def adaptive_avg_pool1d(x: Tensor, output_size: IntOrSeq, *, name: str | None = None) -> Tensor:
    """Adaptive average pooling over (N, C, L). See :func:`adaptive_avg_pool2d`."""
    return _adaptive("adaptive_avg_pool1d", 1, "AVERAGE", x, output_size, name)


def adaptive_avg_pool2d(x: Tensor, output_size: IntOrSeq, *, name: str | None = None) -> Tensor:
    """Like ``torch.nn.functional.adaptive_avg_pool2d`` for output size 1 (any input) or a divisor of the input.

    Example::

        feat = ops.adaptive_avg_pool2d(x, 1)  # (N, C, 1, 1)
    """
    return _adaptive("adaptive_avg_pool2d", 2, "AVERAGE", x, output_size, name)


def adaptive_avg_pool3d(x: Tensor, output_size: IntOrSeq, *, name: str | None = None) -> Tensor:
    """Adaptive average pooling over NCDHW. See :func:`adaptive_avg_pool2d`."""
    return _adaptive("adaptive_avg_pool3d", 3, "AVERAGE", x, output_size, name)


def adaptive_max_pool1d(x: Tensor, output_size: IntOrSeq, *, name: str | None = None) -> Tensor:
    """Adaptive max pooling over (N, C, L). See :func:`adaptive_avg_pool2d`."""
    return _adaptive("adaptive_max_pool1d", 1, "MAX", x, output_size, name)


def adaptive_max_pool2d(x: Tensor, output_size: IntOrSeq, *, name: str | None = None) -> Tensor:
    """Adaptive max pooling over NCHW for output size 1 or a divisor of the input. See :func:`adaptive_avg_pool2d`."""
    return _adaptive("adaptive_max_pool2d", 2, "MAX", x, output_size, name)


def adaptive_max_pool3d(x: Tensor, output_size: IntOrSeq, *, name: str | None = None) -> Tensor:
    """Adaptive max pooling over NCDHW. See :func:`adaptive_avg_pool2d`."""
    return _adaptive("adaptive_max_pool3d", 3, "MAX", x, output_size, name)
