"""Activations by name, so blocks can take ``act="relu"`` like Keras and torchvision configs."""

from __future__ import annotations

from collections.abc import Callable

from .. import ops
from ..errors import TrtdslError
from ..tensor import Tensor

Act = str | Callable[[Tensor], Tensor] | None

_BY_NAME: dict[str, Callable[..., Tensor]] = {
    "relu": ops.relu, "relu6": ops.relu6, "sigmoid": ops.sigmoid, "tanh": ops.tanh,
    "gelu": ops.gelu, "silu": ops.silu, "swish": ops.silu,
    "hard_sigmoid": ops.hard_sigmoid, "hardsigmoid": ops.hard_sigmoid,
    "hard_swish": ops.hard_swish, "hardswish": ops.hard_swish,
}  # fmt: skip


_IDENTITY = frozenset(("linear", "identity"))


def apply(x: Tensor, act: Act, name: str) -> Tensor:
    """``act(x)`` named ``name``; ``act`` is None, a name from ``_BY_NAME`` or a callable."""
    if act is None or act in _IDENTITY:
        return x
    if callable(act):
        return act(x)
    fn = _BY_NAME.get(str(act).lower())
    if fn is None:
        raise TrtdslError(f"unknown activation {act!r} for {name!r}; expected one of {sorted(_BY_NAME)} or a callable")
    return fn(x, name=name)


def label(act: Act) -> str:
    """The layer-name suffix of an activation: 'relu', 'hard_swish', ..."""
    if callable(act):
        return getattr(act, "__name__", "act")
    return str(act).lower().replace("hardswish", "hard_swish").replace("hardsigmoid", "hard_sigmoid")
