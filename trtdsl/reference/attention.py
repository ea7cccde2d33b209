"""Reference implementations: IAttention (its two boundary layers), rotary embedding, KV-cache update.

An ``IAttention`` appears in the network as two layers: ``ATTENTION_INPUT`` reads
query, key, value and the optional mask, normalization-quantize scale, query
lengths and key/value lengths (inputs 0-6, NvInfer.h ``IAttentionInputLayer``);
``ATTENTION_OUTPUT`` reads the input layer's one output and gives the result.
The whole computation is done at the input boundary, NvInfer.h's diagram:

    S = Q·Kᵀ (no scale), masked; P = softmax(S) (or S for norm_op NONE); out = P·V

with query head h reading key/value head ``h // (Hq / Hkv)`` (grouped-query
attention). A bool mask keeps True positions, any other mask is added to S; the
causal kinds keep ``j <= i`` (upper left) or ``j <= i + Skv - Sq`` (lower right);
``key_value_lengths[b]`` keeps keys ``j < length``. The packed (NHD) forms are
unpacked per batch item with their cumulative lengths.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import InterpreterError, UnsupportedLayerError
from .quant import quantize_values
from .registry import Node, interprets


def _keep(node: Node, sq: int, skv: int, mask: np.ndarray | None, kv_len: int | None) -> np.ndarray | None:
    """The boolean 'may attend' mask (broadcastable to (H, Sq, Skv)) of one batch item, or None."""
    kind = node.layer.attention.causal_kind.name
    keep = None
    if kind != "NONE":
        i, j = np.arange(sq)[:, None], np.arange(skv)[None, :]
        keep = j <= i if kind == "UPPER_LEFT" else j <= i + (skv - sq)
    if mask is not None and mask.dtype == bool:
        keep = mask if keep is None else keep & mask
    if kv_len is not None and kv_len < skv:
        cut = np.arange(skv) < kv_len
        keep = cut if keep is None else keep & cut
    return keep


def _attend(node: Node, q: np.ndarray, k: np.ndarray, v: np.ndarray, mask, kv_len, nq_scale) -> np.ndarray:
    """One batch item: q (Hq, Sq, D), k/v (Hkv, Skv, D), mask broadcastable to (Hq, Sq, Skv)."""
    hq, hkv = q.shape[0], k.shape[0]
    if hq % hkv:
        raise UnsupportedLayerError(f"attention {node.name!r}: {hq} query heads are no multiple of {hkv} key heads")
    if hq != hkv:
        k, v = np.repeat(k, hq // hkv, axis=0), np.repeat(v, hq // hkv, axis=0)
    s = np.matmul(q, np.swapaxes(k, -1, -2))
    if mask is not None and mask.dtype != bool:
        s = s + mask
    keep = _keep(node, q.shape[1], k.shape[1], mask, kv_len)
    attn = node.layer.attention
    if attn.norm_op.name == "SOFTMAX":
        if keep is not None:
            s = np.where(keep, s, -np.inf)
        with np.errstate(invalid="ignore"):  # a row that keeps no key is NaN, as in torch
            s = s - np.max(s, axis=-1, keepdims=True)
            p = np.exp(s)
            p /= np.sum(p, axis=-1, keepdims=True)
    else:
        if keep is not None:
            raise UnsupportedLayerError(
                f"attention {node.name!r}: norm_op NONE with a bool, causal or length mask is not documented in "
                "NvInfer.h (what a masked score becomes without a softmax); the interpreter refuses to guess"
            )
        p = s
    if nq_scale is not None:
        p = _quantize(node, p, nq_scale)
    return np.matmul(p.astype(v.dtype, copy=False), v)


def _quantize(node: Node, p: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The normalization output quantized to int8/fp8 with ``scale`` and read back (Q then DQ)."""
    to = dtypes.from_trt(node.layer.attention.normalization_quantize_to_type)
    if to not in ("int8", "fp8"):
        raise UnsupportedLayerError(f"attention {node.name!r}: normalization quantized to {to} is not implemented")
    s = np.float32(np.asarray(scale).reshape(-1)[0])
    return quantize_values(p / s, to).astype(np.float32) * s


def _rows(lengths: np.ndarray | None, what: str, node: Node) -> np.ndarray:
    if lengths is None:
        raise UnsupportedLayerError(f"attention {node.name!r}: packed {what} form needs its cumulative lengths input")
    return np.asarray(lengths, np.int64).reshape(-1)


@interprets("attention_input", fresh=True)
def attention_input(
    node: Node,
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    mask: np.ndarray | None = None,
    nq_scale: np.ndarray | None = None,
    q_lengths: np.ndarray | None = None,
    kv_lengths: np.ndarray | None = None,
) -> np.ndarray:
    attn = node.layer.attention
    packed_q = attn.query_form.name == "PACKED_NHD"
    packed_kv = attn.key_value_form.name == "PACKED_NHD"
    if packed_q or packed_kv:
        qs = _rows(q_lengths, "query", node) if packed_q else None
        ks = _rows(kv_lengths, "key/value", node) if packed_kv else None
        batch = len(qs) - 1 if packed_q else q.shape[0]
        out = np.zeros_like(q)
        for b in range(batch):
            qb = q[qs[b] : qs[b + 1]].transpose(1, 0, 2) if packed_q else q[b]
            kb = k[ks[b] : ks[b + 1]].transpose(1, 0, 2) if packed_kv else k[b]
            vb = v[ks[b] : ks[b + 1]].transpose(1, 0, 2) if packed_kv else v[b]
            lb = None if packed_kv or kv_lengths is None else int(kv_lengths[b])
            mb = None if mask is None else mask[min(b, mask.shape[0] - 1)]
            yb = _attend(node, qb, kb, vb, mb, lb, nq_scale)
            if packed_q:
                out[qs[b] : qs[b + 1]] = yb.transpose(1, 0, 2)
            else:
                out[b] = yb
        return out
    out = np.empty(q.shape, q.dtype)
    for b in range(q.shape[0]):
        mb = None if mask is None else mask[min(b, mask.shape[0] - 1)]
        lb = None if kv_lengths is None else int(kv_lengths[b])
        out[b] = _attend(node, q[b], k[b], v[b], mb, lb, nq_scale)
    return out


@interprets("attention_output")
def attention_output(node: Node, x: np.ndarray) -> np.ndarray:
    # The result was computed at the input boundary; this layer only passes it on.
    return x


@interprets("rotary_embedding", fresh=True)
def rotary_embedding(
    node: Node, x: np.ndarray, cos: np.ndarray, sin: np.ndarray, position_ids: np.ndarray | None = None
) -> np.ndarray:
    layer = node.layer
    d = x.shape[-1]
    r = int(layer.rotary_embedding_dim) or d
    if position_ids is not None:
        ids = np.asarray(position_ids, np.int64)
        if ids.min(initial=0) < 0 or ids.max(initial=0) >= cos.shape[0]:
            bad = ids[(ids < 0) | (ids >= cos.shape[0])].flat[0]
            raise InterpreterError(
                f"rotary_embedding {node.name!r}: position id {int(bad)} is outside the "
                f"{cos.shape[0]}-row cos/sin cache (valid 0..{cos.shape[0] - 1})"
            )
        cos, sin = cos[ids], sin[ids]  # (B, S, R/2)
    cos, sin = cos[:, None], sin[:, None]  # broadcast over heads
    out = x.copy()
    if layer.interleaved:
        x1, x2 = x[..., 0:r:2], x[..., 1:r:2]
        out[..., 0:r:2] = x1 * cos - x2 * sin
        out[..., 1:r:2] = x2 * cos + x1 * sin
    else:
        h = r // 2
        x1, x2 = x[..., :h], x[..., h:r]
        out[..., :h] = x1 * cos - x2 * sin
        out[..., h:r] = x2 * cos + x1 * sin
    return out


@interprets("kv_cache_update", fresh=True)
def kv_cache_update(
    node: Node,
    cache: np.ndarray,
    update: np.ndarray,
    write_indices: np.ndarray,
    update_lengths: np.ndarray | None = None,
) -> np.ndarray:
    layer = node.layer
    if layer.cache_mode.name != "LINEAR":
        raise UnsupportedLayerError(f"kv_cache_update {node.name!r}: cache mode {layer.cache_mode.name}")
    out = cache.copy()
    max_s = cache.shape[2]
    packed = layer.update_form.name == "PACKED_NHD"
    rows = _rows(update_lengths, "update", node) if packed else None
    for b in range(cache.shape[0]):
        upd = update[rows[b] : rows[b + 1]].transpose(1, 0, 2) if packed else update[b]  # (H, S, D)
        start = int(write_indices[b])
        # NvInfer.h: "Out-of-bound updates will be ignored silently"; positions inside the cache are written.
        lo, hi = max(start, 0), min(start + upd.shape[1], max_s)
        if lo < hi:
            out[b, :, lo:hi] = upd[:, lo - start : hi - start]
    return out
