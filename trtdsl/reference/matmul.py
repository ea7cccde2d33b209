"""Matrix multiply and einsum layers, through BLAS (``np.matmul``/``np.einsum``).

Fast mode only: ``np.matmul`` runs BLAS only on matrices with one unit stride
(C or Fortran order) and falls back to a scalar loop otherwise, 1000x slower
(measured: the strided (1, 12, 197, 64) attention scores of ViT-B/16, 750 ms
against 0.6 ms after a copy). So operands whose matrices BLAS cannot read are
copied first; and a stack of matrices against one shared matrix (a projection
of (seq, batch, dim) activations, as torch's attention exports it) is one GEMM
of all the rows, not one per row. The products are the same dot products.
"""

from __future__ import annotations

import numpy as np

from .registry import Node, interprets


def _operand(x: np.ndarray, op: str, first: bool) -> np.ndarray:
    # VECTOR operands become one-row (first) or one-column (second) matrices, as
    # NvInfer.h's MatrixOperation::kVECTOR describes; the extra axis is dropped after.
    if op == "TRANSPOSE":
        return np.swapaxes(x, -1, -2)
    if op == "VECTOR":
        return x[..., None, :] if first else x[..., :, None]
    return x


def _blasable(m: np.ndarray) -> bool:
    """Whether ``np.matmul`` hands each matrix of ``m`` to BLAS: a plain matrix, or a stack of
    tightly packed C- or Fortran-order ones (measured: a stack of row-strided matrices is not)."""
    if m.ndim <= 2 or m.size == 0:
        return True
    (rows, cols), (s0, s1), size = m.shape[-2:], m.strides[-2:], m.itemsize
    return (s1 == size and s0 == cols * size) or (s0 == size and s1 == rows * size)


def _fast_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.ndim > 2 and b.ndim >= 2 and all(d == 1 for d in b.shape[:-2]) and a.shape[-1] == b.shape[-2]:
        # One shared right matrix: all rows of the stack in one GEMM.
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        rows = a.reshape(-1, a.shape[-1])
        return np.matmul(rows, b.reshape(b.shape[-2:])).reshape(*batch, a.shape[-2], b.shape[-1])
    if a.dtype.kind == "f" and a.dtype == b.dtype:
        a = a if _blasable(a) else np.ascontiguousarray(a)
        b = b if _blasable(b) else np.ascontiguousarray(b)
    return np.matmul(a, b)


@interprets("matrix_multiply")
def matrix_multiply(node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    op0, op1 = node.memo("ops", lambda: (node.layer.op0.name, node.layer.op1.name))
    matmul = _fast_matmul if node.fast else np.matmul
    out = matmul(_operand(a, op0, True), _operand(b, op1, False))
    if op1 == "VECTOR":
        out = out[..., 0]
    if op0 == "VECTOR":
        out = out[..., 0, :] if op1 != "VECTOR" else out[..., 0]
    return out


@interprets("einsum")
def einsum(node: Node, *operands: np.ndarray) -> np.ndarray:
    return np.einsum(node.layer.equation, *operands, optimize=len(operands) > 1)
