"""Convolution and transposed convolution, 1-D to 3-D, with PyTorch semantics.

Tensors are channels-first (NCL, NCHW, NCDHW). Kernels are PyTorch layouts:
KCRS ``(out, in/groups, *k)`` for convolution and ``(in, out/groups, *k)`` for
transposed convolution, as NumPy arrays (kept under ``<layer>.kernel`` /
``<layer>.bias``) or as Tensors (wired to the layer's kernel/bias inputs).

TensorRT has only 2-D and 3-D convolution, so the 1-D ops run a 2-D
convolution on an ``(N, C, 1, L)`` view. TensorRT needs the kernel in the
input's dtype. bfloat16 kernels cannot be written as NumPy arrays, so in a
bfloat16 network the kernel and bias become float32 constants cast to bfloat16
and feed the layer as tensors. TensorRT-RTX 1.7 cannot build a bfloat16
deconvolution at all, so transposed convolutions of a bfloat16 network compute
in float32 between two casts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _trt, dtypes
from ..errors import ShapeError
from ..network import Network
from ..tensor import Tensor
from ._util import _axes_tensor, pair, relative

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]

IntOrSeq = int | Sequence[int]
Padding = int | str | Sequence[int] | Sequence[Sequence[int]]
Weight = np.ndarray | Tensor | Any


# --------------------------------------------------------------- shared helpers
def _spatial_padding(padding: Padding, nd: int, what: str) -> tuple[str | None, tuple[int, ...], tuple[int, ...]]:
    """``(mode, pre, post)``: mode is 'same' or None; pre/post are per spatial dim."""
    if type(padding) is int and padding >= 0:  # the common case, first
        pre = (padding,) * nd
        return None, pre, pre
    if isinstance(padding, str):
        key = padding.lower()
        if key == "same":
            return "same", (0,) * nd, (0,) * nd
        if key == "valid":
            return None, (0,) * nd, (0,) * nd
        raise ShapeError(f"{what}: padding {padding!r} is not 'same', 'valid', an int or per-dim values")
    if isinstance(padding, (int, np.integer)):
        p = int(padding)
        pre = post = (p,) * nd
    else:
        items = list(padding)
        if len(items) != nd:
            raise ShapeError(f"{what}: padding needs {nd} per-dim values, got {padding!r}")
        if all(isinstance(v, (int, np.integer)) for v in items):
            pre = post = tuple(int(v) for v in items)
        elif all(isinstance(v, Sequence) and len(v) == 2 for v in items):
            pre = tuple(int(v[0]) for v in items)
            post = tuple(int(v[1]) for v in items)
        else:
            raise ShapeError(f"{what}: padding must be ints or (before, after) pairs per dim, got {padding!r}")
    if min(pre + post) < 0:
        raise ShapeError(f"{what}: padding must be non-negative, got {padding!r}")
    return None, pre, post


_F32 = np.dtype(np.float32)
_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _check_rank(x: Tensor, nd: int, what: str, shape: tuple[int, ...] | None = None) -> None:
    """``shape``: ``x.shape`` when the caller has already read it (each read crosses pybind)."""
    shape = x.shape if shape is None else shape
    if len(shape) != nd + 2:
        raise ShapeError(f"{what}: input {x.name!r} must have rank {nd + 2} {_LAYOUTS[nd]}, got shape {shape}")


def _ints(value: IntOrSeq, n: int, what: str, label: str) -> tuple[int, ...]:
    """``pair(value, n, f"{what}: {label}")``, building the message only for a sequence."""
    if type(value) is int:
        return (value,) * n
    return pair(value, n, f"{what}: {label}")


def _reshape_1d(net: Network, t: Tensor, lname: str, squeeze: bool) -> Tensor:
    """Insert (or remove) the size-1 H axis at position 2 that runs a 1-D op as 2-D."""
    axes = _axes_tensor(net, [2])
    if squeeze:
        layer = net.trt.add_squeeze(t.trt, axes.trt)
        return net.register(layer, "squeeze", f"{lname}.squeeze", scoped=False)
    layer = net.trt.add_unsqueeze(t.trt, axes.trt)
    return net.register(layer, "unsqueeze", f"{lname}.unsqueeze", scoped=False)


def _windowed_1d(net: Network, x: Tensor, lname: str) -> Tensor:
    return _reshape_1d(net, x, lname, squeeze=False)


def _as_2d(values: tuple[int, ...], fill: int) -> tuple[int, ...]:
    return (fill, *values)


# ------------------------------------------------------------------ the kernel
def _kernel_array(weight: Any, what: str) -> np.ndarray:
    w = np.asarray(weight)
    if w.dtype.kind not in "fiu":
        raise ShapeError(f"{what}: kernel must be a numeric array or a Tensor, got dtype {w.dtype}")
    return w.astype(np.float32, copy=False)


def _check_static(shape: tuple[int, ...], what: str) -> None:
    if shape and min(shape) < 0:
        raise ShapeError(f"{what}: a kernel tensor needs a static shape, got {tuple(shape)}")


def _check_conv_kernel(shape: tuple[int, ...], c_in: int, groups: int, nd: int, what: str) -> tuple[int, ...]:
    """Validate a KCRS kernel shape; return the spatial kernel size."""
    _check_static(shape, what)
    if len(shape) != nd + 2:
        raise ShapeError(f"{what}: kernel must have rank {nd + 2} (out, in/groups, *k), got shape {tuple(shape)}")
    if c_in % groups:
        raise ShapeError(f"{what}: groups={groups} does not divide the {c_in} input channels")
    if shape[0] % groups:
        raise ShapeError(f"{what}: groups={groups} does not divide the {shape[0]} output channels of kernel {shape}")
    if shape[1] * groups != c_in:
        want = (shape[0], c_in // groups, *shape[2:])
        hint = ""
        # Keras stores (*k, in, out): square windows first, input channels second to last.
        if shape[-2] in (c_in, c_in // groups) and len(set(shape[:nd])) == 1:
            want = (shape[-1], shape[-2], *shape[:nd])
            hint = " It looks like a Keras HWIO kernel: use trtdsl.weights.layout.keras_conv(kernel)."
        raise ShapeError(
            f"{what}: kernel {tuple(shape)} does not fit input with {c_in} channels and groups={groups}; "
            f"expected (K, {c_in // groups}, *k) KCRS such as {want}.{hint}"
        )
    return tuple(map(int, shape[2:]))


def _check_deconv_kernel(shape: tuple[int, ...], c_in: int, groups: int, nd: int, what: str) -> tuple[int, ...]:
    _check_static(shape, what)
    if len(shape) != nd + 2:
        raise ShapeError(f"{what}: kernel must have rank {nd + 2} (in, out/groups, *k), got shape {tuple(shape)}")
    if c_in % groups:
        raise ShapeError(f"{what}: groups={groups} does not divide the {c_in} input channels")
    if shape[0] != c_in:
        raise ShapeError(
            f"{what}: kernel {tuple(shape)} does not fit input with {c_in} channels; "
            f"expected ({c_in}, out/groups, *k), PyTorch's ConvTranspose layout"
        )
    return tuple(int(s) for s in shape[2:])


def _weight_inputs(
    net: Network, lname: str, kernel: Any, bias: Any, dtype: str, one_d: bool, k_out: int, what: str
) -> tuple[Any, Any, Tensor | None, Tensor | None]:
    """``(kernel Weights, bias Weights, kernel Tensor, bias Tensor)`` for the layer."""
    trt = _trt.load()
    as_tensor = isinstance(kernel, Tensor) or isinstance(bias, Tensor) or dtype == "bfloat16"
    if bias is not None and not isinstance(bias, Tensor):
        bias = np.asarray(bias, dtype=np.float32).reshape(-1)
        if bias.size != k_out:
            raise ShapeError(f"{what}: bias has {bias.size} values, expected one per output channel ({k_out})")
    if not as_tensor:
        np_dtype = dtypes.to_numpy(dtype)
        w = net.keep(kernel.astype(np_dtype, copy=False), f"{lname}.kernel")
        if bias is None:
            return w, trt.Weights(dtypes.to_trt(dtype)), None, None
        return w, net.keep(bias.astype(np_dtype, copy=False), f"{lname}.bias"), None, None
    rel = relative(net, lname)
    empty = trt.Weights(dtypes.to_trt(dtype))
    if isinstance(kernel, Tensor):
        kt = net.cast(kernel, dtype)
        if one_d:
            kt = _reshape_1d(net, kt, f"{lname}.kernel", squeeze=False)
    else:
        kt = net.constant(kernel, f"{rel}.kernel", dtype=dtype)
    bt = None
    if isinstance(bias, Tensor):
        if bias.shape not in ((k_out,), (-1,)):
            raise ShapeError(f"{what}: bias tensor {bias.name!r} must have shape ({k_out},), got {bias.shape}")
        bt = net.cast(bias, dtype)
    elif bias is not None:
        bt = net.constant(bias, f"{rel}.bias", dtype=dtype)
    return empty, empty, kt, bt


# ----------------------------------------------------------------- convolution
def _conv(
    kind: str,
    nd: int,
    x: Tensor,
    weight: Weight,
    bias: Any,
    stride: IntOrSeq,
    padding: Padding,
    dilation: IntOrSeq,
    groups: int,
    name: str | None,
) -> Tensor:
    net = x.net
    lname = net.op_name(name, kind, x)
    what = f"{kind} {lname!r}"
    shape = x.shape  # a cast to the compute dtype keeps it
    _check_rank(x, nd, what, shape)
    x, dtype = net.in_compute(x)
    c_in = shape[1]
    if c_in < 0:
        raise ShapeError(f"{what}: the channel dim of input {x.name!r} must be static, got shape {x.shape}")
    kernel = weight if isinstance(weight, Tensor) else _kernel_array(weight, what)
    ksize = _check_conv_kernel(tuple(kernel.shape), c_in, groups, nd, what)
    k_out = int(kernel.shape[0])
    stride, dilation = _ints(stride, nd, what, "stride"), _ints(dilation, nd, what, "dilation")
    mode, pre, post = _spatial_padding(padding, nd, what)
    one_d = nd == 1
    if one_d:
        x, kernel, ksize, stride, dilation, pre, post = _lift_1d(
            net, x, lname, kernel, ksize, stride, dilation, pre, post
        )
    out = _add_conv(net, x, dtype, kind, lname, what, kernel, bias, k_out, ksize, stride, dilation, groups,
                    mode, pre, post, one_d)  # fmt: skip
    return _reshape_1d(net, out, lname, squeeze=True) if one_d else out


def _add_conv(
    net: Network, x: Tensor, dtype: str, kind: str, lname: str, what: str, kernel: Any, bias: Any, k_out: int,
    ksize: tuple[int, ...], stride, dilation, groups: int, mode: str | None, pre, post, one_d: bool = False,
) -> Tensor:  # fmt: skip
    """The convolution layer itself, from checked arguments (``x`` already in ``dtype``)."""
    w, b, kt, bt = _weight_inputs(net, lname, kernel, bias, dtype, one_d, k_out, what)
    layer = net.trt.add_convolution_nd(x.trt, k_out, ksize, w, b)
    _configure(layer, kt, bt, stride, dilation, groups, mode, pre, post)
    return net.register(layer, kind, lname, resolved=True)


def conv1d(
    x: Tensor, weight: Weight, bias: Any = None, *, stride: IntOrSeq = 1, padding: Padding = 0,
    dilation: IntOrSeq = 1, groups: int = 1, name: str | None = None,
) -> Tensor:  # fmt: skip
    """1-D convolution on (N, C, L); ``weight`` is (out, in/groups, k). See :func:`conv2d`.

    Runs as a 2-D convolution between an unsqueeze and a squeeze layer, so the
    result is named ``<name>.squeeze.out``; the convolution layer is ``<name>``.
    """
    return _conv("conv1d", 1, x, weight, bias, stride, padding, dilation, groups, name)


def conv2d(
    x: Tensor, weight: Weight, bias: Any = None, *, stride: IntOrSeq = 1, padding: Padding = 0,
    dilation: IntOrSeq = 1, groups: int = 1, name: str | None = None,
) -> Tensor:  # fmt: skip
    """2-D convolution on NCHW, like ``torch.nn.functional.conv2d``.

    ``weight`` is KCRS ``(out, in/groups, kh, kw)``: a NumPy array (stored as
    ``<layer>.kernel``) or a Tensor. ``padding`` is an int, per-dim ints,
    per-dim ``(before, after)`` pairs, ``'valid'``, or ``'same'``
    (TensorRT SAME_UPPER: the extra pixel goes at the end, as in Keras and
    TensorFlow, also with stride > 1).

    Example::

        with net.scope("stem"):
            y = ops.conv2d(x, w, b, stride=2, padding=3, name="conv1")  # layer 'stem.conv1'
    """
    return _conv("conv2d", 2, x, weight, bias, stride, padding, dilation, groups, name)


def conv3d(
    x: Tensor, weight: Weight, bias: Any = None, *, stride: IntOrSeq = 1, padding: Padding = 0,
    dilation: IntOrSeq = 1, groups: int = 1, name: str | None = None,
) -> Tensor:  # fmt: skip
    """3-D convolution on NCDHW; ``weight`` is (out, in/groups, kd, kh, kw). See :func:`conv2d`."""
    return _conv("conv3d", 3, x, weight, bias, stride, padding, dilation, groups, name)


# ------------------------------------------------------- transposed convolution
def _conv_transpose(
    kind: str,
    nd: int,
    x: Tensor,
    weight: Weight,
    bias: Any,
    stride: IntOrSeq,
    padding: Padding,
    output_padding: IntOrSeq,
    groups: int,
    dilation: IntOrSeq,
    name: str | None,
) -> Tensor:
    net = x.net
    lname = net.op_name(name, kind, x)
    what = f"{kind} {lname!r}"
    _check_rank(x, nd, what)
    x = net.to_compute(x)
    out_dtype = x.dtype
    if out_dtype == "bfloat16":
        x = net.cast(x, "float32")
    dtype = x.dtype
    c_in = x.shape[1]
    if c_in < 0:
        raise ShapeError(f"{what}: the channel dim of input {x.name!r} must be static, got shape {x.shape}")
    kernel = weight if isinstance(weight, Tensor) else _kernel_array(weight, what)
    ksize = _check_deconv_kernel(tuple(kernel.shape), c_in, groups, nd, what)
    k_out = int(kernel.shape[1]) * groups
    stride, dilation = pair(stride, nd, f"{what}: stride"), pair(dilation, nd, f"{what}: dilation")
    opad = pair(output_padding, nd, f"{what}: output_padding")
    mode, pre, post = _spatial_padding(padding, nd, what)
    if mode == "same" and any(opad):
        raise ShapeError(f"{what}: output_padding cannot be combined with padding='same'")
    for d in range(nd):
        if opad[d] >= max(stride[d], dilation[d]):
            raise ShapeError(
                f"{what}: output_padding {opad} must be smaller than stride or dilation in every dim "
                f"(stride {stride}, dilation {dilation})"
            )
        if opad[d] > post[d]:
            raise ShapeError(
                f"{what}: output_padding {opad[d]} exceeds the padding {post[d]} of dim {d}; TensorRT "
                "cannot grow a deconvolution's output past its full size (post padding would be negative)"
            )
    # PyTorch crops `padding` on both sides and then adds `output_padding` at the end.
    post = tuple(p - o for p, o in zip(post, opad, strict=True))
    one_d = nd == 1
    if one_d:
        x, kernel, ksize, stride, dilation, pre, post = _lift_1d(
            net, x, lname, kernel, ksize, stride, dilation, pre, post
        )
    w, b, kt, bt = _weight_inputs(net, lname, kernel, bias, dtype, one_d, k_out, what)
    layer = net.trt.add_deconvolution_nd(x.trt, k_out, ksize, w, b)
    _configure(layer, kt, bt, stride, dilation, groups, mode, pre, post)
    out = net.register(layer, kind, lname, resolved=True)
    if one_d:
        out = _reshape_1d(net, out, lname, squeeze=True)
    return net.cast(out, out_dtype)


def conv_transpose1d(
    x: Tensor, weight: Weight, bias: Any = None, *, stride: IntOrSeq = 1, padding: Padding = 0,
    output_padding: IntOrSeq = 0, groups: int = 1, dilation: IntOrSeq = 1, name: str | None = None,
) -> Tensor:  # fmt: skip
    """1-D transposed convolution on (N, C, L); ``weight`` is (in, out/groups, k). See :func:`conv_transpose2d`."""
    return _conv_transpose("conv_transpose1d", 1, x, weight, bias, stride, padding, output_padding, groups,
                           dilation, name)  # fmt: skip


def conv_transpose2d(
    x: Tensor, weight: Weight, bias: Any = None, *, stride: IntOrSeq = 1, padding: Padding = 0,
    output_padding: IntOrSeq = 0, groups: int = 1, dilation: IntOrSeq = 1, name: str | None = None,
) -> Tensor:  # fmt: skip
    """2-D transposed convolution on NCHW, like ``torch.nn.functional.conv_transpose2d``.

    ``weight`` is PyTorch's ``(in, out/groups, kh, kw)``. ``padding`` crops the
    full output on both sides (ints, per-dim ints or ``(before, after)`` pairs,
    or ``'same'`` for TensorRT SAME_UPPER), and ``output_padding`` gives back
    that many rows/columns at the end; it must not exceed the padding.

    Example::

        up = ops.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)  # H -> 2H
    """
    return _conv_transpose("conv_transpose2d", 2, x, weight, bias, stride, padding, output_padding, groups,
                           dilation, name)  # fmt: skip


def conv_transpose3d(
    x: Tensor, weight: Weight, bias: Any = None, *, stride: IntOrSeq = 1, padding: Padding = 0,
    output_padding: IntOrSeq = 0, groups: int = 1, dilation: IntOrSeq = 1, name: str | None = None,
) -> Tensor:  # fmt: skip
    """3-D transposed convolution on NCDHW; ``weight`` is (in, out/groups, kd, kh, kw). See :func:`conv_transpose2d`."""
    return _conv_transpose("conv_transpose3d", 3, x, weight, bias, stride, padding, output_padding, groups,
                           dilation, name)  # fmt: skip


def _lift_1d(net: Any, x: Tensor, lname: str, kernel: Any, ksize, stride, dilation, pre, post) -> tuple:
    """TensorRT-RTX has only 2-D/3-D kernels: a 1-D op runs as 2-D over a unit height."""
    x = _windowed_1d(net, x, lname)
    if not isinstance(kernel, Tensor):
        kernel = kernel[:, :, None, :]
    return x, kernel, _as_2d(ksize, 1), _as_2d(stride, 1), _as_2d(dilation, 1), _as_2d(pre, 0), _as_2d(post, 0)


def _configure(layer: Any, kt: Any, bt: Any, stride, dilation, groups: int, mode: str, pre, post) -> None:
    """Settings shared by convolution and deconvolution layers."""
    if kt is not None:
        layer.set_input(1, kt.trt)
    if bt is not None:
        layer.set_input(2, bt.trt)
    # Each setting crosses pybind: leave TensorRT's defaults (dilation 1, one group)
    # alone, and set symmetric padding with the one call that sets both sides.
    layer.stride_nd = stride
    if dilation.count(1) != len(dilation):
        layer.dilation_nd = dilation
    if groups != 1:
        layer.num_groups = groups
    if mode == "same":
        layer.padding_mode = _trt.load().PaddingMode.SAME_UPPER
    elif pre == post:
        layer.padding_nd = pre
    else:
        layer.pre_padding = pre
        layer.post_padding = post
