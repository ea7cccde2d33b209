"""Joining and splitting tensors along an axis, with PyTorch names: ``concat``, ``split``, ``stack``.

Concatenation layers join; one slice layer per piece splits. The join axis
and the other axes may be dynamic where TensorRT allows it; ``split`` needs
the size of the axis it cuts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import dtypes
from ..errors import ShapeError
from ..network import Network
from ..tensor import Tensor
from ._slicing import int_constant, slice_layer
from ._util import TensorLike, as_tensor, axis, net_of

__all__ = ["concat", "cat", "split", "chunk", "stack"]


def _same_kind(net: Network, op: str, tensors: Sequence[TensorLike]) -> list[Tensor]:
    if not tensors:
        raise ShapeError(f"{op} needs at least one tensor")
    like = next(t for t in tensors if isinstance(t, Tensor))
    ts = [as_tensor(net, t, like) for t in tensors]
    if all(dtypes.is_float(t.dtype) for t in ts):
        ts = [net.to_compute(t) for t in ts]
    kinds = {t.dtype for t in ts}
    if len(kinds) > 1:
        raise ShapeError(f"{op}: tensors have different dtypes {[t.dtype for t in ts]}; cast them to one")
    ranks = [t.ndim for t in ts]
    if len(set(ranks)) > 1:
        raise ShapeError(
            f"{op}: tensors have ranks {ranks} ({', '.join(repr(t.name) for t in ts)}); all must have the same rank"
        )
    return ts


def concat(tensors: Sequence[TensorLike], dim: int = 0, *, name: str | None = None) -> Tensor:
    """``torch.cat``: join tensors along ``dim``; the other axes must match."""
    net = net_of(*tensors)
    ts = _same_kind(net, "concat", tensors)
    d = axis(dim, ts[0].ndim, "concat dim")
    for t in ts[1:]:
        for i, (a, b) in enumerate(zip(ts[0].shape, t.shape, strict=True)):
            if i != d and a != b and -1 not in (a, b):
                raise ShapeError(
                    f"concat along dim {d}: {t.name!r} has shape {t.shape}, {ts[0].name!r} has {ts[0].shape}; "
                    f"they differ in dim {i}"
                )
    if len(ts) == 1:
        return ts[0]
    layer = net.trt.add_concatenation([t.trt for t in ts])
    layer.axis = d
    return net.register(layer, "concat", name)


cat = concat


def split(
    x: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0, *, name: str | None = None
) -> list[Tensor]:
    """``torch.split``: pieces of one size (the last may be smaller) or of the given sizes.

    The split axis must be static; the others may be dynamic. Pieces are named ``<name>.0``, ``<name>.1``, ...
    """
    d = axis(dim, x.ndim, "split dim")
    n = x.shape[d]
    what = f"split {x.name!r}"
    if n == -1:
        raise ShapeError(f"{what}: dim {d} is dynamic; split needs its size (shape {x.shape})")
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise ShapeError(f"{what}: split size must be positive, got {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise ShapeError(f"{what}: sections {sizes} sum to {sum(sizes)}, but dim {d} has size {n}")
    net = x.net
    base = net.op_name(name, "split", x)
    out, start = [], 0
    for i, s in enumerate(sizes):
        layer = slice_layer(x, [d], [start], [s], [1])
        out.append(net.register(layer, "split", f"{base}.{i}", scoped=False))
        start += s
    return out


def chunk(x: Tensor, chunks: int, dim: int = 0, *, name: str | None = None) -> list[Tensor]:
    """``torch.chunk``: ``ceil(size / chunks)``-sized pieces (possibly fewer than ``chunks``)."""
    if chunks <= 0:
        raise ShapeError(f"chunk {x.name!r}: chunks must be positive, got {chunks}")
    n = x.shape[axis(dim, x.ndim, "chunk dim")]
    return split(x, max(1, math.ceil(n / chunks)) if n >= 0 else 1, dim, name=name or "chunk")


def stack(tensors: Sequence[TensorLike], dim: int = 0, *, name: str | None = None) -> Tensor:
    """``torch.stack``: join along a new axis ``dim``."""
    net = net_of(*tensors)
    ts = _same_kind(net, "stack", tensors)
    d = axis(dim, ts[0].ndim + 1, "stack dim")
    for t in ts[1:]:
        if any(a != b and -1 not in (a, b) for a, b in zip(t.shape, ts[0].shape, strict=True)):
            raise ShapeError(f"stack: {t.name!r} has shape {t.shape}, {ts[0].name!r} has {ts[0].shape}; all must match")
    lname = net.op_name(name, "stack", ts[0])
    axes_t = int_constant(net, [d], f"{lname}.axes")
    parts = [
        net.register(net.trt.add_unsqueeze(t.trt, axes_t.trt), "unsqueeze", f"{lname}.in{i}", scoped=False)
        for i, t in enumerate(ts)
    ]
    layer = net.trt.add_concatenation([p.trt for p in parts])
    layer.axis = d
    return net.register(layer, "stack", lname, resolved=True)
