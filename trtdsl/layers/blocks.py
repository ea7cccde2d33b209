"""Convolutional blocks in torchvision's layouts: ResNet basic/bottleneck, MobileNet, squeeze-excite.

Each block reads its weights under ``prefix`` with the names torchvision's
``state_dict()`` uses, and names its layers from the same prefix. The patterns
are the ones TensorRT fuses well: BatchNorm folded into each convolution, the
activation right after its convolution, and the residual add directly after the
block's last convolution (TensorRT fuses conv + bias + add [+ ReLU] into one kernel).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from .. import ops
from ..errors import ShapeError
from ..tensor import Tensor
from ..weights.store import WeightStore
from . import _act
from ._params import Weights, block, scope
from .conv import conv_bn_act

__all__ = ["residual_block", "bottleneck_block", "depthwise_separable", "inverted_residual", "squeeze_excite"]


def _relu(total: Tensor) -> Tensor:
    """``ops.relu(total, name="relu")`` for a residual sum, which is in the compute dtype
    (the add casts float operands to it), so without reading its dtype back from TensorRT."""
    return _act.apply(total, "relu", "relu")


def _shortcut(x: Tensor, p: WeightStore, channels: int, stride: int, eps: float) -> Tensor:
    """``x``, or torchvision's ``downsample`` (1x1 conv + BN) when the shape changes or one is stored."""
    if stride != 1 or x.shape[1] != channels or "downsample.0.weight" in p:
        return conv_bn_act(
            x, p, "downsample.0", "downsample.1", out_channels=channels, kernel_size=1, stride=stride, eps=eps
        )
    return x


def residual_block(
    x: Tensor, w: Weights, prefix: str, out_channels: int | None = None, *, stride: int = 1, eps: float = 1e-5
) -> Tensor:
    """torchvision ``BasicBlock``: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    Weights ``conv1``, ``bn1``, ``conv2``, ``bn2`` and, when the stride or width
    changes, ``downsample.0`` (conv) and ``downsample.1`` (BN).

    Example::

        x = residual_block(x, w, "layer2.0", 128, stride=2)
    """
    p = block(w, prefix, "residual_block")
    with scope(x.net, prefix):
        y = conv_bn_act(
            x, p, "conv1", "bn1", out_channels=out_channels, kernel_size=3, stride=stride, act="relu", eps=eps
        )
        y = conv_bn_act(y, p, "conv2", "bn2", out_channels=y.shape[1], kernel_size=3, eps=eps)
        shortcut = _shortcut(x, p, y.shape[1], stride, eps)
        # No activation between conv2 and the add: conv + add + ReLU fuse into one kernel.
        return _relu(ops.add(y, shortcut, name="add"))


def bottleneck_block(
    x: Tensor,
    w: Weights,
    prefix: str,
    planes: int | None = None,
    *,
    stride: int = 1,
    groups: int = 1,
    expansion: int = 4,
    eps: float = 1e-5,
) -> Tensor:
    """torchvision ``Bottleneck`` (ResNet v1.5: the stride is on the 3x3 convolution).

    1x1 ``conv1`` to ``planes`` (times width/groups for ResNeXt, read from the weight
    when ``planes`` is None), 3x3 ``conv2`` with ``stride`` and ``groups``, 1x1
    ``conv3`` to ``planes * expansion``, then the residual add and ReLU.

    Example::

        x = bottleneck_block(x, w, "layer3.0", 256, stride=2)
    """
    p = block(w, prefix, "bottleneck_block")
    with scope(x.net, prefix):
        y = conv_bn_act(x, p, "conv1", "bn1", out_channels=planes, kernel_size=1, act="relu", eps=eps)
        y = conv_bn_act(y, p, "conv2", "bn2", kernel_size=3, stride=stride, groups=groups, act="relu", eps=eps)
        out = None if planes is None else planes * expansion
        y = conv_bn_act(y, p, "conv3", "bn3", out_channels=out, kernel_size=1, eps=eps)
        # conv_bn_act checked conv3's kernel against ``out``: no need to read y's shape back.
        shortcut = _shortcut(x, p, y.shape[1] if out is None else out, stride, eps)
        return _relu(ops.add(y, shortcut, name="add"))


def depthwise_separable(
    x: Tensor,
    w: Weights,
    prefix: str,
    out_channels: int | None = None,
    *,
    stride: int = 1,
    kernel_size: int = 3,
    act: _act.Act = "relu",
    pw_act: _act.Act = None,
    residual: bool | None = None,
    names: Sequence[str] = ("conv_dw", "bn1", "conv_pw", "bn2"),
    eps: float = 1e-5,
) -> Tensor:
    """Depthwise k x k conv + BN + ``act``, then pointwise 1x1 conv + BN + ``pw_act``.

    ``names`` are the (depthwise conv, its BN, pointwise conv, its BN) keys; the
    default is timm's ``DepthwiseSeparableConv``. ``residual`` (default: when the
    shape is kept) adds the input as the block's last op.

    Example::

        x = depthwise_separable(x, w, "blocks.1", 64, stride=2, act="relu6", pw_act="relu6")  # MobileNetV1
    """
    p = block(w, prefix, "depthwise_separable")
    dw, bn1, pw, bn2 = names
    c = x.shape[1]
    with scope(x.net, prefix):
        y = conv_bn_act(
            x, p, dw, bn1, out_channels=c, kernel_size=kernel_size, stride=stride, groups=c, act=act, eps=eps
        )
        y = conv_bn_act(y, p, pw, bn2, out_channels=out_channels, kernel_size=1, act=pw_act, eps=eps)
        if residual is None:
            residual = stride == 1 and y.shape[1] == c
        return ops.add(y, x, name="add") if residual else y


def squeeze_excite(
    x: Tensor,
    w: Weights,
    prefix: str,
    squeeze_channels: int | None = None,
    *,
    act: _act.Act = "relu",
    scale_act: _act.Act = "sigmoid",
    names: Sequence[str] = ("fc1", "fc2"),
) -> Tensor:
    """torchvision ``SqueezeExcitation``: ``x * scale_act(fc2(act(fc1(mean(x)))))``.

    ``fc1``/``fc2`` are 1x1 convolutions with bias (``names`` renames them, e.g.
    timm's ``("conv_reduce", "conv_expand")``). MobileNetV3 uses
    ``scale_act="hard_sigmoid"``.

    Example::

        x = squeeze_excite(x, w, "block.2", 24, scale_act="hard_sigmoid")
    """
    p = block(w, prefix, "squeeze_excite")
    if x.ndim < 3:
        raise ShapeError(f"{p.where}: input {x.name!r} has shape {x.shape}; expected (N, C, spatial...)")
    fc1, fc2 = names
    c = x.shape[1]
    with scope(x.net, prefix):
        s = ops.mean(x, tuple(range(2, x.ndim)), keepdim=True, name="avgpool")
        s = conv_bn_act(s, p, fc1, out_channels=squeeze_channels, kernel_size=1, act=act)
        s = conv_bn_act(s, p, fc2, out_channels=c, kernel_size=1, act=scale_act)
        return ops.mul(x, s, name="scale")


def inverted_residual(
    x: Tensor,
    w: Weights,
    prefix: str,
    out_channels: int,
    *,
    stride: int = 1,
    expand_ratio: float = 6,
    expanded_channels: int | None = None,
    kernel_size: int = 3,
    dilation: int = 1,
    act: _act.Act = "relu6",
    se_channels: int | None = None,
    layout: Literal["mobilenet_v2", "mobilenet_v3"] = "mobilenet_v2",
    eps: float = 1e-5,
) -> Tensor:
    """MobileNet inverted residual: 1x1 expand, k x k depthwise, [squeeze-excite], 1x1 linear project.

    Args:
        expand_ratio, expanded_channels: the hidden width, ``round(in * expand_ratio)``
            unless ``expanded_channels`` is given; no expand conv when it equals the input width.
        se_channels: squeeze width of a squeeze-excite after the depthwise conv (V3), None: no SE.
        layout: torchvision key layout. ``'mobilenet_v2'``: ``conv.0.0``/``conv.0.1`` ...
            with a bare ``conv.N`` + BN ``conv.N+1`` projection; ``'mobilenet_v3'``:
            ``block.i.0``/``block.i.1`` per stage, SE at ``block.i.fc1/fc2`` with hard-sigmoid
            (use ``eps=1e-3``, torchvision's MobileNetV3 BatchNorm epsilon).

    The residual add (stride 1, same width) is the block's last op, right after
    the projection convolution, so TensorRT fuses it into that convolution.

    Example::

        x = inverted_residual(x, w, "features.2", 24, stride=2, expand_ratio=6)
    """
    p = block(w, prefix, "inverted_residual")
    c_in = x.shape[1]
    hidden = expanded_channels if expanded_channels is not None else round(c_in * expand_ratio)
    root = "conv" if layout == "mobilenet_v2" else "block"
    if layout not in ("mobilenet_v2", "mobilenet_v3"):
        raise ShapeError(f"{p.where}: layout must be 'mobilenet_v2' or 'mobilenet_v3', got {layout!r}")
    i = 0
    with scope(x.net, prefix):
        y = x
        if hidden != c_in:
            y = conv_bn_act(
                y, p, f"{root}.{i}.0", f"{root}.{i}.1", out_channels=hidden, kernel_size=1, act=act, eps=eps
            )
            i += 1
        y = conv_bn_act(
            y, p, f"{root}.{i}.0", f"{root}.{i}.1", out_channels=hidden, kernel_size=kernel_size,
            stride=stride, dilation=dilation, groups=hidden, act=act, eps=eps,
        )  # fmt: skip
        i += 1
        if se_channels is not None:
            y = squeeze_excite(y, p, f"{root}.{i}", se_channels, scale_act="hard_sigmoid")
            i += 1
        if layout == "mobilenet_v2":
            y = conv_bn_act(y, p, f"{root}.{i}", f"{root}.{i + 1}", out_channels=out_channels, kernel_size=1, eps=eps)
        else:
            y = conv_bn_act(y, p, f"{root}.{i}.0", f"{root}.{i}.1", out_channels=out_channels, kernel_size=1, eps=eps)
        if stride == 1 and c_in == out_channels:
            y = ops.add(y, x, name="add")
        return y
