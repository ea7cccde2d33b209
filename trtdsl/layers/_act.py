"""Activations by name, so blocks can take ``act="relu"`` like Keras and torchvision configs."""

from __future__ import annotations

from collections.abc import Callable

from .. import ops
from ..errors import TrtdslError
from ..ops.activation import _activation
from ..tensor import Tensor

Act = str | Callable[[Tensor], Tensor] | None

_BY_NAME: dict[str, Callable[..., Tensor]] = {
    "relu": ops.relu, "relu6": ops.relu6, "sigmoid": ops.sigmoid, "tanh": ops.tanh,
    "gelu": ops.gelu, "silu": ops.silu, "swish": ops.silu,
    "hard_sigmoid": ops.hard_sigmoid, "hardsigmoid": ops.hard_sigmoid,
    "hard_swish": ops.hard_swish, "hardswish": ops.hard_swish,
}  # fmt: skip


# The activations that are one IActivationLayer: (type, alpha, beta) as ops/activation.py adds them.
_ONE_LAYER = {
    "relu": ("RELU", 0.0, 0.0), "relu6": ("CLIP", 0.0, 6.0), "sigmoid": ("SIGMOID", 0.0, 0.0),
    "tanh": ("TANH", 0.0, 0.0),
}  # fmt: skip


def apply(x: Tensor, act: Act, name: str, *, in_compute: bool = False) -> Tensor:
    """``act(x)`` named ``name``; ``act`` is None, a name from ``_BY_NAME`` or a callable.

    ``in_compute=True``: ``x`` is known to be in the compute dtype (a convolution's
    output), so a one-layer activation skips reading its dtype back from TensorRT.
    """
    if act is None or act in {"linear", "identity"}:
        return x
    if callable(act):
        return act(x)
    key = str(act).lower()
    if in_compute and key in _ONE_LAYER:
        kind, alpha, beta = _ONE_LAYER[key]
        return _activation(x, kind, name, key, alpha=alpha, beta=beta, cast=False)
    fn = _BY_NAME.get(key)
    if fn is None:
        raise TrtdslError(f"unknown activation {act!r} for {name!r}; expected one of {sorted(_BY_NAME)} or a callable")
    return fn(x, name=name)


def label(act: Act) -> str:
    """The layer-name suffix of an activation: 'relu', 'hard_swish', ..."""
    if callable(act):
        return getattr(act, "__name__", "act")
    text = str(act)
    if text in _ONE_LAYER:  # already its own label
        return text
    return text.lower().replace("hardswish", "hard_swish").replace("hardsigmoid", "hard_sigmoid")
