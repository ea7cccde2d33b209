"""Keras MultiHeadAttention (self- and cross-attention, attention masks, causal masks).

Keras' projections are EinsumDense kernels ``(E, heads, head_dim)`` with biases
``(heads, head_dim)`` and an output kernel ``(heads, head_dim, E_out)``. Each
becomes one matrix multiply on the reshaped kernel; the query is scaled by
``1/sqrt(key_dim)`` before the scores, as Keras does, and masked scores are set
to -1e9 before the softmax (Keras' Softmax layer with a mask).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..tensor import Tensor
from .graph import Call, KTensor, find_weight
from .registry import converts


def _take(layer: Call, part: str, leaf: str) -> np.ndarray:
    return layer.take_key(find_weight(layer, part, leaf))


def _project(layer: Call, x: Tensor, part: str, heads: int, dim: int, use_bias: bool) -> Tensor:
    k = _take(layer, part, "kernel")  # (E, H, D)
    if k.shape[1:] != (heads, dim):
        raise layer.error(f"{part} kernel has shape {k.shape}; expected (features, {heads}, {dim})")
    with layer.net.scope(part):
        y = ops.matmul(x, np.ascontiguousarray(k.reshape(k.shape[0], heads * dim), np.float32))
        if use_bias:
            y = ops.add(y, _take(layer, part, "bias").reshape(-1).astype(np.float32))
        seq = x.shape[1]
        return ops.permute(ops.reshape(y, (-1, seq, heads, dim)), (0, 2, 1, 3))  # (B, H, L, D)


@converts("MultiHeadAttention")
def multi_head_attention(
    layer: Call, query: KTensor, value: KTensor | None = None, key: KTensor | None = None, **kwargs: Any
) -> KTensor:
    c = layer.config
    heads, kd = int(c["num_heads"]), int(c["key_dim"])
    vd = int(c.get("value_dim") or kd)
    use_bias = bool(c.get("use_bias", True))
    if c.get("attention_axes") not in (None, [1], (1,)):
        raise layer.error(f"attention_axes {c.get('attention_axes')} is not supported (the sequence axis only)")
    value = kwargs.pop("value", value)
    key = kwargs.pop("key", key)
    if kwargs.get("return_attention_scores"):
        raise layer.error("return_attention_scores=True is not supported")
    q_in = layer.logical(query)
    v_in = q_in if value is None else layer.logical(value)
    k_in = v_in if key is None else layer.logical(key)
    if q_in.ndim != 3:
        raise layer.error(f"query must be (batch, seq, features), got shape {q_in.shape}")
    q = _project(layer, q_in, "query", heads, kd, use_bias)
    k = _project(layer, k_in, "key", heads, kd, use_bias)
    v = _project(layer, v_in, "value", heads, vd, use_bias)
    q = ops.mul(q, float(1.0 / np.sqrt(kd)))
    scores = ops.matmul(q, ops.transpose(k, 2, 3))  # (B, H, Lq, Lk)
    lq, lk = q_in.shape[1], k_in.shape[1]
    keep = None
    mask = kwargs.get("attention_mask")
    if isinstance(mask, KTensor):
        m = layer.logical(mask)
        m = m if m.dtype == "bool" else ops.greater(m, 0.5)
        keep = ops.unsqueeze(m, 1)  # (B, 1, Lq, Lk)
    if kwargs.get("use_causal_mask"):
        causal = np.tril(np.ones((lq, lk), bool))[None, None]
        cm = layer.net.constant(causal, "causal_mask")
        keep = cm if keep is None else ops.logical_and(keep, cm)
    if keep is not None:
        scores = ops.where(keep, scores, -3e4 if layer.net.compute_dtype == "float16" else -1e9)
    probs = ops.softmax(scores, -1)
    out = ops.matmul(probs, v)  # (B, H, Lq, Dv)
    out = ops.reshape(ops.permute(out, (0, 2, 1, 3)), (-1, lq, heads * vd))
    wo = _take(layer, "attention_output", "kernel")  # (H, Dv, E_out)
    with layer.net.scope("attention_output"):
        y = ops.matmul(out, np.ascontiguousarray(wo.reshape(heads * vd, -1), np.float32))
        if use_bias:
            y = ops.add(y, _take(layer, "attention_output", "bias").reshape(-1).astype(np.float32))
    return KTensor(y)
