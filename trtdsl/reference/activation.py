"""Activation, parametric ReLU and softmax layers.

The formulas and the meaning of ``alpha``/``beta`` are the ones ``NvInfer.h``
documents for each ``ActivationType``.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InterpreterError
from .elementwise import erf, rectify
from .kernels import jit
from .registry import Node, interprets

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_SQRT_HALF = math.sqrt(0.5)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp(-|x|) never overflows; the two branches are the same function.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)


def _softplus(x: np.ndarray, a: float, b: float) -> np.ndarray:
    # alpha * log(exp(beta * x) + 1), without overflow for large beta * x.
    return a * np.logaddexp(0.0, b * x)


_ACTIVATIONS = {
    "RELU": lambda x, a, b: rectify(x),
    "SIGMOID": lambda x, a, b: _sigmoid(x),
    "TANH": lambda x, a, b: np.tanh(x),
    "LEAKY_RELU": lambda x, a, b: np.where(x >= 0, x, a * x),
    "ELU": lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0))),
    "SELU": lambda x, a, b: np.where(x > 0, b * x, b * a * np.expm1(np.minimum(x, 0))),
    "SOFTSIGN": lambda x, a, b: x / (1 + np.abs(x)),
    "SOFTPLUS": _softplus,
    "CLIP": lambda x, a, b: np.maximum(a, np.minimum(b, x)),
    "HARD_SIGMOID": lambda x, a, b: np.maximum(0, np.minimum(1, a * x + b)),
    "SCALED_TANH": lambda x, a, b: a * np.tanh(b * x),
    "THRESHOLDED_RELU": lambda x, a, b: np.where(x > a, x, 0),
    "GELU_ERF": lambda x, a, b: 0.5 * x * (1 + erf(x * _SQRT_HALF)),
    "GELU_TANH": lambda x, a, b: 0.5 * x * (1 + np.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x**3))),
}


@interprets("activation", donates=True)
def activation(node: Node, x: np.ndarray, donated: tuple[int, ...] = ()) -> np.ndarray:
    kind = node.memo("kind", lambda: node.layer.type.name)
    if kind == "RELU":
        # The commonest activation, and the one after most convolutions: in place when x is donated.
        return rectify(x, inplace=bool(donated) and x.flags.writeable)
    fn = _ACTIVATIONS.get(kind)
    if fn is None:
        raise InterpreterError(
            f"activation layer {node.name!r}: ActivationType.{kind} has no reference implementation; "
            f"implemented: {', '.join(sorted(_ACTIVATIONS))}"
        )
    a, b = node.layer.alpha, node.layer.beta
    with np.errstate(over="ignore", under="ignore"):
        return np.asarray(fn(x, a, b)).astype(x.dtype, copy=False)


@interprets("parametric_relu", fresh=True)
def parametric_relu(node: Node, x: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, x, x * slopes)


def _one_axis(node: Node, mask: int, ndim: int, what: str) -> int:
    axes = [i for i in range(ndim) if mask >> i & 1]
    if len(axes) != 1:
        raise InterpreterError(
            f"{what} layer {node.name!r}: axes bitmask {mask:#b} must select exactly one of {ndim} axes"
        )
    return axes[0]


@interprets("softmax", fresh=True)
def softmax(node: Node, x: np.ndarray) -> np.ndarray:
    d = node.memo(("axis", x.ndim), lambda: _one_axis(node, node.layer.axes, x.ndim, "softmax"))
    if node.fast and d == x.ndim - 1 and jit.enabled() and x.dtype == np.float32:  # a compiled pass per row
        out = node.empty(x.shape, x.dtype)
        if jit.softmax(x, d, out):
            return out
    e = np.exp(x - np.max(x, axis=d, keepdims=True))
    return e / np.sum(e, axis=d, keepdims=True)
