"""Plumbing shared by the shape and indexing ops: shape tensors and slice layers.

A dynamic dimension (-1 in ``Tensor.shape``) is only known at run time, so an
op that needs it (the size of a padded axis, the end of ``x[1:]``) computes it
with a few int64 layers on ``shape_of(x)``. TensorRT folds the static entries
of such shape tensors, so its reported output shapes stay as precise as the
input's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import _trt
from ..errors import ShapeError
from ..network import Network
from ..tensor import Tensor

Size = tuple[int, ...] | Tensor  # static sizes, or a 1-D int64 shape tensor


def full_name(net: Network, name: str) -> str:
    """A unique name that already is scoped (no scope prefix added again)."""
    return net.unique_name(name, scoped=False)


def shape_tensor(x: Tensor) -> Tensor:
    """``x``'s shape as a 1-D int64 tensor, one shape layer per tensor."""
    net = x.net

    def make() -> Tensor:
        layer = net.trt.add_shape(x.trt)
        return net.register(layer, "shape", f"{x.name.removesuffix('.out')}.shape", scoped=False)

    return net.derived(x, "shape", make)


def int_constant(net: Network, values: Sequence[int] | np.ndarray, name: str) -> Tensor:
    """A 1-D (or given-shape) int64 constant named ``name`` (already scoped)."""
    array = np.asarray(values, dtype=np.int64)
    lname = full_name(net, name)
    layer = net.trt.add_constant(array.shape, net.keep(array, lname))
    return net.register(layer, "constant", lname, resolved=True)


def binary(net: Network, a: Tensor, b: Tensor, op: str, name: str) -> Tensor:
    layer = net.trt.add_elementwise(a.trt, b.trt, getattr(_trt.load().ElementWiseOperation, op))
    return net.register(layer, op.lower(), name, scoped=False)


def dims_of(x: Tensor, axes: Sequence[int], base: str) -> Tensor:
    """``x.shape[axes]`` as a 1-D int64 tensor."""
    net = x.net
    shape = shape_tensor(x)
    if list(axes) == list(range(x.ndim)):
        return shape
    idx = int_constant(net, list(axes), f"{base}.axes")
    layer = net.trt.add_gather(shape.trt, idx.trt, 0)
    return net.register(layer, "gather", f"{base}.dims", scoped=False)


def affine_sizes(x: Tensor, axes: Sequence[int], mul: Sequence[int], add: Sequence[int], base: str) -> Size:
    """``x.shape[axes] * mul + add``: ints when those axes are static, else a shape tensor."""
    dims = [x.shape[a] for a in axes]
    if -1 not in dims:
        return tuple(d * m + a for d, m, a in zip(dims, mul, add, strict=True))
    net = x.net
    t = dims_of(x, axes, base)
    if any(m != 1 for m in mul):
        t = binary(net, t, int_constant(net, mul, f"{base}.mul_by"), "PROD", f"{base}.mul")
    if any(add):
        t = binary(net, t, int_constant(net, add, f"{base}.add_to"), "SUM", f"{base}.add")
    return t


def slice_layer(
    x: Tensor,
    axes: Sequence[int],
    start: Sequence[int] | Tensor,
    size: Size,
    stride: Sequence[int],
    *,
    mode: str | None = None,
    fill: Tensor | None = None,
) -> Any:
    """An unregistered ``ISliceLayer`` on ``axes`` of ``x`` (the other axes pass through whole).

    ``start`` and ``size`` are ints or 1-D int64 shape tensors.
    """
    trt = _trt.load()
    n = len(axes)
    static_start = (0,) * n if isinstance(start, Tensor) else tuple(int(s) for s in start)
    static_size = (1,) * n if isinstance(size, Tensor) else tuple(int(s) for s in size)
    layer = x.net.trt.add_slice(x.trt, static_start, static_size, tuple(int(s) for s in stride))
    if isinstance(start, Tensor):
        layer.set_input(1, start.trt)
    if isinstance(size, Tensor):
        layer.set_input(2, size.trt)
    if tuple(axes) != tuple(range(x.ndim)):
        layer.axes = tuple(axes)
    if mode is not None:
        layer.mode = getattr(trt.SampleMode, mode)
    if fill is not None:
        layer.set_input(4, fill.trt)
    return layer


def check_index_dtype(op: str, index: Tensor) -> None:
    if index.dtype not in ("int32", "int64"):
        raise ShapeError(f"{op}: index {index.name!r} has dtype {index.dtype}; expected int32 or int64")


def index_tensor(net: Network, index: Any, what: str, name: str) -> Tensor:
    """An index argument as an int tensor: Tensors pass through, arrays become int64 constants ``name``."""
    if isinstance(index, Tensor):
        check_index_dtype(what, index)
        return index
    array = np.asarray(index)
    if array.dtype.kind not in "iu":
        raise ShapeError(f"{what}: index must hold integers, got dtype {array.dtype}")
    if array.size == 0:
        raise ShapeError(f"{what}: index is empty; TensorRT has no empty constants")
    return int_constant(net, array, name)


def weight_constant(net: Network, value: Any, role: str) -> Tensor:
    """A float weight constant in the compute dtype, kept under ``role`` (already scoped)."""
    if isinstance(value, Tensor):
        return net.to_compute(value)
    array = np.asarray(value, dtype=np.float32)
    compute = net.compute_dtype
    lname = full_name(net, role)
    if compute == "bfloat16":  # typed bfloat16 weights, no cast layer
        return net.narrow_constant(array, compute, lname)
    stored = array.astype(np.float16) if compute == "float16" else array
    layer = net.trt.add_constant(array.shape, net.keep(stored, lname))
    return net.register(layer, "constant", lname, resolved=True)


def scalar_int(v: Tensor, what: str, name: str) -> Tensor:
    """A runtime integer bound (a 0-d or one-element int Tensor) as a (1,) int64 tensor named ``name``."""
    if v.dtype not in ("int32", "int64"):
        raise ShapeError(f"{what}: runtime bound {v.name!r} has dtype {v.dtype}; expected int32 or int64")
    if v.ndim > 1 or (v.ndim == 1 and v.shape[0] not in (1, -1)):
        raise ShapeError(f"{what}: runtime bound {v.name!r} must be a scalar (or one element), got shape {v.shape}")
    net = v.net
    t = net.cast(v, "int64")
    if t.ndim == 1 and t.shape[0] == 1:
        return t
    layer = net.trt.add_shuffle(t.trt)
    layer.reshape_dims = (1,)
    return net.register(layer, "reshape", name, scoped=False)


def int_vector(net: Network, parts: Sequence[int | Tensor], what: str, name: str) -> Size:
    """Ints and runtime int scalars as one 1-D int64 tensor (a tuple of ints when all are static)."""
    if not any(isinstance(p, Tensor) for p in parts):
        return tuple(int(p) for p in parts)  # type: ignore[arg-type]
    pieces = [
        scalar_int(p, what, f"{name}.{i}") if isinstance(p, Tensor) else int_constant(net, [int(p)], f"{name}.{i}")
        for i, p in enumerate(parts)
    ]
    if len(pieces) == 1:
        return pieces[0]
    layer = net.trt.add_concatenation([p.trt for p in pieces])
    layer.axis = 0
    return net.register(layer, "concat", name, scoped=False)
