"""Keras merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot."""

from __future__ import annotations

from functools import reduce

from .. import ops
from ..tensor import Tensor
from .graph import Call, KTensor
from .registry import converts


def _inputs(layer: Call, xs: list[KTensor] | KTensor) -> list[KTensor]:
    items = xs if isinstance(xs, list) else [xs]
    if len(items) < 1:
        raise layer.error("a merge layer needs at least one input")
    return items


def _elementwise(layer: Call, xs, fn) -> KTensor:
    items = _inputs(layer, xs)
    ts, cl = layer.same_layout(items)
    return KTensor(reduce(fn, ts), cl, mask=items[0].mask)


@converts("Add")
def add(layer: Call, xs, **_) -> KTensor:
    return _elementwise(layer, xs, ops.add)


@converts("Subtract")
def subtract(layer: Call, xs, **_) -> KTensor:
    items = _inputs(layer, xs)
    if len(items) != 2:
        raise layer.error(f"Subtract takes exactly 2 inputs, got {len(items)}")
    return _elementwise(layer, items, ops.sub)


@converts("Multiply")
def multiply(layer: Call, xs, **_) -> KTensor:
    return _elementwise(layer, xs, ops.mul)


@converts("Maximum")
def maximum(layer: Call, xs, **_) -> KTensor:
    return _elementwise(layer, xs, ops.maximum)


@converts("Minimum")
def minimum(layer: Call, xs, **_) -> KTensor:
    return _elementwise(layer, xs, ops.minimum)


@converts("Average")
def average(layer: Call, xs, **_) -> KTensor:
    items = _inputs(layer, xs)
    s = _elementwise(layer, items, ops.add)
    return KTensor(ops.div(s.t, float(len(items))), s.cl, mask=s.mask)


@converts("Concatenate")
def concatenate(layer: Call, xs, **_) -> KTensor:
    items = _inputs(layer, xs)
    axis = int(layer.config.get("axis", -1))
    ts, cl = layer.same_layout(items)
    ref = KTensor(ts[0], cl)
    return KTensor(ops.concat(ts, layer.axis(ref, axis)), cl)


def _l2(t: Tensor, axis: int) -> Tensor:
    ss = ops.sum(ops.mul(t, t), axis, keepdim=True)
    return ops.mul(t, ops.rsqrt(ops.maximum(ss, 1e-12)))


@converts("Dot")
def dot(layer: Call, xs, **_) -> KTensor:
    a, b = (layer.logical(x) for x in _inputs(layer, xs))
    axes = layer.config.get("axes", -1)
    ax = [int(v) for v in axes] if isinstance(axes, list) else [int(axes)] * 2
    ax = [ax[0] % a.ndim, ax[1] % b.ndim]
    if layer.config.get("normalize"):
        a, b = _l2(a, ax[0]), _l2(b, ax[1])
    if a.ndim == 2 and b.ndim == 2:  # (B, D) . (B, D) -> (B, 1)
        return KTensor(ops.sum(ops.mul(a, b), 1, keepdim=True))
    if a.ndim != 3 or b.ndim != 3:
        raise layer.error(f"Dot of ranks {a.ndim} and {b.ndim} is not supported (2 or 3)")
    # Batched matmul: contract a's axis ax[0] with b's axis ax[1].
    a2 = a if ax[0] == 2 else ops.permute(a, (0, 2, 1))
    b2 = b if ax[1] == 1 else ops.permute(b, (0, 2, 1))
    return KTensor(ops.matmul(a2, b2))


@converts("CustomScaleLayer")
def custom_scale_layer(layer: Call, xs, **_) -> KTensor:
    """keras.applications.InceptionResNetV2's residual: ``inputs[0] + inputs[1] * scale``."""
    items = _inputs(layer, xs)
    if len(items) != 2:
        raise layer.error(f"CustomScaleLayer takes 2 inputs, got {len(items)}")
    (a, b), cl = layer.same_layout(items)
    return KTensor(ops.add(a, ops.mul(b, float(layer.config["scale"]))), cl)
