"""Matrix multiply and einsum layers, through BLAS (``np.matmul``/``np.einsum``)."""

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


@interprets("matrix_multiply")
def matrix_multiply(node: Node, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    op0, op1 = node.layer.op0.name, node.layer.op1.name
    out = np.matmul(_operand(a, op0, True), _operand(b, op1, False))
    if op1 == "VECTOR":
        out = out[..., 0]
    if op0 == "VECTOR":
        out = out[..., 0, :] if op1 != "VECTOR" else out[..., 0]
    return out


@interprets("einsum")
def einsum(node: Node, *operands: np.ndarray) -> np.ndarray:
    return np.einsum(node.layer.equation, *operands, optimize=len(operands) > 1)
