"""Normalization and Scale layers.

``INormalizationLayer``: y = (x - mean) / sqrt(var + epsilon) * scale + bias,
with mean and (biased) variance over the axes bitmask. With ``num_groups`` > 1
the channel axis 1 is split into groups and each group's channels are
normalized together; the scale and bias are per channel, shaped (1, C, 1, ...)
(``add_normalization_v2``), or per group, shaped (1, G, 1, ...) (the deprecated
``add_normalization``, which older ONNX parsers emit for GroupNormalization).

``IScaleLayer``: y = (x * scale + shift) ** power, with coefficients per tensor
(UNIFORM), per index of ``channel_axis`` (CHANNEL), or per element of the axes
from ``channel_axis`` on (ELEMENTWISE); empty weights mean scale 1, shift 0, power 1.
"""

from __future__ import annotations

import numpy as np

from ..errors import InterpreterError
from .kernels import jit
from .registry import Node, interprets


def _axes(mask: int, ndim: int) -> tuple[int, ...]:
    return tuple(i for i in range(ndim) if mask >> i & 1)


def _standardize(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    # float64 statistics: the reference should not add its own cancellation error.
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    centered = x64 - mean
    var = np.mean(centered * centered, axis=axes, keepdims=True)
    return centered / np.sqrt(var + eps)


@interprets("normalization")
def normalization(node: Node, x: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    # The prepared node keeps the layer's parameters (a change to the layer drops it: reference.watch).
    mask, eps, groups = node.memo(
        "norm", lambda: (node.layer.axes, float(node.layer.epsilon), int(node.layer.num_groups))
    )
    axes = _axes(mask, x.ndim)
    if not axes:
        raise InterpreterError(f"normalization layer {node.name!r}: empty axes bitmask")
    if groups == 1:
        if node.fast and axes == (x.ndim - 1,) and jit.enabled() and x.dtype == np.float32:  # layer norm:
            out = node.empty(x.shape, x.dtype)  # a compiled pass per row (numba installed)
            if jit.layer_norm(x, scale, bias, eps, out):
                return out
        y = _standardize(x, axes, eps)
        return (y * scale + bias).astype(x.dtype, copy=False)
    n, c = x.shape[0], x.shape[1]
    if c % groups:
        raise InterpreterError(f"normalization layer {node.name!r}: {groups} groups do not divide {c} channels")
    # (N, C, *S) -> (N, G, C/G, *S): the group's channels join the reduced axes.
    grouped = x.reshape((n, groups, c // groups, *x.shape[2:]))
    g_axes = (2, *(a + 1 for a in axes if a >= 2))
    y = _standardize(grouped, g_axes, eps)
    if scale.ndim >= 2 and scale.shape[1] == groups and groups != c:
        per_group = (1, groups, 1) + (1,) * (x.ndim - 2)
        y = y * scale.reshape(per_group) + bias.reshape(per_group)
        return y.reshape(x.shape).astype(x.dtype, copy=False)
    return (y.reshape(x.shape) * scale + bias).astype(x.dtype, copy=False)


def _coefficients(node: Node, attr: str, x: np.ndarray) -> np.ndarray | None:
    """A Scale layer's weights shaped to broadcast against ``x`` (None when empty)."""
    layer = node.layer
    mode = layer.mode.name
    axis = int(getattr(layer, "channel_axis", 1)) % x.ndim
    if mode == "UNIFORM":
        shape: tuple[int, ...] = ()
    elif mode == "CHANNEL":
        shape = (x.shape[axis],) + (1,) * (x.ndim - axis - 1)
    elif mode == "ELEMENTWISE":
        shape = x.shape[axis:]
    else:
        raise InterpreterError(f"scale layer {node.name!r}: unknown ScaleMode.{mode}")
    w = node.weights(attr)
    if w is None:
        return None
    if w.size != int(np.prod(shape)):
        raise InterpreterError(
            f"scale layer {node.name!r}: {attr} has {w.size} values; ScaleMode.{mode} on input {x.shape} "
            f"with channel_axis {axis} needs {int(np.prod(shape))}"
        )
    return w.reshape(shape)


@interprets("scale", fresh=True)
def scale(node: Node, x: np.ndarray) -> np.ndarray:
    """``(x * scale + shift) ** power``, each part optional; a fresh array (so an activation after it
    fuses: DenseNet's pre-activation BatchNorms reach TensorRT as Scale layers, then ReLU)."""
    # The prepared node keeps the shaped weights (a change to the layer drops it: reference.watch).
    s, t, p = node.memo(
        ("scale", x.shape), lambda: tuple(_coefficients(node, a, x) for a in ("scale", "shift", "power"))
    )
    if p is None and node.fast and np.result_type(x, *(a for a in (s, t) if a is not None)) == x.dtype:
        # The same two float32 operations, into one buffer of the run.
        y = node.empty(x.shape, x.dtype)
        if s is None:
            np.copyto(y, x)
        else:
            np.multiply(x, s, out=y)
        if t is not None:
            np.add(y, t, out=y)
        return y
    y = x if s is None else x * s
    if t is not None:
        y = y + t
    if p is not None:
        with np.errstate(invalid="ignore"):
            y = np.power(y, p)
    return y.astype(x.dtype) if y is x else y.astype(x.dtype, copy=False)
