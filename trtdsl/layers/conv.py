"""Convolution + BatchNorm + activation, with the BatchNorm folded into the convolution.

Folding happens here, in NumPy, at definition time: the network gets one
convolution layer whose kernel and bias already include the normalization, not
a convolution followed by a scale layer. TensorRT would usually fold the scale
itself, but a folded definition builds faster, is what the engine inspector
shows, and keeps the activation directly after the convolution, which TensorRT
fuses into the convolution kernel (conv + bias + activation in one kernel).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import ops
from ..errors import ShapeError
from ..tensor import Tensor
from ..weights.store import WeightStore
from . import _act
from ._params import Weights, block

__all__ = ["conv_bn_act", "fold_batch_norm", "batch_norm_params"]

_CONV_FNS = {1: ops.conv1d, 2: ops.conv2d, 3: ops.conv3d}


def _ints(value: Sequence[int], n: int, what: str) -> tuple[int, ...]:
    """Per-axis ints of a sequence argument (plain ints are expanded by the caller)."""
    out = tuple(int(v) for v in value)
    if len(out) != n:
        raise ShapeError(f"{what} needs {n} values, got {out}")
    return out


def fold_batch_norm(
    kernel: np.ndarray,
    bias: np.ndarray | None,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of ``bn(conv(x))`` as one convolution (any rank, output channels first).

    ``scale = gamma / sqrt(var + eps)``; ``kernel' = kernel * scale`` per output
    channel and ``bias' = beta + (bias - mean) * scale``. The per-channel vectors
    are computed in float64; the kernel is scaled in one float32 pass (one
    rounding), because this is the bulk of a model's definition time.

    Example::

        k, b = fold_batch_norm(w["conv1.weight"], None, w["bn1.weight"], w["bn1.bias"],
                               w["bn1.running_mean"], w["bn1.running_var"])
    """
    kernel = np.asarray(kernel)
    k = kernel.shape[0]
    gamma = np.ones(k) if gamma is None else np.asarray(gamma, np.float64)
    scale = gamma / np.sqrt(np.asarray(var, np.float64) + eps)
    folded = kernel.astype(np.float32, copy=False) * scale.astype(np.float32).reshape((k,) + (1,) * (kernel.ndim - 1))
    mean = np.asarray(mean, np.float64)
    if bias is None and beta is not None:
        # beta + (0 - mean) * scale, bit for bit (negation is exact), in two vector ops fewer.
        shift = np.asarray(beta, np.float64) - mean * scale
    else:
        beta = np.zeros(k) if beta is None else np.asarray(beta, np.float64)
        bias = np.zeros(k) if bias is None else np.asarray(bias, np.float64)
        shift = beta + (bias - mean) * scale
    return folded, shift.astype(np.float32)


def batch_norm_params(
    p: WeightStore, channels: int
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray]:
    """(gamma, beta, running_mean, running_var) of a torch BatchNorm under ``p``; affine parts optional."""
    shape = (channels,)
    return (
        p.optional("weight", shape),
        p.optional("bias", shape),
        p.take("running_mean", shape),
        p.take("running_var", shape),
    )


def conv_bn_act(
    x: Tensor,
    w: Weights,
    conv: str,
    bn: str | None = None,
    *,
    out_channels: int | None = None,
    kernel_size: int | Sequence[int] | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str | None = None,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    act: _act.Act = None,
    eps: float = 1e-5,
) -> Tensor:
    """Convolution (N-D, NC...) with an optional BatchNorm folded in and an activation after it.

    Args:
        w, conv, bn: weights; ``w[conv + '.weight']`` is the KCRS kernel (torch layout),
            ``w[conv + '.bias']`` an optional bias, and ``w[bn + '.running_mean']`` etc. a
            torch BatchNorm. ``bn=None``: no normalization.
        out_channels, kernel_size: checked against the kernel when given, read from it otherwise.
        padding: default ``(kernel_size - 1) // 2 * dilation`` (torchvision's ``Conv2dNormActivation``).
        act: None, a name ('relu', 'relu6', 'hard_swish', 'silu', ...) or a callable.
        eps: the BatchNorm epsilon (torch 1e-5; torchvision MobileNetV3 1e-3).

    The convolution layer is named ``conv`` in the current scope, its activation ``conv.<act>``.

    Example::

        x = conv_bn_act(x, w, "conv1", "bn1", stride=2, padding=3, act="relu")  # ResNet stem
    """
    shape = x.shape  # one read: each crosses pybind
    spatial = len(shape) - 2
    if spatial < 1:
        raise ShapeError(f"conv_bn_act {conv!r}: input {x.name!r} has shape {shape}; expected (N, C, ...)")
    c_in = shape[1]
    p = block(w, conv, "conv_bn_act")
    # Plain ints skip pair() and the message it would be handed (p.where builds strings).
    if kernel_size is None:
        ks = None
    elif type(kernel_size) is int:
        ks = (kernel_size,) * spatial
    else:
        ks = _ints(kernel_size, spatial, f"{p.where}: kernel_size")
    if c_in != -1 and c_in % groups:
        raise ShapeError(f"{p.where}: input {x.name!r} has {c_in} channels, not divisible by groups={groups}")
    c_per_group = None if c_in == -1 else c_in // groups
    kernel = p.take("weight", (out_channels, c_per_group, *(ks or (None,) * spatial)))
    k = kernel.shape[0]
    if k % groups:
        raise ShapeError(f"{p.where}: {k} output channels are not divisible by groups={groups}")
    bias = p.optional("bias", (k,))
    if bn is not None:
        gamma, beta, mean, var = batch_norm_params(block(w, bn, "conv_bn_act"), k)
        kernel, bias = fold_batch_norm(kernel, bias, gamma, beta, mean, var, eps)
    if type(dilation) is not int:
        dil = _ints(dilation, spatial, f"{p.where}: dilation")
    if padding is None:
        ks = kernel.shape[2:]
        if type(dilation) is int and ks.count(ks[0]) == spatial:
            padding = (ks[0] - 1) // 2 * dilation  # one int: the same on every axis
        else:
            dil = (dilation,) * spatial if type(dilation) is int else dil
            padding = tuple([(s - 1) // 2 * d for s, d in zip(ks, dil, strict=True)])
    # Bias inside the convolution and the activation right after it: the pattern
    # TensorRT fuses into one kernel.
    conv_fn = _CONV_FNS.get(spatial)
    if conv_fn is None:
        raise ShapeError(f"{p.where}: input {x.name!r} has rank {len(shape)}; convolutions take rank 3 to 5")
    y = conv_fn(x, kernel, bias, stride=stride, padding=padding, dilation=dilation, groups=groups, name=conv)
    return _act.apply(y, act, f"{conv}.{_act.label(act)}") if act is not None else y
