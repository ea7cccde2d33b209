"""Transformer ops on TensorRT's fused layers: attention, rotary embedding, KV-cache update.

``scaled_dot_product_attention`` adds one ``IAttention`` (``add_attention_v2``);
``rotary_embedding`` one ``IRotaryEmbeddingLayer``; ``kv_cache_update`` one
``IKVCacheUpdateLayer``. All take the padded (B, heads, S, head_dim) layout; attention
and the cache update also take TensorRT's packed (tokens, heads, head_dim) form.

IAttention computes ``softmax(Q·Kᵀ + mask)·V`` with no scale of its own, so the
scale is applied to the inputs, as TensorRT's ONNX parser does: Q and K are each
multiplied by ``sqrt(scale)``, which keeps Q·Kᵀ in range in float16. It is marked
decomposable by default: a fused kernel only exists for some shapes and dtypes
(TensorRT-RTX's CPU build has none for float32), and decomposing lets TensorRT
fall back to matmul + softmax + matmul instead of failing the build.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _trt, dtypes
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import TensorLike, as_tensor, relative
from .elementwise import mul
from .shape import unsqueeze

__all__ = ["kv_cache_update", "rotary_embedding", "scaled_dot_product_attention"]

_CAUSAL = {False: "NONE", None: "NONE", True: "UPPER_LEFT", "upper_left": "UPPER_LEFT", "lower_right": "LOWER_RIGHT"}


def _what(kind: str, name: str | None) -> str:
    return f"{kind} {name!r}" if name else kind


def _check_heads(what: str, q: Tensor, k: Tensor, v: Tensor) -> None:
    """Padded tensors are (B, H, S, D); packed ones (total tokens, H, D): heads on axis 1 in both."""
    for t, role in ((q, "query"), (k, "key"), (v, "value")):
        if t.ndim not in (3, 4):
            raise ShapeError(
                f"{what}: {role} {t.name!r} has shape {t.shape}; expected (batch, heads, seq, head_dim), "
                "or packed (tokens, heads, head_dim)"
            )
    if k.ndim != v.ndim:
        raise ShapeError(f"{what}: key {k.shape} and value {v.shape} must both be padded or both packed")
    seq = 0 if k.ndim == 3 else 2
    hq, hk, hv = q.shape[1], k.shape[1], v.shape[1]
    if hk != hv or (k.shape[seq] != v.shape[seq] and min(k.shape[seq], v.shape[seq]) >= 0):
        raise ShapeError(f"{what}: key {k.shape} and value {v.shape} must have the same heads and sequence length")
    if min(hq, hk) > 0 and hq % hk:
        raise ShapeError(
            f"{what}: query has {hq} heads, key/value {hk}; grouped-query attention needs the query heads "
            f"to be a multiple of the key/value heads"
        )
    if min(q.shape[-1], k.shape[-1]) >= 0 and q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"{what}: query head_dim {q.shape[-1]} differs from key head_dim {k.shape[-1]}")


def _lengths(what: str, net, value: TensorLike, role: str, cumulative: bool) -> Tensor:
    t = as_tensor(net, np.asarray(value, np.int32) if not isinstance(value, Tensor) else value)
    if t.dtype != "int32" or t.ndim != 1:
        form = "(B + 1,) cumulative token counts" if cumulative else "(B,)"
        raise ShapeError(f"{what}: {role} {t.name!r} is {t.dtype} {t.shape}; expected int32 {form}")
    return t


def _mask(what: str, mask: TensorLike, q: Tensor, dt: str, name: str) -> Tensor:
    net = q.net
    if isinstance(mask, Tensor):
        m = mask
    else:
        a = np.asarray(mask)
        m = net.constant(a if a.dtype == bool else a.astype(np.float32), name, dtype="bool" if a.dtype == bool else dt)
    if m.ndim > 4:
        raise ShapeError(f"{what}: mask {m.name!r} has rank {m.ndim}; expected at most 4 (batch, heads, Sq, Skv)")
    if m.dtype != "bool":
        if not dtypes.is_float(m.dtype):
            raise ShapeError(f"{what}: mask {m.name!r} has dtype {m.dtype}; expected bool or a float (added)")
        m = net.cast(m, dt)
    if m.ndim < 4:  # IAttention broadcasts size-1 axes only, not missing ones
        m = unsqueeze(m, list(range(4 - m.ndim)), name=f"{name}.rank4")
    return m


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    mask: TensorLike | None = None,
    causal: bool | str = False,
    scale: float | None = None,
    key_value_lengths: TensorLike | None = None,
    query_lengths: TensorLike | None = None,
    decomposable: bool = True,
    name: str | None = None,
) -> Tensor:
    """``softmax(q·kᵀ·scale + mask)·v`` on (B, H, Sq, D) queries and (B, Hkv, Skv, D) keys/values.

    Like ``torch.nn.functional.scaled_dot_product_attention``, on one ``IAttention``.

    Args:
        mask: bool (True = may attend, torch's meaning) or float (added to the scores), broadcastable
            to (B, H, Sq, Skv); NumPy masks become constants. Exclusive with ``causal``.
        causal: ``True`` or ``"upper_left"`` (key j <= query i, torch's ``is_causal``), or
            ``"lower_right"`` (j <= i + Skv - Sq, the alignment for decoding with a cache).
        scale: multiplies q·kᵀ; default ``1/sqrt(D)``.
        key_value_lengths: int32 (B,) tensor; keys at or past ``key_value_lengths[b]`` are ignored.
            For packed keys/values, the (B + 1,) cumulative token counts ``[0, n0, n0 + n1, ...]``.
        query_lengths: for packed queries, the (B + 1,) cumulative token counts.
        decomposable: let TensorRT split the layer into matmuls and a softmax when it has no fused
            kernel for the shape and dtype (needed on TensorRT-RTX's CPU build).

    Hq may be a multiple of Hkv (grouped-query attention): query head h reads key/value head
    ``h // (Hq / Hkv)``. Rank-3 inputs are packed: (total tokens, heads, D), the sequences of
    the batch one after the other, described by their cumulative lengths. Packed attention has
    no decomposition, so only a GPU with a fused kernel builds it.

    Example::

        y = ops.scaled_dot_product_attention(q, k, v, causal=True)
    """
    trt = _trt.load()
    net = q.net
    what = _what("scaled_dot_product_attention", name)
    if causal not in _CAUSAL:
        raise ShapeError(f"{what}: causal must be False, True, 'upper_left' or 'lower_right', got {causal!r}")
    kind = _CAUSAL[causal]
    if mask is not None and kind != "NONE":
        raise ShapeError(f"{what}: give either mask or causal, not both (IAttention takes one); fold one into the mask")
    q = net.to_compute(q)
    dt = q.dtype
    k, v = net.to_compute(k), net.to_compute(v)
    if not dtypes.is_float(dt):
        raise ShapeError(f"{what}: query {q.name!r} has dtype {dt}; attention takes float tensors")
    _check_heads(what, q, k, v)
    packed_q, packed_kv = q.ndim == 3, k.ndim == 3
    if packed_q != (query_lengths is not None):
        raise ShapeError(
            f"{what}: query_lengths goes with packed (tokens, heads, head_dim) queries, and only with them; "
            f"query {q.name!r} has shape {q.shape}"
        )
    if packed_kv and not packed_q:
        raise ShapeError(f"{what}: packed keys/values {k.shape} need packed queries too (TensorRT refuses the mix)")
    if packed_kv and key_value_lengths is None:
        raise ShapeError(f"{what}: packed keys/values {k.shape} need key_value_lengths (cumulative token counts)")
    if mask is not None and (packed_q or packed_kv):
        raise ShapeError(f"{what}: a mask on packed inputs is not documented by TensorRT; use causal or lengths")
    base = net.op_name(name, "attention", q)
    d = q.shape[-1]
    if scale is None and d < 0:
        raise ShapeError(f"{what}: head_dim of {q.shape} is dynamic; give scale= explicitly")
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    if scale != 1.0:
        root = math.sqrt(abs(scale))
        q = mul(q, math.copysign(root, scale), name=f"{relative(net, base)}.q_scaled")
        k = mul(k, root, name=f"{relative(net, base)}.k_scaled")
    m = None if mask is None else _mask(what, mask, q, dt, f"{relative(net, base)}.mask")
    attn = net.trt.add_attention_v2(
        q.trt, k.trt, v.trt, trt.AttentionNormalizationOp.SOFTMAX, getattr(trt.CausalMaskKind, kind)
    )
    if m is not None:
        attn.mask = m.trt
    form = trt.AttentionIOForm
    if packed_q:
        attn.query_form = form.PACKED_NHD
        attn.query_lengths = _lengths(what, net, query_lengths, "query_lengths", True).trt
    if packed_kv:
        attn.key_value_form = form.PACKED_NHD
    if key_value_lengths is not None:
        attn.key_value_lengths = _lengths(what, net, key_value_lengths, "key_value_lengths", packed_kv).trt
    attn.decomposable = bool(decomposable)
    attn.name = base
    # Layer 'base.input' opens the attention; its closing layer is named 'base', output 'base.out'.
    layers = [net.trt.get_layer(i) for i in range(net.trt.num_layers - 2, net.trt.num_layers)]
    layers[0].name = f"{base}.input"
    layers[0].get_output(0).name = f"{base}.scores"
    return net.register(layers[1], "attention", base, resolved=True)


def rotary_embedding(
    x: Tensor,
    cos: TensorLike,
    sin: TensorLike,
    *,
    position_ids: Tensor | None = None,
    interleaved: bool = False,
    rotary_dim: int | None = None,
    name: str | None = None,
) -> Tensor:
    """Rotate pairs of features of (B, H, S, D) by position-dependent angles (RoPE).

    Pairs are ``(x[i], x[i + R/2])`` (the two halves, as Hugging Face Llama), or adjacent
    ``(x[2i], x[2i+1])`` when ``interleaved`` (as Meta's original Llama and GPT-J); each
    becomes ``(x1·cos - x2·sin, x2·cos + x1·sin)``. Only the first ``rotary_dim`` (R, default
    D) features rotate; the rest pass through.

    Args:
        cos, sin: (B, S, R/2) per position, or a table (max_position + 1, R/2) indexed by
            ``position_ids`` (B, S) int32. NumPy arrays become constants.

    Example::

        inv = 1.0 / 10000 ** (np.arange(0, 64, 2) / 64)
        ang = np.arange(2048)[:, None] * inv
        y = ops.rotary_embedding(x, np.cos(ang), np.sin(ang), position_ids=pos)
    """
    net = x.net
    what = _what("rotary_embedding", name)
    x = net.to_compute(x)
    dt = x.dtype
    if x.ndim != 4:
        raise ShapeError(f"{what}: input {x.name!r} has shape {x.shape}; expected (batch, heads, seq, head_dim)")
    d = x.shape[3]
    r = d if rotary_dim is None else int(rotary_dim)
    if r <= 0 or r % 2 or (d >= 0 and r > d):
        raise ShapeError(f"{what}: rotary_dim {rotary_dim} must be even, positive and at most head_dim {d}")
    base = net.op_name(name, "rotary_embedding", x)
    rel = relative(net, base)
    caches = []
    for value, role in ((cos, "cos"), (sin, "sin")):
        t = value if isinstance(value, Tensor) else net.constant(np.asarray(value, np.float32), f"{rel}.{role}")
        t = net.cast(t, dt) if dtypes.is_float(t.dtype) else t
        want = 2 if position_ids is not None else 3
        if t.ndim != want or t.shape[-1] not in (-1, r // 2):
            form = "(max_position + 1, R/2)" if position_ids is not None else "(B, S, R/2)"
            raise ShapeError(
                f"{what}: {role} cache {t.name!r} has shape {t.shape}; expected {form} with R/2 = {r // 2}"
            )
        if position_ids is None and t.shape[0] != x.shape[0] and min(t.shape[0], x.shape[0]) >= 0:
            raise ShapeError(
                f"{what}: {role} cache {t.name!r} has batch {t.shape[0]}, input {x.name!r} has {x.shape[0]}; "
                "TensorRT does not broadcast the cache's batch: give a table and position_ids instead"
            )
        caches.append(t)
    layer = net.trt.add_rotary_embedding(x.trt, caches[0].trt, caches[1].trt, bool(interleaved), 0 if r == d else r)
    if position_ids is not None:
        if position_ids.ndim != 2 or position_ids.dtype not in ("int32", "int64"):
            raise ShapeError(
                f"{what}: position_ids {position_ids.name!r} is {position_ids.dtype} {position_ids.shape}; "
                "expected integer (B, S)"
            )
        layer.set_input(3, position_ids.trt)
    return net.register(layer, "rotary_embedding", base, resolved=True)


def kv_cache_update(
    cache: Tensor,
    update: Tensor,
    write_indices: TensorLike,
    *,
    update_lengths: TensorLike | None = None,
    name: str | None = None,
) -> Tensor:
    """Write ``update`` (B, H, S, D) into ``cache`` (B, H, max_S, D) at ``write_indices[b]`` (linear mode).

    ``out[b, :, w[b]:w[b] + S] = update[b]``; the rest of the cache passes through. TensorRT
    requires the output to be a network output ("The output tensor must be a network
    output"; mark a float16 cache with ``net.output(y, name, dtype="float16")`` so no cast
    comes between), and on a GPU it shares the cache's memory (bind both to one buffer); TensorRT
    ignores writes past ``max_S``. A rank-3 ``update`` is packed, (total tokens, H, D), with
    ``update_lengths`` the (B + 1,) cumulative token counts.

    Example::

        k_cache = ops.kv_cache_update(k_cache, k_new, positions)
    """
    trt = _trt.load()
    net = cache.net
    what = _what("kv_cache_update", name)
    packed = update.ndim == 3
    if cache.ndim != 4:
        raise ShapeError(
            f"{what}: cache {cache.name!r} has shape {cache.shape}; expected (batch, heads, seq, head_dim)"
        )
    if update.ndim != 4 and not packed:
        raise ShapeError(
            f"{what}: update {update.name!r} has shape {update.shape}; expected (batch, heads, seq, head_dim) "
            "or packed (tokens, heads, head_dim)"
        )
    if packed != (update_lengths is not None):
        raise ShapeError(
            f"{what}: update_lengths goes with a packed (tokens, heads, head_dim) update, and only with one; "
            f"update {update.name!r} has shape {update.shape}"
        )
    if cache.dtype != update.dtype or not dtypes.is_float(cache.dtype):
        raise ShapeError(
            f"{what}: cache ({cache.dtype}) and update ({update.dtype}) must share one float dtype"
            " (float32, float16 or bfloat16)"
        )
    w = as_tensor(net, np.asarray(write_indices, np.int32) if not isinstance(write_indices, Tensor) else write_indices)
    if w.dtype not in ("int32", "int64") or w.ndim != 1:
        raise ShapeError(f"{what}: write_indices {w.name!r} is {w.dtype} {w.shape}; expected int32/int64 (B,)")
    if w.dtype == "int64":
        # NvInfer.h allows int64, but TensorRT-RTX's builder refuses it ("Write indices must be of type int32").
        w = net.cast(w, "int32")
    layer = net.trt.add_kv_cache_update(cache.trt, update.trt, w.trt, trt.KVCacheMode.LINEAR)
    if packed:
        layer.update_form = trt.AttentionIOForm.PACKED_NHD
        layer.update_lengths = _lengths(what, net, update_lengths, "update_lengths", True).trt
    return net.register(layer, "kv_cache_update", name)
