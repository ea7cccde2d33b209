"""Shape and data-movement ops with PyTorch names and semantics.

Reshapes and transposes are ``IShuffleLayer``s; concatenation, splitting,
padding, expanding and tiling are concatenation and slice layers. Every op
keeps working with dynamic dimensions (-1 in ``Tensor.shape``): where a size
depends on one, it is computed at run time from the input's shape tensor.
Indexing ops (``getitem``, ``gather``, ``embedding``, ...) live in
``trtdsl.ops.indexing``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from .. import _trt, dtypes
from ..errors import ShapeError
from ..network import Network
from ..tensor import Tensor
from ._slicing import affine_sizes, binary, dims_of, int_constant, int_vector, shape_tensor, slice_layer
from ._util import TensorLike, as_tensor, axes, axis, broadcast, net_of, unsqueeze_to

__all__ = [
    "reshape", "permute", "transpose", "flatten", "squeeze", "unsqueeze", "cast", "constant",
    "concat", "cat", "split", "chunk", "stack", "pad", "where", "expand", "broadcast_to",
    "repeat", "tile", "shape_of", "arange",
]  # fmt: skip


def _ints(shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def _volume(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _shuffle(x: Tensor, name: str | None, kind: str, *, first=None, dims=None, zero_is_placeholder=False) -> Tensor:
    net = x.net
    layer = net.trt.add_shuffle(x.trt)
    if first is not None:
        layer.first_transpose = tuple(first)
    layer.zero_is_placeholder = zero_is_placeholder
    if isinstance(dims, Tensor):
        layer.set_input(1, dims.trt)
    elif dims is not None:
        layer.reshape_dims = tuple(dims)
    return net.register(layer, kind, name)


def reshape(x: Tensor, shape: int | Sequence[int] | Tensor, *, name: str | None = None) -> Tensor:
    """``torch.reshape``: one -1 is inferred, 0 is a zero-length axis.

    With dynamic input axes, a -1 at the position of a dynamic input axis keeps
    that axis, so ``reshape(x, (-1, -1, 4, 8))`` splits the last axis of a
    ``(batch, seq, 32)`` tensor. ``shape`` may also be a 1-D int shape tensor, or mix
    ints with runtime int scalars (TensorRT resolves one -1 at run time then).

    Example::

        y = ops.reshape(x, (-1, 16))
        z = ops.reshape(x, (n, -1))  # n: a runtime int scalar Tensor
    """
    if isinstance(shape, Tensor):
        return _shuffle(x, name, "reshape", dims=shape)
    if not isinstance(shape, (int, np.integer)) and any(isinstance(d, Tensor) for d in shape):
        lname = x.net.op_name(name, "reshape", x)
        dims = int_vector(x.net, list(shape), f"reshape {x.name!r}", f"{lname}.shape")
        return _shuffle(x, lname, "reshape", dims=dims)
    target = _ints(shape)
    what = f"reshape {x.name!r}"
    if any(d < -1 for d in target):
        raise ShapeError(f"{what}: target shape {target} has a negative size other than -1")
    src = x.shape
    if -1 not in src:
        inferred = list(target)
        if target.count(-1) > 1:
            raise ShapeError(f"{what}: target shape {target} can infer only one -1")
        if -1 in target:
            rest = _volume([d for d in target if d != -1])
            if rest == 0 or _volume(src) % rest:
                raise ShapeError(
                    f"{what}: cannot reshape {src} to {target}: {_volume(src)} elements are not a multiple of {rest}"
                )
            inferred[target.index(-1)] = _volume(src) // rest
        if _volume(inferred) != _volume(src):
            raise ShapeError(
                f"{what}: cannot reshape {src} to {target}: {_volume(src)} elements vs {_volume(inferred)}"
            )
        return _shuffle(x, name, "reshape", dims=inferred)
    if target.count(-1) <= 1:
        return _shuffle(x, name, "reshape", dims=target)
    # Several -1: those under a dynamic input axis copy it (TensorRT's 0 placeholder).
    copies = [i for i, d in enumerate(target) if d == -1 and i < len(src) and src[i] == -1]
    if target.count(-1) - len(copies) > 1 or 0 in target:
        raise ShapeError(
            f"{what}: cannot reshape {src} to {target}: only one -1 can be inferred (a -1 under a dynamic "
            f"input axis keeps it), and 0-size axes cannot be mixed with kept axes"
        )
    dims = [0 if i in copies else d for i, d in enumerate(target)]
    return _shuffle(x, name, "reshape", dims=dims, zero_is_placeholder=True)


def permute(x: Tensor, dims: Sequence[int], *, name: str | None = None) -> Tensor:
    """``torch.permute``: output axis i is input axis ``dims[i]``."""
    perm = tuple(axis(int(d), x.ndim, "permute dim") for d in dims)
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(f"permute {x.name!r}: dims {tuple(dims)} are not a permutation of 0..{x.ndim - 1}")
    return _shuffle(x, name, "permute", first=perm)


def transpose(x: Tensor, dim0: int, dim1: int, *, name: str | None = None) -> Tensor:
    """``torch.transpose``: swap two axes."""
    perm = list(range(x.ndim))
    a, b = axis(dim0, x.ndim, "transpose dim0"), axis(dim1, x.ndim, "transpose dim1")
    perm[a], perm[b] = perm[b], perm[a]
    return _shuffle(x, name, "transpose", first=perm)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1, *, name: str | None = None) -> Tensor:
    """``torch.flatten``: merge axes ``start_dim..end_dim``; any of them may be dynamic."""
    if x.ndim == 0:
        return _shuffle(x, name, "flatten", dims=(1,))
    s, e = axis(start_dim, x.ndim, "flatten start_dim"), axis(end_dim, x.ndim, "flatten end_dim")
    if s > e:
        raise ShapeError(f"flatten {x.name!r}: start_dim {start_dim} comes after end_dim {end_dim}")
    src = x.shape
    span = src[s : e + 1]
    merged = -1 if -1 in span else _volume(span)
    dims = (*src[:s], merged, *src[e + 1 :])
    if dims.count(-1) <= 1:
        return _shuffle(x, name, "flatten", dims=dims)
    # Several dynamic axes: copy the others from the shape tensor, infer the merged one.
    net = x.net
    lname = net.op_name(name, "flatten", x)
    shape = shape_tensor(x)
    parts = []
    if s:
        parts.append(net.register(slice_layer(shape, [0], [0], [s], [1]), "slice", f"{lname}.head", scoped=False))
    parts.append(int_constant(net, [-1], f"{lname}.merged"))
    if e + 1 < x.ndim:
        tail = slice_layer(shape, [0], [e + 1], [x.ndim - e - 1], [1])
        parts.append(net.register(tail, "slice", f"{lname}.tail", scoped=False))
    new_shape = net.register(
        net.trt.add_concatenation([p.trt for p in parts]), "concat", f"{lname}.shape", scoped=False
    )
    layer = net.trt.add_shuffle(x.trt)
    layer.zero_is_placeholder = False
    layer.set_input(1, new_shape.trt)
    return net.register(layer, "flatten", lname, resolved=True)


def squeeze(x: Tensor, dim: int | Sequence[int] | None = None, *, name: str | None = None) -> Tensor:
    """Remove size-1 axes (all static ones when ``dim`` is None).

    Unlike ``torch.squeeze``, naming an axis whose static size is not 1 is an error.
    """
    if dim is None:
        dims = tuple(i for i, d in enumerate(x.shape) if d == 1)
        if not dims:
            return x
    else:
        dims = axes(dim, x.ndim, "squeeze dim")
    for d in dims:
        if x.shape[d] not in (1, -1):
            raise ShapeError(f"squeeze {x.name!r}: dim {d} has size {x.shape[d]}, not 1 (shape {x.shape})")
    net = x.net
    lname = net.op_name(name, "squeeze", x)
    layer = net.trt.add_squeeze(x.trt, int_constant(net, dims, f"{lname}.axes").trt)
    return net.register(layer, "squeeze", lname, resolved=True)


def unsqueeze(x: Tensor, dim: int | Sequence[int], *, name: str | None = None) -> Tensor:
    """Insert size-1 axes; ``dim`` indexes the output (``-1`` appends)."""
    n = 1 if isinstance(dim, (int, np.integer)) else len(dim)
    dims = axes(dim, x.ndim + n, "unsqueeze dim")
    net = x.net
    lname = net.op_name(name, "unsqueeze", x)
    layer = net.trt.add_unsqueeze(x.trt, int_constant(net, dims, f"{lname}.axes").trt)
    return net.register(layer, "unsqueeze", lname, resolved=True)


def cast(x: Tensor, dtype: dtypes.DTypeLike, *, name: str | None = None) -> Tensor:
    """``x.to(dtype)``; float -> int truncates toward zero. No layer when the dtype already matches."""
    return x.net.cast(x, dtype, name)


def constant(net: Network, value: TensorLike, name: str | None = None, dtype: dtypes.DTypeLike | None = None) -> Tensor:
    """A constant tensor; float data is stored in the compute dtype unless ``dtype`` is given."""
    return net.constant(value, name, dtype=dtype)


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


def where(condition: TensorLike, a: TensorLike, b: TensorLike, *, name: str | None = None) -> Tensor:
    """``torch.where``: ``a`` where ``condition`` (bool) holds, else ``b``, with broadcasting."""
    net = net_of(condition, a, b)
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = as_tensor(net, a)
    ta, tb = broadcast(net, a, b)
    cond = condition if isinstance(condition, Tensor) else net.constant(np.asarray(condition, dtype=bool), "condition")
    if cond.dtype != "bool":
        raise ShapeError(
            f"where: condition {cond.name!r} has dtype {cond.dtype}; expected bool (compare first, e.g. x > 0)"
        )
    n = max(cond.ndim, ta.ndim)
    shapes = [t.shape for t in (cond, ta, tb)]
    for i in range(1, n + 1):
        sizes = {s[-i] for s in shapes if len(s) >= i} - {1, -1}
        if len(sizes) > 1:
            raise ShapeError(f"where: shapes {shapes} (condition, a, b) do not broadcast")
    cond, ta, tb = (unsqueeze_to(t, n) for t in (cond, ta, tb))
    return net.register(net.trt.add_select(cond.trt, ta.trt, tb.trt), "where", name)


def expand(x: Tensor, *sizes: int | Sequence[int], name: str | None = None) -> Tensor:
    """``Tensor.expand``: broadcast size-1 axes to ``sizes`` (-1 keeps an axis) without copying.

    A stride-0 slice repeats the single element; dynamic axes can only be kept (-1).
    """
    target = _ints(sizes[0] if len(sizes) == 1 and not isinstance(sizes[0], (int, np.integer)) else sizes)
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
    reps = _ints(sizes[0] if len(sizes) == 1 and not isinstance(sizes[0], (int, np.integer)) else sizes)
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
    reps = _ints(reps)
    return repeat(x, (1,) * (x.ndim - len(reps)) + reps, name=name or "tile")


def shape_of(x: Tensor, *, name: str | None = None) -> Tensor:
    """``x``'s shape as a 1-D int64 tensor (runtime values for dynamic axes)."""
    if name is None:
        return shape_tensor(x)
    return x.net.register(x.net.trt.add_shape(x.trt), "shape", name)


def arange(
    net: Network, start: float | Tensor, end: float | Tensor | None = None, step: float | Tensor = 1, *,
    dtype: dtypes.DTypeLike | None = None, name: str | None = None,
) -> Tensor:  # fmt: skip
    """``torch.arange`` as a LINSPACE fill layer; int64 when all arguments are ints, else the compute dtype.

    ``start``, ``end`` and ``step`` may be runtime scalars (Tensors): the length
    ``ceil((end - start) / step)`` is then computed by layers.

    Example::

        pos = ops.arange(net, ops.shape_of(x)[1])  # 0 .. seq-1 for a dynamic seq axis
    """
    if end is None:
        start, end = 0, start
    if any(isinstance(v, Tensor) for v in (start, end, step)):
        return _runtime_arange(net, start, end, step, dtype, name)
    if step == 0:
        raise ShapeError(f"arange: step must not be 0 (start {start}, end {end})")
    n = max(0, math.ceil((end - start) / step))
    ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    dt = dtypes.canonical(dtype) if dtype is not None else ("int64" if ints else net.compute_dtype)
    fill_dt = dt if dt in ("int32", "int64") else "float32"
    layer = net.trt.add_fill((n,), _trt.load().FillOperation.LINSPACE, dtypes.to_trt(fill_dt))
    layer.alpha = int(start) if fill_dt != "float32" else float(start)
    layer.beta = int(step) if fill_dt != "float32" else float(step)
    return net.cast(net.register(layer, "arange", name), dt)


def _runtime_arange(net: Network, start, end, step, dtype, name) -> Tensor:
    ints = all(
        (v.dtype in ("int32", "int64")) if isinstance(v, Tensor) else isinstance(v, (int, np.integer))
        for v in (start, end, step)
    )
    dt = dtypes.canonical(dtype) if dtype is not None else ("int64" if ints else net.compute_dtype)
    calc = "int64" if ints else "float32"
    lname = net.unique_name(name or "arange")

    def scalar(v: float | Tensor, what: str) -> Tensor:  # a (1,) tensor of ``calc``
        if isinstance(v, Tensor):
            if v.ndim > 1 or (v.ndim == 1 and v.shape[0] not in (1, -1)):
                raise ShapeError(f"arange: {what} {v.name!r} must be a scalar, got shape {v.shape}")
            t = net.cast(v, calc)
            if t.ndim == 0:
                t = reshape(t, (1,), name=f"{lname}.{what}_1d")
            return t
        array = np.asarray([v], dtype=np.int64 if calc == "int64" else np.float32)
        return net.constant(array, f"{lname}.{what}", dtype=calc)

    s, e, d = scalar(start, "start"), scalar(end, "end"), scalar(step, "step")
    if ints:  # ceil((e - s) / d) = -((s - e) // d), exact in integers for either sign of d
        q = binary(net, binary(net, s, e, "SUB", f"{lname}.back"), d, "FLOOR_DIV", f"{lname}.floor")
        n = binary(net, int_constant(net, [0], f"{lname}.zero"), q, "SUB", f"{lname}.ceil")
    else:
        ratio = binary(net, binary(net, e, s, "SUB", f"{lname}.span"), d, "DIV", f"{lname}.ratio")
        layer = net.trt.add_unary(ratio.trt, _trt.load().UnaryOperation.CEIL)
        n = net.cast(net.register(layer, "ceil", f"{lname}.ceil", scoped=False), "int64")
    n = binary(net, n, int_constant(net, [0], f"{lname}.none"), "MAX", f"{lname}.count")
    layer = net.trt.add_fill((1,), _trt.load().FillOperation.LINSPACE, dtypes.to_trt(calc))
    layer.set_input(0, n.trt)
    layer.set_input(1, reshape(s, (), name=f"{lname}.alpha").trt)
    layer.set_input(2, d.trt)
    return net.cast(net.register(layer, "arange", lname, resolved=True), dt)
