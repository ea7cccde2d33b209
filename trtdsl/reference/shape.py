"""Reference implementations: constants, casts and shape-manipulating layers."""

from __future__ import annotations

import numpy as np

from .. import dtypes
from .registry import Node, interprets


@interprets("constant")
def constant(node: Node) -> np.ndarray:
    # Converted once per network: the weights share memory with the array the
    # network keeps, and the reshape is a view.
    return node.memo("value", lambda: np.asarray(node.layer.weights).reshape(tuple(node.layer.shape)))


@interprets("identity", "cast")
def identity(node: Node, x: np.ndarray) -> np.ndarray:
    # The interpreter rounds to the output dtype; identity and cast only need to
    # convert float -> int the way TensorRT does (truncation toward zero).
    target = dtypes.to_numpy(node.out_dtypes[0])
    if x.dtype.kind == "f" and target.kind in "iu":
        return np.trunc(x).astype(target)
    if target.kind == "b":
        return x != 0
    return x


@interprets("unsqueeze")
def unsqueeze(node: Node, x: np.ndarray, axes: np.ndarray) -> np.ndarray:
    out_rank = x.ndim + len(axes)
    return np.expand_dims(x, tuple(int(a) % out_rank for a in axes))


@interprets("squeeze")
def squeeze(node: Node, x: np.ndarray, axes: np.ndarray) -> np.ndarray:
    return np.squeeze(x, tuple(int(a) % x.ndim for a in axes))
