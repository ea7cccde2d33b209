"""Linear algebra: ``linear`` (torch.nn.Linear), ``matmul``, ``bmm`` and ``einsum``.

``IMatrixMultiplyLayer`` needs both operands to have the same number of batch
axes; these ops prepend size-1 axes so that NumPy/PyTorch broadcasting works,
and use ``MatrixOperation.VECTOR`` for 1-D operands as ``torch.matmul`` does.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from .. import _trt, dtypes
from ..errors import ShapeError
from ..network import Network
from ..tensor import Tensor
from ._util import TensorLike, as_tensor, net_of, unsqueeze_to

__all__ = ["linear", "matmul", "bmm", "einsum"]


def _weight_constant(net: Network, array: np.ndarray, shape: tuple[int, ...], full_name: str) -> Tensor:
    """A constant named ``full_name`` (already scoped) holding ``array`` in the compute dtype, viewed as ``shape``."""
    dt = net.compute_dtype
    full_name = net.unique_name(full_name, scoped=False)
    if dtypes.TABLE[dt].narrow:  # bfloat16: typed weights, no cast layer
        return net.narrow_constant(array, dt, full_name, shape)
    stored = array.astype(dtypes.to_numpy(dt), copy=False)
    layer = net.trt.add_constant(shape, net.keep(stored, full_name))
    return net.register(layer, "constant", full_name, resolved=True)


def linear(x: Tensor, weight: TensorLike, bias: TensorLike | None = None, *, name: str | None = None) -> Tensor:
    """``x @ weight.T + bias`` with ``weight`` laid out (out_features, in_features) like torch.nn.Linear.

    The weight is stored as given (one constant named ``<layer>.weight``) and
    transposed by the matrix multiply, so refit and inspection see the
    checkpoint's own layout. ``x`` may have any number of leading axes.

    Example::

        with net.scope("fc1"):
            h = ops.linear(x, sd["fc1.weight"], sd["fc1.bias"])
    """
    net = x.net
    trt = _trt.load()
    x = net.to_compute(x)
    if x.ndim == 0:
        raise ShapeError(f"linear: input {x.name!r} is a scalar; expected (..., in_features)")
    lname = net.op_name(name, "linear", x)
    in_features = x.shape[-1]
    if isinstance(weight, Tensor):
        w = net.to_compute(weight)
        if w.ndim != 2 or (in_features >= 0 and w.shape[1] >= 0 and w.shape[1] != in_features):
            raise ShapeError(
                f"linear {lname!r}: weight tensor {w.name!r} has shape {w.shape}; expected (out, in) = "
                f"(out, {in_features}) for input {x.name!r} {x.shape}"
            )
        out_features = w.shape[0]
        w = unsqueeze_to(w, max(x.ndim, 2))
    else:
        warr = np.asarray(weight)
        if warr.ndim != 2 or (in_features >= 0 and warr.shape[1] != in_features):
            hint = ""
            if warr.ndim == 2 and warr.shape[0] == in_features:
                hint = (
                    f" It looks like a Keras Dense kernel laid out (in, out) = {warr.shape}: "
                    "use trtdsl.weights.layout.keras_dense(kernel)."
                )
            raise ShapeError(
                f"linear {lname!r}: weight of shape {warr.shape} does not fit input {x.name!r} {x.shape} with "
                f"{in_features} features; expected (out, in) = (out_features, {in_features}) like "
                f"torch.nn.Linear.weight.{hint}"
            )
        out_features = warr.shape[0]
        w = _weight_constant(net, warr, (1,) * (x.ndim - 2) + warr.shape, lname + ".weight")
    op0 = trt.MatrixOperation.VECTOR if x.ndim == 1 else trt.MatrixOperation.NONE
    layer = net.trt.add_matrix_multiply(x.trt, op0, w.trt, trt.MatrixOperation.TRANSPOSE)
    if bias is None:
        return net.register(layer, "linear", lname, resolved=True)
    y = net.register(layer, "matmul", lname + ".matmul", scoped=False)
    if isinstance(bias, Tensor):
        b = unsqueeze_to(net.to_compute(bias), y.ndim)
    else:
        barr = np.asarray(bias).reshape(-1)
        if out_features >= 0 and barr.shape != (out_features,):
            raise ShapeError(
                f"linear {lname!r}: bias of shape {np.shape(bias)} does not fit {out_features} output features; "
                f"expected ({out_features},)"
            )
        b = _weight_constant(net, barr, (1,) * (y.ndim - 1) + barr.shape, lname + ".bias")
    add = net.trt.add_elementwise(y.trt, b.trt, trt.ElementWiseOperation.SUM)
    return net.register(add, "linear", lname, resolved=True)


def _check_batch(a: Tensor, b: Tensor, na: int, nb: int, what: str) -> None:
    for i, (da, db) in enumerate(zip(a.shape[:na], b.shape[:nb], strict=True)):
        if da != db and 1 not in (da, db) and -1 not in (da, db):
            raise ShapeError(
                f"{what}: batch axes of {a.name!r} {a.shape} and {b.name!r} {b.shape} do not broadcast "
                f"(axis {i}: {da} vs {db})"
            )


def matmul(
    a: TensorLike,
    b: TensorLike,
    *,
    transpose_a: bool = False,
    transpose_b: bool = False,
    name: str | None = None,
) -> Tensor:
    """Matrix product with ``torch.matmul`` semantics: batch axes broadcast, 1-D operands are vectors.

    ``transpose_a``/``transpose_b`` swap the last two axes of a matrix operand
    inside the layer (no separate transpose layer).

    Example::

        scores = ops.matmul(q, k, transpose_b=True)  # (B, H, L, D) x (B, H, S, D) -> (B, H, L, S)
    """
    net = net_of(a, b)
    trt = _trt.load()
    what = f"matmul {name!r}" if name else "matmul"
    # An array operand is stored with the other operand's batch rank, so no unsqueeze layer follows it.
    rank_a = a.ndim if isinstance(a, Tensor) else np.ndim(a)
    rank_b = b.ndim if isinstance(b, Tensor) else np.ndim(b)
    batch = max(rank_a - min(rank_a, 2), rank_b - min(rank_b, 2))
    like = a if isinstance(a, Tensor) else b
    operands = []
    for value, arg in ((a, "a"), (b, "b")):
        v = value
        if not isinstance(v, Tensor):
            v = np.asarray(v)
            if v.ndim >= 2:
                v = v.reshape((1,) * (batch + 2 - v.ndim) + v.shape)
        operands.append(net.to_compute(as_tensor(net, v, like, name=f"{name or 'matmul'}.{arg}")))
    ta, tb = operands
    for t in (ta, tb):
        if t.ndim == 0:
            raise ShapeError(f"{what}: operand {t.name!r} is a scalar; matmul needs at least 1-D operands")
        if not dtypes.is_float(t.dtype):
            raise ShapeError(f"{what}: operand {t.name!r} has dtype {t.dtype}; TensorRT multiplies float tensors")
    core_a, core_b = min(ta.ndim, 2), min(tb.ndim, 2)
    ka = ta.shape[-1] if ta.ndim == 1 or not transpose_a else ta.shape[-2]
    kb = tb.shape[0] if tb.ndim == 1 else (tb.shape[-1] if transpose_b else tb.shape[-2])
    if ka != kb and ka >= 0 and kb >= 0:
        raise ShapeError(
            f"{what}: contraction sizes differ: {ta.name!r} {ta.shape}{' (transposed)' * transpose_a} has {ka}, "
            f"{tb.name!r} {tb.shape}{' (transposed)' * transpose_b} has {kb}"
        )
    ta, tb = unsqueeze_to(ta, batch + core_a), unsqueeze_to(tb, batch + core_b)
    _check_batch(ta, tb, batch, batch, what)
    mo = trt.MatrixOperation

    def op(t: Tensor, transpose: bool) -> Any:
        return mo.VECTOR if t.ndim == batch + 1 else (mo.TRANSPOSE if transpose else mo.NONE)

    layer = net.trt.add_matrix_multiply(ta.trt, op(ta, transpose_a), tb.trt, op(tb, transpose_b))
    return net.register(layer, "matmul", name)


def bmm(a: Tensor, b: Tensor, *, name: str | None = None) -> Tensor:
    """Batched matrix product of (B, N, K) and (B, K, M), as ``torch.bmm`` (no broadcasting)."""
    what = f"bmm {name!r}" if name else "bmm"
    for t in (a, b):
        if not isinstance(t, Tensor) or t.ndim != 3:
            raise ShapeError(f"{what}: expected 3-D (batch, n, k) tensors, got {getattr(t, 'shape', np.shape(t))}")
    if a.shape[0] != b.shape[0] and a.shape[0] >= 0 and b.shape[0] >= 0:
        raise ShapeError(f"{what}: batch sizes differ: {a.name!r} {a.shape} vs {b.name!r} {b.shape}")
    return matmul(a, b, name=name or "bmm")


def _einsum_equation(equation: str, ranks: list[int], what: str) -> str:
    eq = equation.replace(" ", "")
    if "..." in eq:
        raise ShapeError(
            f"{what} {equation!r}: TensorRT's Einsum does not support ellipsis ('...'); name every axis with a letter"
        )
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ShapeError(f"{what} {equation!r}: {len(terms)} operand terms for {len(ranks)} operands")
    for i, (term, rank) in enumerate(zip(terms, ranks, strict=True)):
        if not all(c in string.ascii_letters for c in term):
            raise ShapeError(f"{what} {equation!r}: operand {i} term {term!r} may only contain letters")
        if len(term) != rank:
            raise ShapeError(f"{what} {equation!r}: operand {i} term {term!r} names {len(term)} axes, it has {rank}")
        repeated = sorted({c for c in term if term.count(c) > 1})
        if repeated:
            raise ShapeError(
                f"{what} {equation!r}: operand {i} repeats subscript(s) {repeated} (a diagonal), which "
                "TensorRT's Einsum does not support; take the diagonal with another op first"
            )
    letters = sorted(set(lhs.replace(",", "") + rhs) - {"-", ">"})
    if all(c.islower() for c in letters):
        return eq
    # TensorRT takes lower-case subscripts only; rename upper-case ones to unused letters.
    free = iter(c for c in string.ascii_lowercase if c not in letters)
    mapping = {c: (c if c.islower() else next(free, None)) for c in letters}
    if None in mapping.values():
        raise ShapeError(f"{what} {equation!r}: more than 26 distinct subscripts")
    return "".join(mapping.get(c, c) for c in lhs) + arrow + "".join(mapping.get(c, c) for c in rhs)


def einsum(equation: str, *operands: TensorLike, name: str | None = None) -> Tensor:
    """Einstein summation, as ``torch.einsum(equation, *operands)``, in one Einsum layer.

    TensorRT supports neither ellipsis nor repeated subscripts in one operand
    (diagonals); both raise a ``ShapeError``.

    Example::

        attn = ops.einsum("bhld,bhsd->bhls", q, k)
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    net = net_of(*operands)
    like = next(o for o in operands if isinstance(o, Tensor))
    tensors = [net.to_compute(as_tensor(net, o, like)) for o in operands]
    eq = _einsum_equation(equation, [t.ndim for t in tensors], f"einsum {name!r}" if name else "einsum")
    layer = net.trt.add_einsum([t.trt for t in tensors], eq)
    if layer is None:
        raise ShapeError(
            f"einsum {equation!r}: TensorRT rejected the equation for operand shapes {[t.shape for t in tensors]}"
        )
    return net.register(layer, "einsum", name)
