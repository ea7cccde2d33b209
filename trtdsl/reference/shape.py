"""Reference implementations: constants, casts and shape-manipulating layers.

Semantics follow the layer documentation in ``NvInfer.h`` (TensorRT 11).
Parameters that a layer can take either as an attribute or as an input tensor
(slice start/size/stride/axes, shuffle reshape dims, fill shape/alpha/beta) are
read from the input when it is set, and from the attribute otherwise; reading
the attribute of a dynamic parameter only makes TensorRT log an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtypes
from ..errors import InterpreterError
from ..tensor import dims_tuple
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
def squeeze(node: Node, x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, tuple(int(a) % x.ndim for a in np.reshape(axes, -1)))


def _ints(values: np.ndarray | None) -> tuple[int, ...] | None:
    return None if values is None else tuple(int(v) for v in np.reshape(values, -1))


# ------------------------------------------------------------------ shuffle
def resolve_reshape(in_shape: tuple[int, ...], dims: tuple[int, ...], zero_is_placeholder: bool, where: str):
    """Reshape dims with 0 placeholders and one -1 resolved against ``in_shape``."""
    out = []
    for i, d in enumerate(dims):
        if d == 0 and zero_is_placeholder and i >= len(in_shape):
            raise InterpreterError(f"{where}: placeholder 0 at axis {i} has no input axis (input {in_shape})")
        out.append(in_shape[i] if d == 0 and zero_is_placeholder else d)
    volume = int(np.prod(in_shape, dtype=np.int64))
    if out.count(-1) > 1:
        raise InterpreterError(f"{where}: reshape dims {dims} have more than one -1")
    if -1 in out:
        rest = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        if rest == 0 or volume % rest:
            raise InterpreterError(f"{where}: cannot infer -1 in {dims} for input shape {in_shape}")
        out[out.index(-1)] = volume // rest
    if int(np.prod(out, dtype=np.int64)) != volume:
        raise InterpreterError(f"{where}: cannot reshape {in_shape} ({volume} elements) to {tuple(out)}")
    return tuple(out)


@interprets("shuffle")
def shuffle(node: Node, x: np.ndarray, dims: np.ndarray | None = None) -> np.ndarray:
    """Transpose, reshape, transpose; reshape dims from input 1 when it is set."""
    # Four attribute reads through the bindings cost ~50 us; the prepared node keeps them (any
    # change to the layer drops the prepared interpreter: reference.watch).
    static = dims is None  # (reading reshape_dims of a layer whose dims are an input makes TensorRT log an error)
    first, fixed, placeholder, second = node.memo(("shuffle", static), lambda: _shuffle_params(node.layer, static))
    y = np.transpose(x, first[: x.ndim])
    reshape = _ints(dims) if dims is not None else fixed
    if reshape is not None:
        y = y.reshape(resolve_reshape(y.shape, tuple(reshape), placeholder, f"shuffle {node.name!r}"))
    return np.transpose(y, second[: y.ndim])


def _shuffle_params(layer: Any, static: bool) -> tuple:
    """(first transpose, reshape dims or None, zero_is_placeholder, second transpose) of a shuffle layer;
    its reshape dims are read only when ``static`` (not given by its second input)."""
    reshape = layer.reshape_dims if static else None
    return (tuple(layer.first_transpose), None if reshape is None else tuple(reshape), layer.zero_is_placeholder,
            tuple(layer.second_transpose))  # fmt: skip


@interprets("concatenation")
def concatenation(node: Node, *inputs: np.ndarray) -> np.ndarray:
    return np.concatenate(inputs, axis=node.memo("axis", lambda: node.layer.axis) % inputs[0].ndim)


@interprets("shape")
def shape(node: Node, x: np.ndarray) -> np.ndarray:
    return np.asarray(x.shape, dtype=np.int64)


@interprets("select")
def select(node: Node, condition: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(condition.astype(bool), a, b)


@interprets("padding")
def padding(node: Node, x: np.ndarray) -> np.ndarray:
    """Zero padding of the trailing axes; negative padding crops."""
    pre, post = tuple(node.layer.pre_padding_nd), tuple(node.layer.post_padding_nd)
    lead = x.ndim - len(pre)
    widths = [(0, 0)] * lead + [(max(a, 0), max(b, 0)) for a, b in zip(pre, post, strict=True)]
    y = np.pad(x, widths)
    crop = [slice(None)] * lead + [
        slice(max(-a, 0), y.shape[lead + i] - max(-b, 0)) for i, (a, b) in enumerate(zip(pre, post, strict=True))
    ]
    return y[tuple(crop)]


# -------------------------------------------------------------------- slice
def sample_indices(idx: np.ndarray, n: int, mode: str, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Map sample coordinates into ``[0, n)`` by SampleMode; also the in-bounds mask for FILL."""
    if mode == "FILL":
        valid = (idx >= 0) & (idx < n)
        return np.where(valid, idx, 0), valid
    if mode == "STRICT_BOUNDS":
        bad = idx[(idx < 0) | (idx >= n)]
        if bad.size:
            raise InterpreterError(
                f"{where}: index {int(bad[0])} is out of bounds for an axis of size {n} (STRICT_BOUNDS)"
            )
        return idx, None
    if n == 0:
        if idx.size:
            raise InterpreterError(f"{where}: cannot sample {idx.size} elements from an empty axis in {mode} mode")
        return idx, None
    if mode == "WRAP":
        return idx % n, None
    if mode == "CLAMP":
        return np.clip(idx, 0, n - 1), None
    if mode == "REFLECT":
        # Mirror about the centre of the edge element (edge not repeated), periodically.
        if n == 1:
            return np.zeros_like(idx), None
        period = 2 * (n - 1)
        m = idx % period
        return np.where(m < n, m, period - m), None
    raise InterpreterError(f"{where}: unknown sample mode {mode}")


_DYNAMIC_PLANS = 32  # slice plans a node keeps for start/size/stride/axes given as tensors


@interprets("slice")
def slice_(
    node: Node,
    x: np.ndarray,
    start: np.ndarray | None = None,
    size: np.ndarray | None = None,
    stride: np.ndarray | None = None,
    fill: np.ndarray | None = None,
    axes: np.ndarray | None = None,
) -> np.ndarray:
    """Strided sampling of ``x``; out-of-bounds coordinates handled by ``layer.mode``.

    A slice whose samples are all in bounds at a constant nonzero step on every axis is
    a view of ``x`` (basic indexing); others gather. The plan is kept per input shape, and
    for start, size, stride and axes given as tensors (torch's ``chunk`` exports them
    computed from shapes) per their values too, up to _DYNAMIC_PLANS of them.
    """
    given = (start, size, stride, axes)
    if start is None and size is None and stride is None and axes is None:
        # The prepared node keeps the plan per input shape (any change to the layer drops the
        # prepared interpreter: reference.watch): index arrays cost more than the copy on small inputs.
        plan = node.memo(("slice", x.shape), lambda: _slice_plan(node, x.shape, *given))
    else:
        plans = node.memo("slice plans", dict)
        key = (x.shape, *(_ints(a) for a in given))
        plan = plans.get(key)
        if plan is None:
            plan = _slice_plan(node, x.shape, *given)
            if len(plans) >= _DYNAMIC_PLANS:
                plans.clear()
            plans[key] = plan
    index, mask, mode, basic = plan
    if basic is not None:
        return x[basic]
    if x.size == 0:
        # Only FILL can sample an empty input; every coordinate is then out of bounds.
        out_shape = tuple(len(i) for i in index)
        if int(np.prod(out_shape)) and mode != "FILL":
            raise InterpreterError(f"slice {node.name!r}: cannot sample {out_shape} from an empty input in {mode} mode")
        return np.full(out_shape, 0 if fill is None else fill, dtype=x.dtype)
    y = x[np.ix_(*index)]
    if mask is not None:
        value = np.asarray(0 if fill is None else fill).astype(x.dtype)
        y = np.where(mask, y, value)
    return y


def _slice_plan(
    node: Node, shape: tuple[int, ...], start: Any, size: Any, stride: Any, axes: Any
) -> tuple[list[np.ndarray], np.ndarray | None, str, tuple[slice, ...] | None]:
    """(an index array per axis, the in-bounds mask or None, the SampleMode name, the same
    selection as basic slices or None) of a slice of ``shape``."""
    layer = node.layer
    where = f"slice {node.name!r}"
    ndim = len(shape)
    start = _ints(start) if start is not None else tuple(layer.start)
    size = _ints(size) if size is not None else dims_tuple(layer.shape)
    stride = _ints(stride) if stride is not None else tuple(layer.stride)
    axes = _ints(axes) if axes is not None else layer.axes
    axes = tuple(range(ndim)) if axes is None else tuple(int(a) % ndim for a in axes)
    if not len(start) == len(size) == len(stride) == len(axes):
        raise InterpreterError(f"{where}: start {start}, size {size}, stride {stride} and axes {axes} differ in length")
    mode = layer.mode.name
    index = [np.arange(n) for n in shape]
    masks = []
    for a, s, n, st in zip(axes, start, size, stride, strict=True):
        idx, valid = sample_indices(s + np.arange(n, dtype=np.int64) * st, shape[a], mode, where)
        index[a] = idx
        if valid is not None:
            masks.append(np.reshape(valid, [-1 if i == a else 1 for i in range(ndim)]))
    mask = np.logical_and.reduce(np.broadcast_arrays(*masks)) if masks else None
    basic = None
    if mask is None or mask.all():
        steps = [_as_slice(i) for i in index]
        basic = None if any(step is None for step in steps) else tuple(steps)
    return index, mask, mode, basic


def _as_slice(idx: np.ndarray) -> slice | None:
    """The slice that selects the in-bounds indices ``idx`` in order, if they step evenly, else None."""
    if idx.size < 2:
        return slice(0, 0) if idx.size == 0 else slice(int(idx[0]), int(idx[0]) + 1)
    step = int(idx[1] - idx[0])
    if step == 0 or not np.array_equal(np.diff(idx), np.full(idx.size - 1, step)):
        return None
    stop = int(idx[-1]) + step
    return slice(int(idx[0]), stop if stop >= 0 else None, step)


# --------------------------------------------------------------------- fill
@interprets("fill")
def fill(node: Node, shape: np.ndarray | None = None, alpha: np.ndarray | None = None, beta: np.ndarray | None = None):
    """LINSPACE: ``alpha + sum_k beta[k] * i_k``. RANDOM_*: right shape and distribution only.

    TensorRT's random generator cannot be reproduced, so random fills give
    values from NumPy's generator (seed 0) that only a shape check can use.
    """
    layer = node.layer
    out_dtype = dtypes.to_numpy(node.out_dtypes[0])
    dims = _ints(shape) if shape is not None else dims_tuple(layer.shape)
    a = alpha if alpha is not None else layer.alpha
    b = beta if beta is not None else layer.beta
    op = layer.operation.name
    if op == "RANDOM_UNIFORM":
        return np.random.default_rng(0).uniform(float(a), float(b), dims).astype(out_dtype)
    if op == "RANDOM_NORMAL":
        return np.random.default_rng(0).normal(float(a), float(b), dims).astype(out_dtype)
    calc = np.int64 if out_dtype.kind in "iu" else np.float64
    b = np.reshape(np.asarray(b, dtype=calc), -1)
    if len(b) != len(dims):
        if len(dims) > 1:
            raise InterpreterError(
                f"fill {node.name!r}: LINSPACE of rank {len(dims)} needs {len(dims)} deltas, got beta {b.tolist()}"
            )
        b = b[:1]
    grids = np.indices(dims, dtype=calc, sparse=True) if dims else ()
    out = np.full(dims, np.asarray(a, dtype=calc).reshape(()), dtype=calc)
    for k, g in enumerate(grids):
        out = out + b[k] * g
    return out.astype(out_dtype)


@interprets("assertion")
def assertion(node: Node, condition: np.ndarray) -> tuple:
    """IAssertionLayer: an error when any element of the bool condition is false (NvInfer.h)."""
    if not np.all(condition):
        raise InterpreterError(f"assertion layer {node.index} {node.name!r} failed: {node.layer.message}")
    return ()
