"""Keras merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot."""

from __future__ import annotations

from functools import reduce

import numpy as np

from .. import ops
from ..tensor import Tensor
from .graph import Call, KTensor
from .registry import converts


def _inputs(layer: Call, xs: list[KTensor] | KTensor) -> list[KTensor]:
    items = xs if isinstance(xs, list) else [xs]
    if len(items) < 1:
        raise layer.error("a merge layer needs at least one input")
    return items


def _expand_ranks(layer: Call, items: list[KTensor]) -> list[KTensor]:
    """Keras' Merge.call: inputs of lower rank get size-1 axes at axis 1 (after the batch) until the
    ranks agree, so ``(B, H, W, C) + (B, C)`` adds per channel (NumPy would align C with W)."""
    top = max(x.rank for x in items)
    out = []
    for x in items:
        if x.rank == top:
            out.append(x)
            continue
        t = layer.logical(x)
        for _ in range(top - x.rank):
            t = ops.unsqueeze(t, 1)
        out.append(KTensor(t, mask=x.mask))
    return out


def _elementwise(layer: Call, xs, fn) -> KTensor:
    items = _expand_ranks(layer, _inputs(layer, xs))
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
    # keras batch_dot: a's other axes, then b's (batch and the contracted axis left out); (B, 1) if none.
    ra = [a.shape[i] for i in range(1, a.ndim) if i != ax[0]]
    rb = [b.shape[i] for i in range(1, b.ndim) if i != ax[1]]
    if 0 in ax or min([*ra, *rb, a.shape[ax[0]]], default=1) < 0:
        raise layer.error(f"Dot over axes {ax} of shapes {a.shape} and {b.shape} needs static non-batch axes")
    k = a.shape[ax[0]]
    a2 = ops.permute(a, (*[i for i in range(a.ndim) if i != ax[0]], ax[0]))
    b2 = ops.permute(b, (0, ax[1], *[i for i in range(1, b.ndim) if i != ax[1]]))
    y = ops.matmul(ops.reshape(a2, (-1, int(np.prod(ra)), k)), ops.reshape(b2, (-1, k, int(np.prod(rb)))))
    return KTensor(ops.reshape(y, (-1, *ra, *rb) if ra or rb else (-1, 1)))


@converts("CustomScaleLayer")
def custom_scale_layer(layer: Call, xs, **_) -> KTensor:
    """keras.applications.InceptionResNetV2's residual: ``inputs[0] + inputs[1] * scale``."""
    items = _inputs(layer, xs)
    if len(items) != 2:
        raise layer.error(f"CustomScaleLayer takes 2 inputs, got {len(items)}")
    (a, b), cl = layer.same_layout(items)
    return KTensor(ops.add(a, ops.mul(b, float(layer.config["scale"]))), cl)
