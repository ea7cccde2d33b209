"""Indexing ops: ``x[...]``, slicing, gathers, scatters, embedding lookup, one-hot.

``getitem`` follows NumPy basic indexing (ints, slices with any step,
``...``, ``None``) plus one integer-array index, as one slice layer, a gather,
a squeeze and an unsqueeze at most. Slices of dynamic axes compute their
start and size at run time from the input's shape tensor, with the same
clamping as Python's ``slice.indices``.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from .. import _trt, dtypes
from ..errors import ShapeError
from ..network import Network
from ..tensor import Tensor
from ._slicing import (
    binary,
    check_index_dtype,
    dims_of,
    index_tensor,
    int_constant,
    int_vector,
    slice_layer,
    weight_constant,
)
from ._util import axis, net_of
from .padding import expand
from .shape import reshape

__all__ = [
    "getitem", "slice", "gather", "take_along_dim", "index_select", "embedding", "one_hot", "scatter", "scatter_nd",
]  # fmt: skip

_pyslice = builtins.slice


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _expand(x: Tensor, index: Any) -> list[Any]:
    items = list(index) if isinstance(index, tuple) else [index]
    if sum(it is Ellipsis for it in items) > 1:
        raise ShapeError(f"getitem {x.name!r}: an index can only have a single ellipsis (...)")
    real = sum(it is not None and it is not Ellipsis for it in items)
    if real > x.ndim:
        raise ShapeError(f"getitem {x.name!r}: {real} indices for a tensor of rank {x.ndim} (shape {x.shape})")
    fill = [_pyslice(None)] * (x.ndim - real)
    # ``in`` would compare with ==, which on a Tensor adds a layer.
    for i, it in enumerate(items):
        if it is Ellipsis:
            return items[:i] + fill + items[i + 1 :]
    return items + fill


def _static_plan(item: Any, n: int, ax: int, what: str) -> tuple[int, int, int] | None:
    """(start, size, stride) of an int or slice on a static axis; None when it takes the whole axis."""
    if _is_int(item):
        if not -n <= item < n:
            raise ShapeError(f"{what}: index {item} is out of bounds for dim {ax} with size {n}")
        return (int(item) % n, 1, 1)
    start, stop, step = item.indices(n)
    plan = (start, len(range(start, stop, step)), step)
    return None if plan == (0, n, 1) else plan


def _as_slice(item: Any) -> builtins.slice:
    if _is_int(item):
        return _pyslice(item, item + 1 if item != -1 else None, 1)
    return item


def _dynamic_bounds(x: Tensor, axes: list[int], items: list[Any], base: str) -> tuple[Tensor, Tensor]:
    """Start and size tensors of Python slices on ``axes`` whose lengths are known at run time only."""
    net = x.net
    n = dims_of(x, axes, base)
    sl = [_as_slice(it) for it in items]
    steps = [s.step or 1 for s in sl]

    def lin(const: list[int], coef: list[int], what: str) -> Tensor:
        c = int_constant(net, const, f"{base}.{what}_const")
        if not any(coef):
            return c
        scaled = binary(net, n, int_constant(net, coef, f"{base}.{what}_coef"), "PROD", f"{base}.{what}_scaled")
        return binary(net, scaled, c, "SUM", f"{base}.{what}_raw")

    # Python clamps forward slices to [0, n] and backward ones to [-1, n - 1].
    lo = int_constant(net, [0 if s > 0 else -1 for s in steps], f"{base}.lo")
    hi = binary(net, n, lo, "SUM", f"{base}.hi")

    def ends(values: list[Any], default: list[tuple[int, int]], what: str) -> Tensor:
        const, coef = [], []
        for v, d in zip(values, default, strict=True):
            c, k = d if v is None else (0, 0) if isinstance(v, Tensor) else (v, int(v < 0))
            const.append(c)
            coef.append(k)
        raw = lin(const, coef, what)
        if any(isinstance(v, Tensor) for v in values):
            # A runtime bound counts from the end when negative, as Python's: v + n * (v < 0).
            vec = int_vector(net, [v if isinstance(v, Tensor) else 0 for v in values], f"getitem {x.name!r}",
                             f"{base}.{what}_runtime")  # fmt: skip
            neg = net.cast(binary(net, vec, int_constant(net, [0] * len(values), f"{base}.{what}_0"), "LESS",
                                  f"{base}.{what}_negative"), "int64")  # fmt: skip
            wrap = binary(net, neg, n, "PROD", f"{base}.{what}_wrap")
            raw = binary(net, binary(net, raw, vec, "SUM", f"{base}.{what}_plus"), wrap, "SUM", f"{base}.{what}_py")
        return binary(net, binary(net, raw, lo, "MAX", f"{base}.{what}_above"), hi, "MIN", f"{base}.{what}")

    # Python's defaults: start 0 (n-1 backwards), stop n (before 0 backwards).
    start = ends([s.start for s in sl], [(0, 0) if st > 0 else (-1, 1) for st in steps], "start")
    stop = ends([s.stop for s in sl], [(0, 1) if st > 0 else (-1, 0) for st in steps], "stop")
    span = binary(net, stop, start, "SUB", f"{base}.span")
    span = binary(
        net, span, int_constant(net, [1 if s > 0 else -1 for s in steps], f"{base}.dir"), "PROD", f"{base}.span_fwd"
    )
    span = binary(
        net, span, int_constant(net, [abs(s) - 1 for s in steps], f"{base}.round_up"), "SUM", f"{base}.span_up"
    )
    count = binary(net, span, int_constant(net, [abs(s) for s in steps], f"{base}.step"), "FLOOR_DIV", f"{base}.count")
    size = binary(net, count, int_constant(net, [0] * len(axes), f"{base}.zero"), "MAX", f"{base}.size")
    return start, size


def getitem(x: Tensor, index: Any, *, name: str | None = None) -> Tensor:
    """``x[index]`` with NumPy semantics: ints, slices (negative steps too), ``...``, ``None``,
    and at most one integer array or int Tensor (gathered along its axis).

    Example::

        y = x[:, 1:, ::-1]       # works with a dynamic batch axis
        z = x[..., 0, None]
    """
    what = f"getitem {x.name!r}"
    items = _expand(x, index)
    net = x.net
    sliced: dict[int, Any] = {}
    int_axes: list[int] = []
    new_axes: list[int] = []
    adv: tuple[int, Tensor | np.ndarray] | None = None
    ax = out = 0
    for it in items:
        if it is None:
            new_axes.append(out)
            out += 1
            continue
        if _is_int(it):
            sliced[ax] = it
            int_axes.append(ax)
        elif isinstance(it, _pyslice):
            if isinstance(it.step, Tensor):
                raise ShapeError(f"{what}: a slice step must be a Python int (TensorRT strides are build-time)")
            if it.step == 0:
                raise ShapeError(f"{what}: slice step cannot be zero")
            sliced[ax] = it
            out += 1
        elif isinstance(it, (Tensor, list, np.ndarray)):
            if adv is not None:
                raise ShapeError(f"{what}: only one integer-array index is supported, got a second at dim {ax}")
            adv = (ax, _array_index(it, x.shape[ax], ax, what))
            out += adv[1].ndim
        else:
            raise ShapeError(f"{what}: unsupported index {it!r} ({type(it).__name__}) at dim {ax}")
        ax += 1
    static: dict[int, tuple[int, int, int]] = {}
    dynamic = False
    for a, it in list(sliced.items()):
        n = x.shape[a]
        if isinstance(it, _pyslice) and (isinstance(it.start, Tensor) or isinstance(it.stop, Tensor)):
            dynamic = True  # runtime bounds: start and size are computed by layers
            continue
        if n == -1:
            full = isinstance(it, _pyslice) and it.start in (None, 0) and it.stop is None and it.step in (None, 1)
            if full:
                del sliced[a]
            elif _is_int(it) and it >= 0:
                static[a] = (int(it), 1, 1)
            else:
                dynamic = True
            continue
        plan = _static_plan(it, n, a, what)
        if plan is None:
            del sliced[a]
        else:
            static[a] = plan
    steps = [bool(sliced), adv is not None, bool(int_axes), bool(new_axes)]
    if not any(steps):
        return x
    lname = net.op_name(name, "getitem", x)
    last = max(i for i, s in enumerate(steps) if s)

    def done(layer: Any, step: int, kind: str) -> Tensor:
        if step == last:
            return net.register(layer, "getitem", lname, resolved=True)
        return net.register(layer, kind, f"{lname}.{kind}", scoped=False)

    y = x
    if sliced:
        axes = sorted(sliced)
        strides = [(_as_slice(sliced[a]).step or 1) for a in axes]
        if dynamic:
            start, size = _dynamic_bounds(x, axes, [sliced[a] for a in axes], lname)
            layer = slice_layer(x, axes, start, size, strides)
        else:
            layer = slice_layer(
                x, axes, [static[a][0] for a in axes], [static[a][1] for a in axes], [static[a][2] for a in axes]
            )
        y = done(layer, 0, "slice")
    k = 1
    if adv is not None:
        idx = adv[1] if isinstance(adv[1], Tensor) else int_constant(net, adv[1], f"{lname}.index")
        y = done(net.trt.add_gather(y.trt, idx.trt, adv[0]), 1, "gather")
        k = idx.ndim
    if int_axes:
        pos = [a if adv is None or a < adv[0] else a + k - 1 for a in int_axes]
        y = done(net.trt.add_squeeze(y.trt, int_constant(net, pos, f"{lname}.squeeze_axes").trt), 2, "squeeze")
    if new_axes:
        y = done(
            net.trt.add_unsqueeze(y.trt, int_constant(net, new_axes, f"{lname}.unsqueeze_axes").trt), 3, "unsqueeze"
        )
    return y


def _array_index(index: Any, n: int, ax: int, what: str) -> Tensor | np.ndarray:
    """A checked int Tensor, or an int array normalized into [0, n) when the axis is static."""
    if isinstance(index, Tensor):
        check_index_dtype(what, index)
        return index
    array = np.asarray(index)
    if array.dtype.kind not in "iu":
        raise ShapeError(
            f"{what}: array index at dim {ax} must hold integers, got dtype {array.dtype} "
            "(boolean masks are not supported)"
        )
    if array.size == 0:
        raise ShapeError(f"{what}: array index at dim {ax} is empty; TensorRT has no empty constants")
    if n != -1:
        bad = array[(array < -n) | (array >= n)]
        if bad.size:
            raise ShapeError(f"{what}: index {int(bad.flat[0])} is out of bounds for dim {ax} with size {n}")
        array = array % n
    return array.astype(np.int64)


def slice(  # noqa: A001
    x: Tensor,
    dim: int,
    start: int | Tensor | None = None,
    end: int | Tensor | None = None,
    step: int = 1,
    *,
    name: str | None = None,
) -> Tensor:
    """``x[..., start:end:step, ...]`` on axis ``dim`` (Python slice semantics, negative steps too).

    ``start`` and ``end`` may be runtime int scalars (Tensors), e.g. ``ops.slice(x, 1, 0, n // 2)``.
    """
    d = axis(dim, x.ndim, "slice dim")
    return getitem(x, (_pyslice(None),) * d + (_pyslice(start, end, step),), name=name or "slice")


def gather(x: Tensor, dim: int, index: Tensor | Any, *, name: str | None = None) -> Tensor:
    """``torch.gather``: ``out[i][j][k] = x[i][index[i][j][k]][k]`` for ``dim=1`` (TensorRT ELEMENT mode)."""
    net = x.net
    d = axis(dim, x.ndim, "gather dim")
    lname = net.op_name(name, "gather", x)
    idx = index_tensor(net, index, f"gather {x.name!r}", f"{lname}.index")
    if idx.ndim != x.ndim:
        raise ShapeError(
            f"gather {x.name!r}: index has rank {idx.ndim}, input has rank {x.ndim}; torch.gather needs equal ranks"
        )
    for i, (a, b) in enumerate(zip(idx.shape, x.shape, strict=True)):
        if i != d and -1 not in (a, b) and a > b:
            raise ShapeError(f"gather {x.name!r}: index shape {idx.shape} exceeds input shape {x.shape} in dim {i}")
    layer = net.trt.add_gather_v2(x.trt, idx.trt, _trt.load().GatherMode.ELEMENT)
    layer.axis = d
    return net.register(layer, "gather", lname, resolved=True)


def take_along_dim(x: Tensor, indices: Tensor | Any, dim: int | None = None, *, name: str | None = None) -> Tensor:
    """``torch.take_along_dim``: values of ``x`` at ``indices`` along ``dim`` (``None``: of the flattened ``x``).

    ``x`` and ``indices`` broadcast against each other on every other axis (size-1 axes
    expand), then it is ``gather``: TensorRT's ELEMENT-mode gather.

    Example::

        top = ops.take_along_dim(scores, ops.argsort(scores, dim=-1)[..., :5], dim=-1)
    """
    net = x.net
    lname = net.op_name(name, "take_along_dim", x)
    idx = index_tensor(net, indices, f"take_along_dim {x.name!r}", f"{lname}.index")
    if dim is None:
        return gather(reshape(x, (-1,), name=f"{lname}.flat"), 0, reshape(idx, (-1,), name=f"{lname}.flat_index"),
                      name=lname)  # fmt: skip
    if idx.ndim != x.ndim:
        raise ShapeError(
            f"take_along_dim {x.name!r}: indices have rank {idx.ndim}, input has rank {x.ndim}; they must match"
        )
    d = axis(dim, x.ndim, "take_along_dim dim")
    xs, js = list(x.shape), list(idx.shape)
    for i, (a, b) in enumerate(zip(xs, js, strict=True)):
        if i == d or a == b:
            continue
        if a == 1:
            xs[i] = b
        elif b == 1:
            js[i] = a
        else:
            raise ShapeError(
                f"take_along_dim {x.name!r}: input {x.shape} and indices {idx.shape} do not broadcast at dim {i}"
            )
    if tuple(js) != idx.shape:
        idx = expand(idx, tuple(js), name=f"{lname}.index_expand")
    if tuple(xs) != x.shape:
        xs[d] = -1
        x = expand(x, tuple(xs), name=f"{lname}.expand")
    return gather(x, d, idx, name=lname)


def index_select(x: Tensor, dim: int, index: Tensor | Any, *, name: str | None = None) -> Tensor:
    """``torch.index_select``: the slices ``index`` (1-D) along ``dim``; negative indices count from the end."""
    net = x.net
    d = axis(dim, x.ndim, "index_select dim")
    if not isinstance(index, Tensor) and np.ndim(index) != 1:
        raise ShapeError(f"index_select {x.name!r}: index must be 1-D, got shape {np.shape(index)}")
    lname = net.op_name(name, "index_select", x)
    idx = index_tensor(net, index, f"index_select {x.name!r}", f"{lname}.index")
    if idx.ndim != 1:
        raise ShapeError(f"index_select {x.name!r}: index must be 1-D, got shape {idx.shape}")
    return net.register(net.trt.add_gather(x.trt, idx.trt, d), "index_select", lname, resolved=True)


def embedding(indices: Tensor, weight: Any, *, name: str | None = None) -> Tensor:
    """``torch.nn.functional.embedding``: rows of ``weight`` (num_embeddings, dim) at ``indices``.

    The table is kept as weight ``<name>.weight`` in the compute dtype.

    Example::

        h = ops.embedding(token_ids, table, name="tok_emb")  # (batch, seq) -> (batch, seq, dim)
    """
    net = indices.net
    check_index_dtype(f"embedding {indices.name!r}", indices)
    if not isinstance(weight, Tensor) and np.ndim(weight) != 2:
        raise ShapeError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {np.shape(weight)}")
    lname = net.op_name(name, "embedding", indices)
    table = weight_constant(net, weight, f"{lname}.weight")
    return net.register(net.trt.add_gather(table.trt, indices.trt, 0), "embedding", lname, resolved=True)


def one_hot(indices: Tensor, num_classes: int, *, dtype: str = "int64", name: str | None = None) -> Tensor:
    """``torch.nn.functional.one_hot``: a new last axis of size ``num_classes``, 1 at the index."""
    net = indices.net
    check_index_dtype(f"one_hot {indices.name!r}", indices)
    if not _is_int(num_classes) or num_classes <= 0:
        raise ShapeError(
            f"one_hot {indices.name!r}: num_classes must be a positive int (no inference), got {num_classes!r}"
        )
    lname = net.op_name(name, "one_hot", indices)
    values = _named_constant(net, np.asarray([0, 1]), f"{lname}.values", dtype)
    depth = _named_constant(net, np.asarray(num_classes), f"{lname}.depth", "int32")
    layer = net.trt.add_one_hot(indices.trt, values.trt, depth.trt, -1)
    return net.register(layer, "one_hot", lname, resolved=True)


def _named_constant(net: Network, array: np.ndarray, lname: str, dtype: str) -> Tensor:
    array = np.asarray(array, dtype=dtypes.to_numpy(dtype))
    layer = net.trt.add_constant(array.shape, net.keep(array, lname))
    return net.register(layer, "constant", lname, scoped=False)


def scatter(x: Tensor, dim: int, index: Tensor | Any, src: Tensor | float, *, name: str | None = None) -> Tensor:
    """``torch.scatter`` (no reduce): a copy of ``x`` with ``src`` written at ``index`` along ``dim``.

    A scalar ``src`` needs a static ``index`` shape. Duplicate indices are undefined in TensorRT.
    """
    net = net_of(x, src)
    d = axis(dim, x.ndim, "scatter dim")
    lname = net.op_name(name, "scatter", x)
    idx = index_tensor(net, index, f"scatter {x.name!r}", f"{lname}.index")
    if idx.ndim != x.ndim:
        raise ShapeError(f"scatter {x.name!r}: index has rank {idx.ndim}, input has rank {x.ndim}")
    if not isinstance(src, Tensor):
        if -1 in idx.shape:
            raise ShapeError(f"scatter {x.name!r}: a scalar src needs a static index shape, got {idx.shape}")
        src = _named_constant(net, np.full(idx.shape, src), f"{lname}.src", x.dtype)
    elif tuple(src.shape) != tuple(idx.shape) and -1 not in src.shape + idx.shape:
        # TensorRT reads updates in the index's shape; torch allows a larger src, so crop it.
        src = getitem(src, tuple(_pyslice(0, n) for n in idx.shape))
    if src.dtype != x.dtype:
        src = net.cast(src, x.dtype)
    layer = net.trt.add_scatter(x.trt, idx.trt, src.trt, _trt.load().ScatterMode.ELEMENT)
    layer.axis = d
    return net.register(layer, "scatter", lname, resolved=True)


def scatter_nd(x: Tensor, indices: Tensor | Any, updates: Tensor, *, name: str | None = None) -> Tensor:
    """ONNX ScatterND: ``out[indices[i]] = updates[i]``; ``indices`` has shape (..., k), k <= rank."""
    net = net_of(x, updates)
    lname = net.op_name(name, "scatter_nd", x)
    idx = index_tensor(net, indices, f"scatter_nd {x.name!r}", f"{lname}.index")
    k = idx.shape[-1] if idx.ndim else -1
    if k == -1 or k > x.ndim:
        raise ShapeError(f"scatter_nd {x.name!r}: indices shape {idx.shape} needs a static last dim <= rank {x.ndim}")
    want = idx.shape[:-1] + x.shape[k:]
    if len(updates.shape) != len(want) or any(
        a != b and -1 not in (a, b) for a, b in zip(updates.shape, want, strict=True)
    ):
        raise ShapeError(f"scatter_nd {x.name!r}: updates have shape {updates.shape}, expected {want}")
    layer = net.trt.add_scatter(x.trt, idx.trt, net.cast(updates, x.dtype).trt, _trt.load().ScatterMode.ND)
    return net.register(layer, "scatter_nd", lname, resolved=True)
