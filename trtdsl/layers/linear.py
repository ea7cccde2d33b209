"""A fully connected layer bound to a torch ``nn.Linear``'s weights by name."""

from __future__ import annotations

from .. import ops
from ..errors import ShapeError
from ..tensor import Tensor
from . import _act
from ._params import Weights, block

__all__ = ["linear"]


def linear(
    x: Tensor,
    w: Weights,
    prefix: str,
    *,
    out_features: int | None = None,
    act: _act.Act = None,
) -> Tensor:
    """``act(x @ W.T + b)`` over the last axis with ``W = w[prefix + '.weight']`` (out, in) and optional bias.

    ``out_features`` is checked against the weight when given. The layer is named
    ``prefix`` in the current scope, its activation ``prefix.<act>``.

    Example::

        logits = linear(ops.flatten(x, 1), w, "fc")
    """
    p = block(w, prefix, "linear")
    if x.ndim == 0:
        raise ShapeError(f"{p.where}: input {x.name!r} is a scalar; expected (..., in_features)")
    in_features = x.shape[-1]
    weight = p.take("weight", (out_features, None if in_features < 0 else in_features))
    bias = p.optional("bias", (weight.shape[0],))
    y = ops.linear(x, weight, bias, name=prefix)
    return _act.apply(y, act, f"{prefix}.{_act.label(act)}") if act is not None else y
