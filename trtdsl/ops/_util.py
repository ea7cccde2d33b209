"""Shared plumbing of the ops: finding the network, constants, axes, broadcasting.

Every op follows the same shape: find the ``Network`` from its tensor
arguments, turn Python/NumPy values into constants of a matching dtype, call one
``net.trt.add_*`` (or a few), and name the layer with ``net.register``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import ShapeError, TrtdslError
from ..network import Network
from ..tensor import Tensor

TensorLike = Any  # Tensor | np.ndarray | float | int | bool


def net_of(*args: Any) -> Network:
    """The network of the first Tensor among ``args`` (nested one level in lists)."""
    for a in args:
        if isinstance(a, Tensor):
            return a.net
        if isinstance(a, (list, tuple)):
            for b in a:
                if isinstance(b, Tensor):
                    return b.net
    raise TrtdslError("an op needs at least one trtdsl.Tensor argument to know its network")


def as_tensor(net: Network, value: TensorLike, like: Tensor | None = None, name: str | None = None) -> Tensor:
    """``value`` as a Tensor: Python scalars and arrays become constants in ``like``'s dtype."""
    if isinstance(value, Tensor):
        if value.net is not net:
            raise TrtdslError(f"tensor {value.name!r} belongs to network {value.net.name!r}, not {net.name!r}")
        return value
    array = np.asarray(value)
    if array.dtype.kind == "f" and (like is None or dtypes.is_float(like.dtype)):
        # Float operands of a float tensor are computed in the compute dtype, so store them in it.
        dtype = net.compute_dtype
    elif like is not None and array.dtype.kind in "fiub":
        dtype = like.dtype
    else:
        dtype = None
    return net.constant(array, name or "const", dtype=dtype)


def int_tuple(shape: int | Sequence[int]) -> tuple[int, ...]:
    """A size or a sequence of sizes as a tuple of Python ints."""
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def axis(dim: int, ndim: int, what: str = "dim") -> int:
    """Normalize a possibly negative axis, with a clear error when out of range."""
    if not -ndim <= dim < ndim:
        raise ShapeError(f"{what} {dim} is out of range for a tensor of rank {ndim}")
    return dim % ndim


def axes(dims: int | Sequence[int] | None, ndim: int, what: str = "dim") -> tuple[int, ...]:
    if dims is None:
        return tuple(range(ndim))
    if isinstance(dims, (int, np.integer)):
        dims = (int(dims),)
    return tuple(sorted({axis(int(d), ndim, what) for d in dims}))


def bitmask(dims: Sequence[int]) -> int:
    mask = 0
    for d in dims:
        mask |= 1 << d
    return mask


def pair(value: int | Sequence[int], n: int, what: str) -> tuple[int, ...]:
    """Expand an int to an n-tuple (stride=2 -> (2, 2)); check a sequence's length."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ShapeError(f"{what} needs {n} values, got {value}")
    return value


def unsqueeze_to(x: Tensor, ndim: int) -> Tensor:
    """Prepend size-1 axes so that ``x`` has rank ``ndim`` (NumPy broadcasting rule)."""
    if x.ndim >= ndim:
        return x
    net = x.net

    def make() -> Tensor:
        layer = net.trt.add_unsqueeze(x.trt, _axes_tensor(net, range(ndim - x.ndim)).trt)
        return net.register(layer, "unsqueeze", f"{x.name.removesuffix('.out')}.rank{ndim}", scoped=False)

    return net.derived(x, f"rank:{ndim}", make)


def _axes_tensor(net: Network, values: Sequence[int] | range) -> Tensor:
    return net.constant(np.asarray(list(values), dtype=np.int64), "axes", dtype="int64")


def relative(net: Network, lname: str) -> str:
    """``lname`` (from ``net.op_name``, so in the current scope) without the scope: the name to give
    the ops and constants an op adds beside its layer, which put the scope in front again."""
    scope = net.current_scope
    return lname[len(scope) + 1 :] if scope and lname.startswith(scope + ".") else lname


def broadcast(net: Network, a: TensorLike, b: TensorLike) -> tuple[Tensor, Tensor]:
    """Two operands as Tensors of one rank and, for floats, one dtype."""
    like = a if isinstance(a, Tensor) else b
    ta = as_tensor(net, a, like if not isinstance(a, Tensor) else None)
    tb = as_tensor(net, b, like if not isinstance(b, Tensor) else None)
    if isinstance(ta, Tensor) and not isinstance(a, Tensor) and isinstance(b, Tensor):
        ta = _reshape_const_rank(ta, tb.ndim)
    if not isinstance(b, Tensor) and isinstance(a, Tensor):
        tb = _reshape_const_rank(tb, ta.ndim)
    # Each dtype and shape is read once (a read crosses pybind); casts keep shapes.
    da, db = ta.dtype, tb.dtype
    if dtypes.is_float(da) and dtypes.is_float(db):
        compute = net.compute_dtype
        ta, tb = net.cast(ta, compute, src=da), net.cast(tb, compute, src=db)
    elif da != db:
        raise ShapeError(f"operands have different dtypes {da} ({ta.name}) and {db} ({tb.name}); cast one")
    shape_a, shape_b = ta.shape, tb.shape
    n = max(len(shape_a), len(shape_b))
    sa, sb = shape_a[::-1], shape_b[::-1]
    for i in range(min(len(sa), len(sb))):
        if sa[i] != sb[i] and 1 not in (sa[i], sb[i]) and -1 not in (sa[i], sb[i]):
            raise ShapeError(f"shapes {shape_a} ({ta.name}) and {shape_b} ({tb.name}) do not broadcast")
    if len(shape_a) < n:
        ta = unsqueeze_to(ta, n)
    if len(shape_b) < n:
        tb = unsqueeze_to(tb, n)
    return ta, tb


def _reshape_const_rank(t: Tensor, ndim: int) -> Tensor:
    # A constant made for a scalar/array operand gets the other operand's rank
    # directly in its weights' shape, so no unsqueeze layer is needed.
    if t.ndim >= ndim:
        return t
    layer = t.layer
    if layer is not None and layer.type.name == "CONSTANT":
        layer.shape = (1,) * (ndim - t.ndim) + t.shape
        return t
    return unsqueeze_to(t, ndim)
