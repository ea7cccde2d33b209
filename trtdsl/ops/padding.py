"""Ops that grow a tensor by sampling it out of bounds: ``pad``, ``expand``, ``repeat``, ``tile``.

Each is one slice layer: padding uses its out-of-bounds sampling mode (FILL,
REFLECT, CLAMP, WRAP), ``expand`` a stride of 0, ``repeat`` and ``tile`` WRAP.
Sizes that depend on a dynamic axis are computed at run time from the input's
shape tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from .. import dtypes
from ..errors import ShapeError
from ..network import Network
from ..tensor import Tensor
from ._slicing import affine_sizes, binary, dims_of, int_constant, int_vector, slice_layer
from ._util import int_tuple, unsqueeze_to

__all__ = ["pad", "expand", "broadcast_to", "repeat", "tile"]


_PAD_MODES = {"constant": "FILL", "reflect": "REFLECT", "replicate": "CLAMP", "circular": "WRAP"}


def pad(
    x: Tensor,
    pad: Sequence[int | Tensor],
    mode: Literal["constant", "reflect", "replicate", "circular"] = "constant",
    value: float = 0.0,
    *,
    name: str | None = None,
) -> Tensor:
    """``torch.nn.functional.pad``: ``pad`` lists (before, after) pairs from the LAST axis backwards.

    One slice layer whose out-of-bounds sampling mode does the padding (FILL,
    REFLECT, CLAMP, WRAP). Negative padding crops. Padded axes may be dynamic, and
    amounts may be runtime int scalars (Tensors).

    Example::

        y = ops.pad(x, (1, 1, 2, 2), mode="reflect")  # W by 1, H by 2 on NCHW
        z = ops.pad(x, (0, target - n))                # runtime amounts
    """
    what = f"pad {x.name!r}"
    if mode not in _PAD_MODES:
        raise ShapeError(f"{what}: mode {mode!r} is not one of {list(_PAD_MODES)}")
    if any(isinstance(p, Tensor) for p in pad):
        return _runtime_pad(x, list(pad), mode, value, name)
    pad = [int(p) for p in pad]
    if len(pad) % 2 or len(pad) > 2 * x.ndim:
        raise ShapeError(f"{what}: pad {tuple(pad)} needs an even number of values, at most {2 * x.ndim}")
    pairs = {x.ndim - 1 - i: (pad[2 * i], pad[2 * i + 1]) for i in range(len(pad) // 2)}
    pairs = {a: p for a, p in sorted(pairs.items()) if p != (0, 0)}
    if not pairs:
        return x
    for a, (before, after) in pairs.items():
        n = x.shape[a]
        if mode == "reflect" and n != -1 and max(before, after) >= n:
            raise ShapeError(f"{what}: reflect padding {(before, after)} must be smaller than dim {a} (size {n})")
        if mode == "circular" and n != -1 and max(before, after) > n:
            raise ShapeError(f"{what}: circular padding {(before, after)} must be at most dim {a} (size {n})")
    net = x.net
    lname = net.op_name(name, "pad", x)
    ax = list(pairs)
    size = affine_sizes(x, ax, [1] * len(ax), [b + a for b, a in pairs.values()], lname)
    fill = _pad_value(net, x, value, lname) if mode == "constant" else None
    layer = slice_layer(x, ax, [-b for b, _ in pairs.values()], size, [1] * len(ax), mode=_PAD_MODES[mode], fill=fill)
    return net.register(layer, "pad", lname, resolved=True)


def _pad_value(net: Network, x: Tensor, value: float, lname: str) -> Tensor:
    array = np.asarray(value, dtype=dtypes.to_numpy(x.dtype))
    layer = net.trt.add_constant((), net.keep(array, f"{lname}.value"))
    return net.register(layer, "constant", f"{lname}.value", scoped=False)


def _runtime_pad(x: Tensor, pad: list, mode: str, value: float, name: str | None) -> Tensor:
    """``pad`` with runtime amounts: start = -before, size = dims + before + after, as shape tensors."""
    what = f"pad {x.name!r}"
    if len(pad) % 2 or len(pad) > 2 * x.ndim:
        raise ShapeError(f"{what}: pad of {len(pad)} values needs an even number, at most {2 * x.ndim}")
    net = x.net
    lname = net.op_name(name, "pad", x)
    ax = sorted(x.ndim - 1 - i for i in range(len(pad) // 2))
    before = [pad[2 * (x.ndim - 1 - a)] for a in ax]
    after = [pad[2 * (x.ndim - 1 - a) + 1] for a in ax]
    b = int_vector(net, before, what, f"{lname}.before")
    e = int_vector(net, after, what, f"{lname}.after")
    b = b if isinstance(b, Tensor) else int_constant(net, b, f"{lname}.before")
    e = e if isinstance(e, Tensor) else int_constant(net, e, f"{lname}.after")
    zero = int_constant(net, [0] * len(ax), f"{lname}.zero")
    start = binary(net, zero, b, "SUB", f"{lname}.start")
    size = binary(net, binary(net, dims_of(x, ax, lname), b, "SUM", f"{lname}.grown"), e, "SUM", f"{lname}.size")
    fill = _pad_value(net, x, value, lname) if mode == "constant" else None
    layer = slice_layer(x, ax, start, size, [1] * len(ax), mode=_PAD_MODES[mode], fill=fill)
    return net.register(layer, "pad", lname, resolved=True)


def expand(x: Tensor, *sizes: int | Sequence[int], name: str | None = None) -> Tensor:
    """``Tensor.expand``: broadcast size-1 axes to ``sizes`` (-1 keeps an axis) without copying.

    A stride-0 slice repeats the single element; dynamic axes can only be kept (-1).
    """
    target = int_tuple(sizes[0] if len(sizes) == 1 and not isinstance(sizes[0], (int, np.integer)) else sizes)
    what = f"expand {x.name!r}"
    if len(target) < x.ndim:
        raise ShapeError(f"{what}: {len(target)} sizes {target} for a tensor of rank {x.ndim}")
    x = unsqueeze_to(x, len(target))
    grow = []
    for i, (cur, want) in enumerate(zip(x.shape, target, strict=True)):
        if want in (-1, cur):
            continue
        if cur != 1:
            hint = "; pass -1 to keep a dynamic axis" if cur == -1 else ""
            raise ShapeError(f"{what}: dim {i} of size {cur} cannot expand to {want} (shape {x.shape}){hint}")
        grow.append(i)
    if not grow:
        return x
    layer = slice_layer(x, grow, [0] * len(grow), [target[i] for i in grow], [0] * len(grow))
    return x.net.register(layer, "expand", name)


def broadcast_to(x: Tensor, shape: Sequence[int], *, name: str | None = None) -> Tensor:
    """``numpy.broadcast_to`` (same as ``expand``)."""
    return expand(x, tuple(shape), name=name or "broadcast_to")


def repeat(x: Tensor, *sizes: int | Sequence[int], name: str | None = None) -> Tensor:
    """``Tensor.repeat`` (``numpy.tile`` with as many reps as axes): a WRAP-mode slice."""
    reps = int_tuple(sizes[0] if len(sizes) == 1 and not isinstance(sizes[0], (int, np.integer)) else sizes)
    if len(reps) < x.ndim or any(r < 0 for r in reps):
        raise ShapeError(f"repeat {x.name!r}: needs at least {x.ndim} non-negative repeats, got {reps}")
    x = unsqueeze_to(x, len(reps))
    ax = [i for i, r in enumerate(reps) if r != 1]
    if not ax:
        return x
    net = x.net
    lname = net.op_name(name, "repeat", x)
    size = affine_sizes(x, ax, [reps[i] for i in ax], [0] * len(ax), lname)
    layer = slice_layer(x, ax, [0] * len(ax), size, [1] * len(ax), mode="WRAP")
    return net.register(layer, "repeat", lname, resolved=True)


def tile(x: Tensor, reps: int | Sequence[int], *, name: str | None = None) -> Tensor:
    """``numpy.tile``: fewer reps than axes repeat the trailing axes."""
    reps = int_tuple(reps)
    return repeat(x, (1,) * (x.ndim - len(reps)) + reps, name=name or "tile")
