"""Multi-head attention and MLPs bound to torch weights by name.

Attention is written as matmul + softmax + matmul by default; TensorRT's Myelin
backend recognizes that pattern and fuses it into one attention kernel.
``fused=True`` uses TensorRT's ``IAttention`` layer instead
(``ops.scaled_dot_product_attention``), which the reference interpreter also runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _trt, ops
from ..errors import ShapeError
from ..tensor import Tensor
from ..weights.store import WeightStore
from . import _act
from ._params import Weights, block, scope
from .linear import linear

__all__ = ["mlp", "multi_head_attention", "positions"]

Mask = Tensor | np.ndarray | None


def mlp(
    x: Tensor,
    w: Weights,
    prefix: str,
    *,
    names: Sequence[str] = ("fc1", "fc2"),
    act: _act.Act = "gelu",
    hidden_features: int | None = None,
) -> Tensor:
    """Linear layers ``names`` with ``act`` between them (none after the last).

    Weights ``<prefix>.<name>.weight`` (out, in) and ``.bias``. The defaults fit
    timm's ``Mlp``; torchvision ViT's ``MLPBlock`` is ``names=("0", "3")``, torch's
    ``TransformerEncoderLayer`` keeps them beside the attention (``("linear1", "linear2")``
    with an empty prefix).

    Example::

        y = mlp(x, w, "encoder.layers.encoder_layer_0.mlp", names=("0", "3"))
    """
    p = block(w, prefix, "mlp")
    with scope(x.net, prefix):
        for i, n in enumerate(names):
            last = i == len(names) - 1
            x = linear(x, p, n, out_features=hidden_features if i == 0 else None, act=None if last else act)
    return x


def _projections(p: WeightStore, e: int, ek: int, ev: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(weight, bias) of the q, k and v projections from torch's fused or separate layout."""
    if "in_proj_weight" in p:
        if ek != e or ev != e:
            raise ShapeError(
                f"{p.where}: fused 'in_proj_weight' needs key/value width {e}, got {ek}/{ev}; "
                "torch stores q_proj_weight/k_proj_weight/v_proj_weight when kdim/vdim differ"
            )
        wf = p.take("in_proj_weight", (3 * e, e))
        ws = [wf[:e], wf[e : 2 * e], wf[2 * e :]]
    else:
        ws = [p.take("q_proj_weight", (e, e)), p.take("k_proj_weight", (e, ek)), p.take("v_proj_weight", (e, ev))]
    b = p.optional("in_proj_bias", (3 * e,))
    bs = [None, None, None] if b is None else [b[:e], b[e : 2 * e], b[2 * e :]]
    return list(zip(ws, bs, strict=True))


def _heads(x: Tensor, h: int, d: int, name: str) -> Tensor:
    """(B, L, h*d) -> (B, h, L, d); B and L may both be dynamic (a -1 there keeps the axis)."""
    y = ops.reshape(x, _keep2(x, h, d), name=f"{name}.split_heads")
    return ops.permute(y, (0, 2, 1, 3), name=f"{name}.to_heads")


def _keep2(x: Tensor, *rest: int) -> tuple[int, ...]:
    """A reshape target that keeps ``x``'s first two axes: their size, or -1 (copied) when dynamic."""
    b, length = x.shape[:2]
    return (b, length, *rest)


def positions(x: Tensor, axis: int, name: str) -> Tensor:
    """``arange(x.shape[axis])`` as int64, also when that axis is only known at run time.

    A LINSPACE fill whose size input is the axis read from ``shape_of(x)``: the
    position ids that embeddings and causal masks need for a dynamic sequence.
    """
    net = x.net
    n = x.shape[axis]
    if n >= 0:
        return net.constant(np.arange(n, dtype=np.int64), name, dtype="int64")
    a = axis % x.ndim
    size = ops.shape_of(x)[a : a + 1]
    trt = _trt.load()
    layer = net.trt.add_fill((0,), trt.FillOperation.LINSPACE, trt.int64)
    layer.set_input(0, size.trt)
    layer.alpha, layer.beta = 0, 1
    return net.register(layer, "fill", name)


def _additive(mask: Mask, like: Tensor, name: str) -> Tensor | None:
    """A torch-style mask as an additive float mask: bool True means 'may not attend' (-inf)."""
    if mask is None:
        return None
    if isinstance(mask, Tensor):
        if mask.dtype == "bool":
            return ops.where(mask, float("-inf"), 0.0, name=name)
        return mask
    m = np.asarray(mask)
    add = np.where(m, -np.inf, 0.0) if m.dtype == bool else m
    return like.net.constant(add.astype(np.float32), name)


def _fused(q: Tensor, k: Tensor, v: Tensor, query: Tensor, key: Tensor, p: Weights, e: int, attn_mask: Mask,
           key_padding_mask: Mask, causal: bool) -> Tensor:  # fmt: skip
    """The context from one IAttention, merged and projected: ``multi_head_attention(fused=True)``."""
    masks = [_additive(attn_mask, query, "attn_mask")]
    if key_padding_mask is not None:
        kpm = _additive(key_padding_mask, query, "key_padding_mask")
        masks.append(ops.unsqueeze(kpm, (1, 2), name="key_padding_mask.rank4"))
    masks = [m for m in masks if m is not None]
    if causal and masks:  # IAttention takes a mask or its own causal flag, not both: add the causal one
        length, s = query.shape[1], key.shape[1]
        if length < 0 or s < 0:
            raise ShapeError(
                f"{p.where}: causal=True with another mask needs static sequence lengths, got {length}, {s}"
            )
        masks.append(_additive(np.triu(np.ones((length, s), bool), 1), query, "causal_mask"))
    mask = None
    for m in masks:
        mask = m if mask is None else ops.add(mask, m, name="mask")
    # The 1/sqrt(head_dim) scale is already folded into the query projection.
    causal_kind = bool(causal) and mask is None  # torch's causal mask keeps key j <= query i: upper left
    ctx = ops.scaled_dot_product_attention(q, k, v, mask=mask, causal=causal_kind, scale=1.0, name="attention")
    ctx = ops.flatten(ops.permute(ctx, (0, 2, 1, 3), name="merge_heads"), 2, name="context.flat")
    return linear(ctx, p, "out_proj", out_features=e)


def multi_head_attention(
    query: Tensor,
    w: Weights,
    prefix: str,
    num_heads: int,
    *,
    key: Tensor | None = None,
    value: Tensor | None = None,
    attn_mask: Mask = None,
    key_padding_mask: Mask = None,
    causal: bool = False,
    fused: bool = False,
) -> Tensor:
    """``torch.nn.MultiheadAttention`` on batch-first (B, L, E) inputs; self-attention when key/value are None.

    Args:
        w, prefix: ``in_proj_weight`` (3E, E) (fused QKV, torch's layout) or ``q_proj_weight``/
            ``k_proj_weight``/``v_proj_weight``, ``in_proj_bias`` (3E), ``out_proj.weight``/``.bias``.
        attn_mask: (L, S) or broadcastable to (B, heads, L, S); bool True = may not attend,
            float = added to the scores (torch semantics). NumPy masks become constants.
        key_padding_mask: (B, S); True marks padding keys.
        causal: mask future positions (static L and S, unless ``fused`` and no other mask).
        fused: compute softmax(q·kᵀ + mask)·v with one ``IAttention`` layer
            (``ops.scaled_dot_product_attention``, decomposable) instead of matmul, softmax, matmul.

    The 1/sqrt(head_dim) scale is folded into the query projection's weights, and
    self-attention computes q, k and v with one matrix multiply.

    Example::

        y = multi_head_attention(x, w, "self_attn", num_heads=8)
    """
    net = query.net
    p = block(w, prefix, "multi_head_attention")
    key = query if key is None else key
    value = key if value is None else value
    for t, what in ((query, "query"), (key, "key"), (value, "value")):
        if t.ndim != 3:
            raise ShapeError(f"{p.where}: {what} {t.name!r} has shape {t.shape}; expected batch-first (B, L, E)")
    e = query.shape[-1]
    if e % num_heads:
        raise ShapeError(f"{p.where}: embed dim {e} is not divisible by num_heads={num_heads}")
    d = e // num_heads
    scale = 1.0 / np.sqrt(d)
    (wq, bq), (wk, bk), (wv, bv) = _projections(p, e, key.shape[-1], value.shape[-1])
    wq = wq * np.float32(scale)
    bq = None if bq is None else bq * np.float32(scale)
    with scope(net, prefix):
        if key is query and value is query:
            # One (E -> 3E) matmul for q, k and v, then split the heads.
            wf = np.concatenate([wq, wk, wv])
            bf = None if bq is None else np.concatenate([bq, bk, bv])
            qkv = ops.linear(query, wf, bf, name="qkv")
            qkv = ops.reshape(qkv, _keep2(qkv, 3 * num_heads, d), name="qkv.split_heads")
            qkv = ops.permute(qkv, (0, 2, 1, 3), name="qkv.to_heads")
            q = qkv[:, :num_heads]
            k = qkv[:, num_heads : 2 * num_heads]
            v = qkv[:, 2 * num_heads :]
        else:
            q = _heads(ops.linear(query, wq, bq, name="q"), num_heads, d, "q")
            k = _heads(ops.linear(key, wk, bk, name="k"), num_heads, d, "k")
            v = _heads(ops.linear(value, wv, bv, name="v"), num_heads, d, "v")
        if fused:
            return _fused(q, k, v, query, key, p, e, attn_mask, key_padding_mask, causal)
        scores = ops.matmul(q, k, transpose_b=True, name="scores")  # (B, h, L, S)
        masks = [_additive(attn_mask, query, "attn_mask")]
        if key_padding_mask is not None:
            kpm = _additive(key_padding_mask, query, "key_padding_mask")
            masks.append(ops.unsqueeze(kpm, (1, 2), name="key_padding_mask.rank4"))
        if causal:
            length, s = query.shape[1], key.shape[1]
            if length >= 0 and s >= 0:
                masks.append(_additive(np.triu(np.ones((length, s), bool), 1), query, "causal_mask"))
            else:  # key j is hidden from query i when j > i, built from the run-time lengths
                i = ops.unsqueeze(positions(query, 1, "causal.rows"), 1, name="causal.rows.col")
                j = ops.unsqueeze(positions(key, 1, "causal.cols"), 0, name="causal.cols.row")
                masks.append(_additive(ops.greater(j, i, name="causal.future"), query, "causal_mask"))
        for m in masks:
            if m is not None:
                scores = ops.add(scores, m, name="masked_scores")
        attn = ops.softmax(scores, -1, name="softmax")
        ctx = ops.matmul(attn, v, name="context")  # (B, h, L, d)
        ctx = ops.permute(ctx, (0, 2, 1, 3), name="merge_heads")
        ctx = ops.reshape(ctx, _keep2(ctx, e), name="context.flat")
        return linear(ctx, p, "out_proj", out_features=e)
