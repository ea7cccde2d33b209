"""Keras normalization layers: BatchNormalization, LayerNormalization, GroupNormalization.

BatchNorm folds into one Scale layer with the model's own epsilon (1e-3 by
default, 1.001e-5 in ResNet and DenseNet: read from the config, never assumed).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..tensor import Tensor
from .graph import Call, KTensor, held_constant
from .registry import converts


def _axes(layer: Call, x: KTensor, default: Any = -1) -> list[int]:
    axis = layer.config.get("axis", default)
    axes = axis if isinstance(axis, list) else [axis]
    return sorted(int(a) % x.rank for a in axes)


def _per_axis(x: KTensor, keras_axes: list[int], v: np.ndarray) -> np.ndarray:
    """A vector over Keras axes ``keras_axes`` shaped to broadcast against ``x`` as Keras holds it."""
    shape = [1] * x.rank
    for a, n in zip(keras_axes, v.shape if v.ndim == len(keras_axes) else (v.size,)):
        shape[a] = n
    return held_constant(x, v.reshape(shape))


@converts("BatchNormalization")
def batch_normalization(layer: Call, x: KTensor, **_: Any) -> KTensor:
    c = layer.config
    axes = _axes(layer, x)
    eps = float(c.get("epsilon", 1e-3))
    n = int(np.prod([x.shape[a] for a in axes]))
    gamma = layer.take("gamma", None).reshape(-1) if c.get("scale", True) else None
    beta = layer.take("beta", None).reshape(-1) if c.get("center", True) else None
    mean, var = layer.take("moving_mean").reshape(-1), layer.take("moving_variance").reshape(-1)
    if mean.size != n:
        raise layer.error(f"moving_mean has {mean.size} values; the normalized axes {axes} have {n}")
    if len(axes) == 1 and layer.axis(x, axes[0]) == 1 and x.rank >= 2:
        return layer.like(x, ops.batch_norm(x.t, mean, var, gamma, beta, eps))
    # Any other axis: y = x * scale + shift with the folded vectors broadcast there.
    scale = (1.0 if gamma is None else gamma.astype(np.float64)) / np.sqrt(var.astype(np.float64) + eps)
    shift = (0.0 if beta is None else beta.astype(np.float64)) - mean * scale
    t = ops.add(ops.mul(x.t, _per_axis(x, axes, scale)), _per_axis(x, axes, shift))
    return layer.like(x, t)


def _moments_norm(t: Tensor, axes: list[int], eps: float, rms: bool = False) -> Tensor:
    if rms:  # Keras' (deprecated) rms_scaling divides by sqrt(variance + eps), without centring x
        mu = ops.mean(t, axes, keepdim=True)
        d = ops.sub(t, mu)
        return ops.mul(t, ops.rsqrt(ops.add(ops.mean(ops.mul(d, d), axes, keepdim=True), eps)))
    mu = ops.mean(t, axes, keepdim=True)
    d = ops.sub(t, mu)
    var = ops.mean(ops.mul(d, d), axes, keepdim=True)
    return ops.mul(d, ops.rsqrt(ops.add(var, eps)))


@converts("LayerNormalization")
def layer_normalization(layer: Call, x: KTensor) -> KTensor:
    c = layer.config
    axes = _axes(layer, x)
    eps = float(c.get("epsilon", 1e-3))
    shape = [x.shape[a] for a in axes]
    rms = bool(c.get("rms_scaling"))
    gamma = layer.take("gamma") if c.get("scale", True) or rms else None
    beta = layer.take("beta") if c.get("center", True) and not rms else None
    held = sorted(layer.axis(x, a) for a in axes)
    if not rms and len(axes) == 1 and held == [x.rank - 1] and min(shape) > 0:
        g = None if gamma is None else gamma.reshape([x.t.shape[a] for a in held])
        b = None if beta is None else beta.reshape([x.t.shape[a] for a in held])
        return layer.like(x, ops.layer_norm(x.t, [x.t.shape[a] for a in held], g, b, eps))
    # Normalized axes that are not trailing as held (channels of an NHWC image held NCHW): reduce there.
    t = _moments_norm(x.t, held, eps, rms)
    if gamma is not None:
        t = ops.mul(t, _per_axis(x, axes, gamma))
    if beta is not None:
        t = ops.add(t, _per_axis(x, axes, beta))
    return layer.like(x, t)


@converts("GroupNormalization")
def group_normalization(layer: Call, x: KTensor) -> KTensor:
    c = layer.config
    axis = int(c.get("axis", -1)) % x.rank
    groups = int(c.get("groups", 32))
    eps = float(c.get("epsilon", 1e-3))
    gamma = layer.take("gamma") if c.get("scale", True) else None
    beta = layer.take("beta") if c.get("center", True) else None
    if x.rank == 2 and axis == 1:  # (N, C): each group normalized over its own channels
        t = ops.unsqueeze(layer.logical(x), -1)
        return KTensor(ops.squeeze(ops.group_norm(t, groups, gamma, beta, eps), -1), mask=x.mask)
    if axis == x.rank - 1 and x.rank >= 3:
        t = layer.channels_first(x, "channels_last")
        return KTensor(ops.group_norm(t, groups, gamma, beta, eps), cl=True)
    if layer.axis(x, axis) == 1 and x.rank >= 3:
        return layer.like(x, ops.group_norm(x.t, groups, gamma, beta, eps))
    raise layer.error(f"axis {c.get('axis')} of a rank-{x.rank} input is not supported (channels axis only)")


@converts("RMSNormalization")
def rms_normalization(layer: Call, x: KTensor) -> KTensor:
    """``x * rsqrt(mean(x^2) + epsilon) * scale`` (keras.ops.rms_normalization)."""
    axes = _axes(layer, x)
    eps = float(layer.config.get("epsilon") or 1e-7)  # None means backend.epsilon()
    held = [layer.axis(x, a) for a in axes]
    t = x.t
    t = ops.mul(t, ops.rsqrt(ops.add(ops.mean(ops.mul(t, t), held, keepdim=True), eps)))
    return layer.like(x, ops.mul(t, _per_axis(x, axes, layer.take("scale"))))
