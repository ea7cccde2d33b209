"""Shape and data-movement ops with PyTorch names and semantics.

Reshapes and transposes are ``IShuffleLayer``s. Every op keeps working with
dynamic dimensions (-1 in ``Tensor.shape``): where a size depends on one, it is
computed at run time from the input's shape tensor. Concatenation and splitting
live in ``trtdsl.ops.join``; padding, expanding and tiling in
``trtdsl.ops.padding``; indexing ops (``getitem``, ``gather``, ``embedding``,
...) in ``trtdsl.ops.indexing``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import _trt, dtypes
from ..errors import ShapeError
from ..network import Network
from ..tensor import Tensor
from ._slicing import binary, int_constant, int_vector, shape_tensor, slice_layer
from ._util import TensorLike, as_tensor, axes, axis, broadcast, int_tuple, net_of, unsqueeze_to

__all__ = [
    "reshape", "permute", "transpose", "flatten", "squeeze", "unsqueeze", "cast", "constant", "where",
    "shape_of", "arange",
]  # fmt: skip


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
    target = int_tuple(shape)
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
