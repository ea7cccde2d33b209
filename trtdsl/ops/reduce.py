"""Reductions (sum, mean, amax, ...), top-k, arg-max/min and cumulative sums.

``dim`` follows PyTorch: None reduces every axis, an int or a tuple picks axes,
negative values count from the end; ``keepdim`` keeps reduced axes as size 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _trt, dtypes
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import axes, axis, bitmask
from .elementwise import div, mul, sqrt, sub

__all__ = [
    "sum", "mean", "amax", "amin", "prod", "var", "std",
    "argmax", "argmin", "topk", "cumsum",
]  # fmt: skip

Dims = int | Sequence[int] | None

# ITopKLayer's documented limit on k.
MAX_TOPK = 3840


def _what(op: str, name: str | None) -> str:
    return f"{op} {name!r}" if name else op


def _reduce(x: Tensor, op: str, dim: Dims, keepdim: bool, *, name: str | None, kind: str) -> Tensor:
    net = x.net
    x = net.to_compute(x)
    # torch reads an empty dim tuple as "every axis".
    dims = axes(
        None if isinstance(dim, Sequence) and not dim else dim, x.ndim, f"{_what(kind, name)} on {x.name!r}: dim"
    )
    if not dims:
        # A rank-0 tensor has nothing to reduce; TensorRT refuses an empty axes mask.
        raise ShapeError(f"{_what(kind, name)}: tensor {x.name!r} of shape {x.shape} has no axis to reduce")
    layer = net.trt.add_reduce(x.trt, getattr(_trt.load().ReduceOperation, op), bitmask(dims), bool(keepdim))
    return net.register(layer, kind, name)


def sum(x: Tensor, dim: Dims = None, keepdim: bool = False, *, name: str | None = None) -> Tensor:  # noqa: A001
    """Sum over ``dim`` (all axes when None).

    Example::

        s = ops.sum(x, (2, 3), keepdim=True)
    """
    return _reduce(x, "SUM", dim, keepdim, name=name, kind="sum")


def mean(x: Tensor, dim: Dims = None, keepdim: bool = False, *, name: str | None = None) -> Tensor:
    return _reduce(x, "AVG", dim, keepdim, name=name, kind="mean")


def amax(x: Tensor, dim: Dims = None, keepdim: bool = False, *, name: str | None = None) -> Tensor:
    """Maximum over ``dim`` (values only; see ``topk``/``argmax`` for indices)."""
    return _reduce(x, "MAX", dim, keepdim, name=name, kind="amax")


def amin(x: Tensor, dim: Dims = None, keepdim: bool = False, *, name: str | None = None) -> Tensor:
    return _reduce(x, "MIN", dim, keepdim, name=name, kind="amin")


def prod(x: Tensor, dim: Dims = None, keepdim: bool = False, *, name: str | None = None) -> Tensor:
    return _reduce(x, "PROD", dim, keepdim, name=name, kind="prod")


def var(x: Tensor, dim: Dims = None, *, correction: int = 1, keepdim: bool = False, name: str | None = None) -> Tensor:
    """Variance over ``dim``: sum((x - mean)^2) / (N - correction), torch's default unbiased form."""
    net = x.net
    x = net.to_compute(x)
    base = name or "var"
    dims = axes(dim, x.ndim, f"{_what('var', name)} on {x.name!r}: dim")
    sizes = [x.shape[d] for d in dims]
    if any(s < 0 for s in sizes):
        raise ShapeError(f"{_what('var', name)}: reduced axes {dims} of {x.name!r} {x.shape} must be static")
    count = int(np.prod(sizes))
    centered = sub(x, mean(x, dims, True, name=base + ".mean"), name=base + ".center")
    total = sum(mul(centered, centered, name=base + ".square"), dims, keepdim, name=base + ".sum")
    return div(total, float(max(count - correction, 0)), name=base)


def std(x: Tensor, dim: Dims = None, *, correction: int = 1, keepdim: bool = False, name: str | None = None) -> Tensor:
    """Standard deviation: sqrt(var(x, dim, correction=correction))."""
    base = name or "std"
    return sqrt(var(x, dim, correction=correction, keepdim=keepdim, name=base + ".var"), name=base)


def _topk_layer(x: Tensor, k: int, dim: int, largest: bool, *, index_dtype: str, name: str | None, kind: str):
    net = x.net
    x = net.to_compute(x)
    what = _what(kind, name)
    d = axis(dim, x.ndim, f"{what} on {x.name!r}: dim")
    if x.ndim - d > 4:
        raise ShapeError(
            f"{what}: TensorRT's TopK reduces one of the last four axes; dim {dim} of {x.name!r} "
            f"(rank {x.ndim}) is axis {d}. Permute the axis to the end first."
        )
    if not 1 <= k <= MAX_TOPK:
        raise ShapeError(f"{what}: k must be in 1..{MAX_TOPK} (TensorRT's TopK limit), got {k}")
    if x.shape[d] >= 0 and k > x.shape[d]:
        raise ShapeError(f"{what}: k={k} is larger than axis {d} of {x.name!r} {x.shape}")
    if dtypes.canonical(index_dtype) not in ("int32", "int64"):
        raise ShapeError(f"{what}: index_dtype must be int32 or int64, got {index_dtype!r}")
    trt = _trt.load()
    op = trt.TopKOperation.MAX if largest else trt.TopKOperation.MIN
    layer = net.trt.add_topk(x.trt, op, int(k), bitmask([d]), dtypes.to_trt(index_dtype))
    net.register(layer, kind, name)
    return layer, d


def topk(
    x: Tensor,
    k: int,
    dim: int = -1,
    largest: bool = True,
    *,
    index_dtype: str = "int32",
    name: str | None = None,
) -> tuple[Tensor, Tensor]:
    """The ``k`` largest (or smallest) values along ``dim``, sorted, and their indices.

    Indices are int32 by default (torch returns int64; pass ``index_dtype='int64'``).
    ``dim`` must be one of the last four axes, a TensorRT limit.

    Example::

        values, indices = ops.topk(logits, 5)
    """
    layer, _ = _topk_layer(x, k, dim, largest, index_dtype=index_dtype, name=name, kind="topk")
    return Tensor(layer.get_output(0), x.net), Tensor(layer.get_output(1), x.net)


def _arg(x: Tensor, dim: int | None, keepdim: bool, largest: bool, *, index_dtype: str, name: str | None) -> Tensor:
    kind = "argmax" if largest else "argmin"
    if dim is None:
        raise ShapeError(
            f"{_what(kind, name)} on {x.name!r}: dim=None (flattened index) is not supported; "
            "flatten first with x.reshape(-1) and pass dim=0"
        )
    base = name or kind
    layer, d = _topk_layer(
        x, 1, dim, largest, index_dtype=index_dtype, name=base if keepdim else base + ".topk", kind=kind
    )
    indices = Tensor(layer.get_output(1), x.net)
    if keepdim:
        return indices
    net = x.net
    axes_t = net.constant(np.asarray([d], dtype=np.int64), base + ".axes", dtype="int64")
    return net.register(net.trt.add_squeeze(indices.trt, axes_t.trt), "squeeze", base)


def argmax(
    x: Tensor, dim: int | None = None, keepdim: bool = False, *, index_dtype: str = "int32", name: str | None = None
) -> Tensor:
    """Index of the largest value along ``dim`` (first one on ties), via TopK with k=1.

    Indices are int32 by default where torch returns int64.
    """
    return _arg(x, dim, keepdim, True, index_dtype=index_dtype, name=name)


def argmin(
    x: Tensor, dim: int | None = None, keepdim: bool = False, *, index_dtype: str = "int32", name: str | None = None
) -> Tensor:
    """Index of the smallest value along ``dim``, via TopK with k=1."""
    return _arg(x, dim, keepdim, False, index_dtype=index_dtype, name=name)


def cumsum(x: Tensor, dim: int, *, exclusive: bool = False, reverse: bool = False, name: str | None = None) -> Tensor:
    """Running sum along ``dim``; ``exclusive`` leaves out the current element, ``reverse`` runs from the end."""
    net = x.net
    x = net.to_compute(x)
    d = axis(dim, x.ndim, f"{_what('cumsum', name)} on {x.name!r}: dim")
    axis_t = net.constant(np.asarray(d, dtype=np.int32), (name or "cumsum") + ".axis", dtype="int32")
    trt = _trt.load()
    layer = net.trt.add_cumulative(x.trt, axis_t.trt, trt.CumulativeOperation.SUM, bool(exclusive), bool(reverse))
    return net.register(layer, "cumsum", name)
