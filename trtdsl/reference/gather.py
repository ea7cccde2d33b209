"""Reference implementations of indexing layers: gather, scatter, one-hot, non-zero, reverse-sequence.

Negative indices count from the end of their axis (as ONNX Gather/GatherND/
ScatterElements do); ``NvInfer.h`` documents that out-of-bounds gathers store
zero, which is done here by gathering from a zero slice appended to each
indexed axis.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import InterpreterError
from .registry import Node, interprets


def _normalize(idx: np.ndarray, n: int | np.ndarray) -> np.ndarray:
    idx = np.asarray(idx, dtype=np.int64)
    return np.where(idx < 0, idx + n, idx)


def _zero_padded(data: np.ndarray, axes: range | list[int]) -> np.ndarray:
    """``data`` with one zero element appended along each of ``axes`` (the target of OOB indices)."""
    return np.pad(data, [(0, 1) if a in axes else (0, 0) for a in range(data.ndim)])


@interprets("gather")
def gather(node: Node, data: np.ndarray, indices: np.ndarray) -> np.ndarray:
    # The prepared node keeps the layer's parameters (a change to the layer drops it: reference.watch).
    mode, e, axis = node.memo(
        "gather", lambda: (node.layer.mode.name, node.layer.num_elementwise_dims, node.layer.axis)
    )
    if mode == "ELEMENT":
        return _gather_element(data, indices, axis % data.ndim)
    if mode == "ND":
        return _gather_nd(data, indices, e)
    return _gather_default(data, indices, axis % data.ndim, e, node.name)


def _gather_default(data: np.ndarray, indices: np.ndarray, axis: int, e: int, name: str) -> np.ndarray:
    n = data.shape[axis]
    idx = _normalize(indices, n)
    inside = (idx >= 0) & (idx < n)
    if e == 0 and inside.all():  # nothing out of bounds: no zero slice needed (a copy of all of data)
        return np.take(data, idx, axis=axis)
    idx = np.where(inside, idx, n)
    padded = _zero_padded(data, [axis])
    if e == 0:
        return np.take(padded, idx, axis=axis)
    if e != 1 or axis == 0:
        raise InterpreterError(f"gather {name!r}: DEFAULT mode takes 0 or 1 elementwise dims off axis 0, got {e}")
    # Axis 0 pairs data[b] with indices[b] (broadcasting a size-1 side).
    batch = np.broadcast_shapes(data.shape[:1], idx.shape[:1])[0]
    padded = np.broadcast_to(padded, (batch, *padded.shape[1:]))
    idx = np.broadcast_to(idx, (batch, *idx.shape[1:]))
    moved = np.moveaxis(padded, axis, 1)  # (B, n+1, pre..., post...)
    rows = np.arange(batch).reshape((batch,) + (1,) * (idx.ndim - 1))
    got = moved[rows, idx]  # (B, I..., pre..., post...)
    k, p = idx.ndim - 1, axis - 1
    order = [0, *range(1 + k, 1 + k + p), *range(1, 1 + k), *range(1 + k + p, got.ndim)]
    return np.transpose(got, order)


def _gather_element(data: np.ndarray, indices: np.ndarray, axis: int) -> np.ndarray:
    n = data.shape[axis]
    idx = _normalize(indices, n)
    idx = np.where((idx >= 0) & (idx < n), idx, n)
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    return _zero_padded(data, [axis])[tuple(grid)]


def _gather_nd(data: np.ndarray, indices: np.ndarray, e: int) -> np.ndarray:
    k = indices.shape[-1]
    sizes = np.asarray(data.shape[e : e + k], dtype=np.int64)
    idx = _normalize(indices, sizes)
    ok = np.all((idx >= 0) & (idx < sizes), axis=-1, keepdims=True)
    idx = np.where(ok, idx, sizes)
    padded = _zero_padded(data, range(e, e + k))
    batch = int(np.prod(data.shape[:e], dtype=np.int64))
    flat = padded.reshape((batch, *padded.shape[e:]))
    tuples = idx.reshape(batch, -1, k)
    rows = np.arange(batch)[:, None]
    got = flat[(rows, *(tuples[..., j] for j in range(k)))]
    return got.reshape(indices.shape[:-1] + data.shape[e + k :])


@interprets("scatter")
def scatter(node: Node, data: np.ndarray, indices: np.ndarray, updates: np.ndarray) -> np.ndarray:
    """A copy of ``data`` with ``updates`` written at ``indices`` (duplicates: last write wins here)."""
    out = data.copy()
    if node.layer.mode.name == "ELEMENT":
        axis = node.layer.axis % data.ndim
        grid = list(np.indices(indices.shape, sparse=True))
        grid[axis] = _normalize(indices, data.shape[axis])
        out[tuple(grid)] = updates
        return out
    k = indices.shape[-1]
    idx = _normalize(indices, np.asarray(data.shape[:k], dtype=np.int64))
    out[tuple(idx[..., j] for j in range(k))] = updates
    return out


@interprets("one_hot")
def one_hot(node: Node, indices: np.ndarray, values: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """``values[1]`` where the class equals the index, ``values[0]`` elsewhere.

    As in ONNX OneHot, a negative index counts from ``depth``; an index
    outside ``[-depth, depth)`` gives an all-off row.
    """
    depth = int(np.reshape(depth, -1)[0])
    axis = node.layer.axis % (indices.ndim + 1)
    idx = np.expand_dims(_normalize(indices, depth), axis)
    classes = np.arange(depth).reshape([-1 if i == axis else 1 for i in range(indices.ndim + 1)])
    off, on = np.reshape(values, -1)[:2]
    return np.where(idx == classes, on, off).astype(values.dtype)


@interprets("non_zero")
def non_zero(node: Node, x: np.ndarray) -> np.ndarray:
    """(rank, count) coordinates of the non-zero elements in row-major order."""
    out = np.stack(np.nonzero(x)) if x.ndim else np.zeros((0, int(x != 0)), np.int64)
    return out.astype(dtypes.to_numpy(node.out_dtypes[0]))


@interprets("reverse_sequence")
def reverse_sequence(node: Node, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Reverse the first ``lengths[b]`` elements along the sequence axis of each batch slice ``b``."""
    b, s = node.layer.batch_axis % x.ndim, node.layer.sequence_axis % x.ndim
    lens = np.reshape(lengths, [-1 if i == b else 1 for i in range(x.ndim)]).astype(np.int64)
    pos = np.arange(x.shape[s]).reshape([-1 if i == s else 1 for i in range(x.ndim)])
    idx = np.where(pos < lens, lens - 1 - pos, pos)
    return np.take_along_axis(x, np.broadcast_to(idx, x.shape), axis=s)
