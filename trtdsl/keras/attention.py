"""Keras MultiHeadAttention (self- and cross-attention, attention masks, causal masks), Attention, AdditiveAttention.

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


def _bool(t: Tensor) -> Tensor:
    return t if t.dtype == "bool" else ops.not_equal(t, 0.0)  # Keras casts masks to bool: nonzero attends


def _keep(layer: Call, query: KTensor, value: KTensor | None, key: KTensor | None, lq: int, lk: int,
          kwargs: dict) -> Tensor | None:  # fmt: skip
    """The (B or 1, 1, Lq, Lk) boolean mask of Keras' ``_compute_attention_mask``, or None.

    The Keras masks of the query (B, Lq), value and key (B, Lk: an Embedding's mask_zero, a
    Masking layer) AND the attention mask, the causal mask and the sliding-window band.
    """
    c = layer.config
    parts: list[Tensor] = []
    if query.mask is not None:
        parts.append(ops.unsqueeze(ops.unsqueeze(_bool(query.mask), -1), 1))  # (B, 1, Lq, 1)
    for t in (value, key):
        if t is not None and t.mask is not None:
            parts.append(ops.unsqueeze(ops.unsqueeze(_bool(t.mask), 1), 1))  # (B, 1, 1, Lk)
    _check_mask_size(layer, lq, lk)
    rows, cols = np.arange(lq)[:, None], np.arange(lk)[None, :]
    band = np.ones((lq, lk), bool)
    if kwargs.get("use_causal_mask"):
        band &= rows >= cols
    if c.get("sliding_window") is not None:
        band &= np.abs(rows - cols) < int(c["sliding_window"])
    if not band.all():
        parts.append(layer.net.constant(band[None, None], "band_mask"))
    mask = kwargs.get("attention_mask")
    if isinstance(mask, KTensor):
        m = _bool(layer.logical(mask))
        parts.append(ops.unsqueeze(m, 1) if m.ndim == 3 else m)  # (B, Lq, Lk) -> (B, 1, Lq, Lk)
    if not parts:
        return None
    keep = parts[0]
    for p in parts[1:]:
        keep = ops.logical_and(keep, p)
    return keep


@converts("MultiHeadAttention")
def multi_head_attention(
    layer: Call, query: KTensor, value: KTensor | None = None, key: KTensor | None = None, **kwargs: Any
) -> KTensor | list[KTensor]:
    c = layer.config
    heads, kd = int(c["num_heads"]), int(c["key_dim"])
    vd = int(c.get("value_dim") or kd)
    use_bias = bool(c.get("use_bias", True))
    if c.get("attention_axes") not in (None, [1], (1,)):
        raise layer.error(f"attention_axes {c.get('attention_axes')} is not supported (the sequence axis only)")
    value = kwargs.pop("value", value)
    key = kwargs.pop("key", key)
    q_in = layer.logical(query)
    v_in = q_in if value is None else layer.logical(value)
    k_in = v_in if key is None else layer.logical(key)
    if q_in.ndim != 3:
        raise layer.error(
            f"query must be (batch, seq, features), got shape {q_in.shape}: attention over several axes "
            "(attention_axes) is not supported"
        )
    q = _project(layer, q_in, "query", heads, kd, use_bias)
    k = _project(layer, k_in, "key", heads, kd, use_bias)
    v = _project(layer, v_in, "value", heads, vd, use_bias)
    q = ops.mul(q, float(1.0 / np.sqrt(kd)))
    scores = ops.matmul(q, ops.transpose(k, 2, 3))  # (B, H, Lq, Lk)
    lq, lk = q_in.shape[1], k_in.shape[1]
    keep = _keep(layer, query, value, key, lq, lk, kwargs)
    if keep is not None:
        scores = ops.where(keep, scores, -3e4 if layer.net.compute_dtype == "float16" else -1e9)
    probs = ops.softmax(scores, -1)
    out = ops.matmul(probs, v)  # (B, H, Lq, Dv)
    out = ops.reshape(ops.permute(out, (0, 2, 1, 3)), (-1, lq, heads * vd))
    if c.get("use_gate"):  # Keras: output_dense(attention * sigmoid(gate_dense(query)))
        gate = _project(layer, q_in, "gate", heads, vd, use_bias)
        gate = ops.reshape(ops.permute(ops.sigmoid(gate), (0, 2, 1, 3)), (-1, lq, heads * vd))
        out = ops.mul(out, gate)
    wo = _take(layer, "attention_output", "kernel")  # (H, Dv, *output_shape)
    out_shape = tuple(int(d) for d in wo.shape[2:])
    with layer.net.scope("attention_output"):
        y = ops.matmul(out, np.ascontiguousarray(wo.reshape(heads * vd, -1), np.float32))
        if use_bias:
            y = ops.add(y, _take(layer, "attention_output", "bias").reshape(-1).astype(np.float32))
        if len(out_shape) != 1:
            y = ops.reshape(y, (-1, lq, *out_shape))
    result = KTensor(y, mask=query.mask)
    if kwargs.get("return_attention_scores"):
        return [result, KTensor(probs)]
    return result


@converts("Attention", "AdditiveAttention")
def attention(
    layer: Call, inputs: list[KTensor], mask: Any = None, return_attention_scores: bool = False,
    use_causal_mask: bool = False, **_: Any,
) -> KTensor | list[KTensor]:  # fmt: skip
    """Luong (``score_mode`` 'dot' or 'concat') and Bahdanau attention over [query, value(, key)]."""
    c = layer.config
    items = inputs if isinstance(inputs, list) else [inputs]
    if len(items) not in (2, 3):
        raise layer.error(f"expects [query, value] or [query, value, key], got {len(items)} inputs")
    q, v = layer.logical(items[0]), layer.logical(items[1])
    k = layer.logical(items[2]) if len(items) == 3 else v
    masks = mask if isinstance(mask, list) else [x.mask for x in items]
    q_mask, v_mask = (m.t if isinstance(m, KTensor) else m for m in masks[:2])
    additive = layer.layer.class_name == "AdditiveAttention"
    mode = "concat" if additive else str(c.get("score_mode", "dot"))
    if mode == "dot":
        scores = ops.matmul(q, ops.transpose(k, 1, 2))  # (B, Tq, Tv)
        if c.get("use_scale"):
            scores = ops.mul(scores, float(layer.take("scale")))
    elif mode == "concat":
        s = ops.add(ops.unsqueeze(q, 2), ops.unsqueeze(k, 1))  # (B, Tq, Tv, D)
        if additive:  # sum(scale * tanh(q + k)), scale per feature (keras AdditiveAttention)
            t = ops.tanh(s)
            scores = ops.sum(ops.mul(t, layer.take("scale").astype(np.float32)) if c.get("use_scale", True) else t, -1)
        else:  # concat_score_weight * sum(tanh(scale * (q + k)))
            s = ops.mul(s, float(layer.take("scale"))) if c.get("use_scale") else s
            scores = ops.mul(ops.sum(ops.tanh(s), -1), float(layer.take("concat_score_weight")))
    else:
        raise layer.error(f"score_mode {mode!r} is not 'dot' or 'concat'")
    keep = None
    if v_mask is not None:
        keep = ops.unsqueeze(_bool(v_mask), 1)  # (B, 1, Tv)
    if use_causal_mask:
        tq, tv = q.shape[1], k.shape[1]
        _check_mask_size(layer, tq, tv)
        causal = layer.net.constant(np.tril(np.ones((tq, tv), bool))[None], "causal_mask")
        keep = causal if keep is None else ops.logical_and(keep, causal)
    if keep is not None:  # Keras subtracts 1e9 (65504 in float16) from masked scores
        big = 65504.0 if layer.net.compute_dtype == "float16" else 1e9
        scores = ops.where(keep, scores, ops.sub(scores, big))
    weights = ops.softmax(scores, -1)
    out = ops.matmul(weights, v)
    if q_mask is not None:
        out = ops.where(ops.unsqueeze(_bool(q_mask), -1), out, 0.0)
    result = KTensor(out, mask=q_mask)
    return [result, KTensor(weights)] if return_attention_scores else result


# The causal and sliding-window masks are constants of (query length, key length): a config's sequence
# length alone sizes them, so a few bytes of config could ask for any amount of memory.
MAX_STATIC_MASK = 1 << 28  # elements: 256 MiB of bool, a 16k x 16k mask


def _check_mask_size(layer: Any, lq: int, lk: int) -> None:
    if lq * lk > MAX_STATIC_MASK:
        raise layer.error(
            f"its causal/sliding-window mask would be a constant of {lq} x {lk} = {lq * lk:,} elements, over "
            f"{MAX_STATIC_MASK:,}: give the inputs shorter sequence lengths (input_shapes=...)"
        )
