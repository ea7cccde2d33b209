"""Activations, softmax and log-softmax with PyTorch names and semantics.

Where TensorRT has the function (``IActivationLayer``), one layer with its
``alpha``/``beta`` is added; where it has not (SiLU, Mish, hard-swish), the op
is a short elementwise composition whose layers share the op's scoped name.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from .. import _trt
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import TensorLike, as_tensor, axis, bitmask
from .elementwise import log, maximum, minimum, mul, sub

__all__ = [
    "relu", "relu6", "clip", "clamp", "leaky_relu", "elu", "selu", "sigmoid", "tanh", "gelu",
    "silu", "hard_sigmoid", "hard_swish", "softplus", "softsign", "mish", "prelu",
    "softmax", "log_softmax",
]  # fmt: skip

# torch.nn.SELU's constants (Klambauer et al. 2017), as TensorRT's SELU takes them.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


# Activation types whose alpha and beta default to 0.0 in TensorRT (read from fresh
# layers of tensorrt_rtx 1.7; others differ, e.g. CLIP's +-FLT_MAX, LEAKY_RELU's 0.01).
_ZERO_PARAMS = frozenset(("RELU", "SIGMOID", "TANH", "GELU_ERF", "GELU_TANH"))
_KINDS: dict[str, object] = {}  # 'RELU' -> trt.ActivationType.RELU (a getattr on the enum crosses pybind)


def _what(op: str, name: str | None) -> str:
    return f"{op} {name!r}" if name else op


def _activation(
    x: Tensor, kind: str, name: str | None, op: str, *, alpha: float = 0.0, beta: float = 0.0, cast: bool = True
) -> Tensor:
    """``cast=False``: the caller knows ``x`` is in the compute dtype (it just made it there)."""
    net = x.net
    if (alpha or beta) and not (math.isfinite(alpha) and math.isfinite(beta)):
        # TensorRT would log an error and keep the old value.
        raise ShapeError(f"{_what(op, name)}: parameters must be finite, got alpha={alpha}, beta={beta}")
    if cast:
        x = net.to_compute(x)
    kind_enum = _KINDS.get(kind)
    if kind_enum is None:
        kind_enum = _KINDS[kind] = getattr(_trt.load().ActivationType, kind)
    layer = net.trt.add_activation(x.trt, kind_enum)
    if alpha or beta or kind not in _ZERO_PARAMS:  # a setter crosses pybind; 0.0 is the default there
        layer.alpha = float(alpha)
        layer.beta = float(beta)
    return net.register(layer, op, name)


def relu(x: Tensor, *, name: str | None = None) -> Tensor:
    """max(x, 0)."""
    return _activation(x, "RELU", name, "relu")


def relu6(x: Tensor, *, name: str | None = None) -> Tensor:
    """min(max(x, 0), 6), one CLIP layer."""
    return _activation(x, "CLIP", name, "relu6", alpha=0.0, beta=6.0)


def clip(
    x: Tensor,
    min: TensorLike | None = None,
    max: TensorLike | None = None,
    *,
    name: str | None = None,
) -> Tensor:
    """Clamp ``x`` into [min, max] like ``torch.clamp``; a bound left as None is open.

    Scalar bounds make one CLIP layer; Tensor bounds broadcast through MAX/MIN layers.

    Example::

        y = ops.clip(x, 0.0, 1.0)
    """
    if min is None and max is None:
        raise ShapeError(f"{_what('clip', name)}: at least one of min and max must be given")
    if isinstance(min, Tensor) or isinstance(max, Tensor) or np.ndim(min) or np.ndim(max):
        base = name or "clip"
        out = x if min is None else maximum(x, min, name=base if max is None else base + ".min")
        return out if max is None else minimum(out, max, name=base)
    # TensorRT refuses infinite alpha/beta; the dtype's largest value is as open.
    big = float(np.finfo(np.float16 if x.net.compute_dtype == "float16" else np.float32).max)
    lo = -big if min is None else float(min)
    hi = big if max is None else float(max)
    return _activation(x, "CLIP", name, "clip", alpha=lo, beta=hi)


clamp = clip


def leaky_relu(x: Tensor, negative_slope: float = 0.01, *, name: str | None = None) -> Tensor:
    """x if x >= 0 else negative_slope * x."""
    return _activation(x, "LEAKY_RELU", name, "leaky_relu", alpha=negative_slope)


def elu(x: Tensor, alpha: float = 1.0, *, name: str | None = None) -> Tensor:
    """x if x >= 0 else alpha * (exp(x) - 1)."""
    return _activation(x, "ELU", name, "elu", alpha=alpha)


def selu(x: Tensor, *, name: str | None = None) -> Tensor:
    """scale * (x if x > 0 else alpha * (exp(x) - 1)) with torch's fixed alpha and scale."""
    return _activation(x, "SELU", name, "selu", alpha=_SELU_ALPHA, beta=_SELU_SCALE)


def sigmoid(x: Tensor, *, name: str | None = None) -> Tensor:
    return _activation(x, "SIGMOID", name, "sigmoid")


def tanh(x: Tensor, *, name: str | None = None) -> Tensor:
    return _activation(x, "TANH", name, "tanh")


def gelu(x: Tensor, approximate: Literal["none", "tanh"] = "none", *, name: str | None = None) -> Tensor:
    """GELU: the exact erf form (``approximate='none'``, Keras' 'gelu') or the tanh approximation."""
    if approximate not in ("none", "tanh"):
        raise ShapeError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _activation(x, "GELU_ERF" if approximate == "none" else "GELU_TANH", name, "gelu")


def silu(x: Tensor, *, name: str | None = None) -> Tensor:
    """x * sigmoid(x) (swish); TensorRT has no SiLU activation, so SIGMOID then PROD."""
    base = name or "silu"
    return mul(x, sigmoid(x, name=base + ".sigmoid"), name=base)


def hard_sigmoid(x: Tensor, *, alpha: float = 1 / 6, beta: float = 0.5, name: str | None = None) -> Tensor:
    """clip(alpha * x + beta, 0, 1), one HARD_SIGMOID layer.

    The defaults are PyTorch's (relu6(x + 3) / 6, also Keras 3). Keras 2 used
    ``alpha=0.2``: ``hard_sigmoid(x, alpha=0.2)``.
    """
    return _activation(x, "HARD_SIGMOID", name, "hard_sigmoid", alpha=alpha, beta=beta)


def hard_swish(x: Tensor, *, name: str | None = None) -> Tensor:
    """x * relu6(x + 3) / 6 (torch ``hardswish``)."""
    base = name or "hard_swish"
    return mul(x, hard_sigmoid(x, name=base + ".hard_sigmoid"), name=base)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0, *, name: str | None = None) -> Tensor:
    """log(1 + exp(beta * x)) / beta, one SOFTPLUS layer (alpha = 1/beta, beta = beta).

    ``threshold`` is accepted for torch compatibility: above it torch returns x,
    which differs from the smooth form by less than exp(-threshold) (2e-9 at 20),
    below float32 resolution.
    """
    if beta <= 0:
        raise ShapeError(f"softplus: beta must be positive, got {beta}")
    del threshold
    return _activation(x, "SOFTPLUS", name, "softplus", alpha=1.0 / beta, beta=beta)


def softsign(x: Tensor, *, name: str | None = None) -> Tensor:
    """x / (1 + |x|)."""
    return _activation(x, "SOFTSIGN", name, "softsign")


def mish(x: Tensor, *, name: str | None = None) -> Tensor:
    """x * tanh(softplus(x))."""
    base = name or "mish"
    sp = softplus(x, name=base + ".softplus")
    return mul(x, tanh(sp, name=base + ".tanh"), name=base)


def prelu(x: Tensor, weight: TensorLike, *, name: str | None = None) -> Tensor:
    """x if x >= 0 else weight * x, with one slope per channel (axis 1) or one shared slope.

    ``weight`` has shape (C,) or (1,) like ``torch.nn.PReLU.weight``; a Tensor
    of the input's rank is used as given.
    """
    net = x.net
    x = net.to_compute(x)
    base = name or "prelu"
    if isinstance(weight, Tensor):
        slopes = net.to_compute(weight)
        if slopes.ndim != x.ndim:
            raise ShapeError(
                f"prelu {base!r}: slopes tensor {slopes.name!r} has rank {slopes.ndim}, input {x.name!r} has "
                f"rank {x.ndim}; give a (C,) array or a tensor of the input's rank"
            )
    else:
        w = np.asarray(weight, dtype=np.float32).reshape(-1)
        channels = x.shape[1] if x.ndim >= 2 else 1
        if w.size not in (1, channels):
            raise ShapeError(
                f"prelu {base!r}: weight has {w.size} slopes, input {x.name!r} of shape {x.shape} has "
                f"{channels} channels on axis 1; expected 1 or {channels}"
            )
        shape = [1] * x.ndim
        if w.size > 1:
            shape[1] = w.size
        slopes = as_tensor(net, w.reshape(shape), x, name=base + ".weight")
    layer = net.trt.add_parametric_relu(x.trt, slopes.trt)
    return net.register(layer, "prelu", name)


def softmax(x: Tensor, dim: int = -1, *, name: str | None = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (negative counts from the end)."""
    net = x.net
    x = net.to_compute(x)
    d = axis(dim, x.ndim, f"{_what('softmax', name)}: dim")
    if x.ndim >= 2:
        layer = net.trt.add_softmax(x.trt)
        layer.axes = bitmask([d])
        return net.register(layer, "softmax", name)
    # ISoftMaxLayer needs rank >= 2: run a vector as one row.
    base = name or "softmax"
    axes_t = net.constant(np.asarray([0], dtype=np.int64), base + ".axes", dtype="int64")
    row = net.register(net.trt.add_unsqueeze(x.trt, axes_t.trt), "unsqueeze", base + ".row")
    layer = net.trt.add_softmax(row.trt)
    layer.axes = bitmask([1])
    y = net.register(layer, "softmax", base + ".softmax")
    return net.register(net.trt.add_squeeze(y.trt, axes_t.trt), "softmax", base)


def log_softmax(x: Tensor, dim: int = -1, *, name: str | None = None) -> Tensor:
    """x - max - log(sum(exp(x - max))) along ``dim``.

    Written out rather than log(softmax(x)): the log of an underflowed softmax is
    -inf where torch gives a finite value.
    """
    from .elementwise import exp
    from .reduce import amax
    from .reduce import sum as reduce_sum

    net = x.net
    x = net.to_compute(x)
    d = axis(dim, x.ndim, f"{_what('log_softmax', name)}: dim")
    base = name or "log_softmax"
    shifted = sub(x, amax(x, d, True, name=base + ".max"), name=base + ".shift")
    lse = log(reduce_sum(exp(shifted, name=base + ".exp"), d, True, name=base + ".sum"), name=base + ".log")
    return sub(shifted, lse, name=base)
