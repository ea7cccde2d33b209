"""Transformer encoder layers and token embeddings with positions.

``transformer_encoder_layer`` matches ``torch.nn.TransformerEncoderLayer``
(``batch_first=True``) in both its post-norm (default) and pre-norm
(``norm_first=True``) forms; ``keys`` maps its parts to other checkpoints'
names (``VIT_KEYS`` for torchvision's ViT ``EncoderBlock``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .. import ops
from ..errors import ShapeError, WeightError
from ..tensor import Tensor
from . import _act
from ._params import Weights, block, scope
from .attention import Mask, mlp, multi_head_attention
from .attention import positions as _positions

__all__ = ["transformer_encoder_layer", "layer_norm", "embedding", "sinusoidal_positions", "TORCH_KEYS", "VIT_KEYS"]


# Where the parts of an encoder layer sit under its prefix.
TORCH_KEYS = {"attn": "self_attn", "norm1": "norm1", "norm2": "norm2", "fc1": "linear1", "fc2": "linear2"}
VIT_KEYS = {"attn": "self_attention", "norm1": "ln_1", "norm2": "ln_2", "fc1": "mlp.0", "fc2": "mlp.3"}


def layer_norm(x: Tensor, w: Weights, prefix: str, *, eps: float = 1e-5) -> Tensor:
    """``torch.nn.LayerNorm`` over the last axis with ``<prefix>.weight`` and ``<prefix>.bias``."""
    p = block(w, prefix, "layer_norm")
    c = x.shape[-1]
    return ops.layer_norm(x, c, p.optional("weight", (c,)), p.optional("bias", (c,)), eps, name=prefix)


def transformer_encoder_layer(
    x: Tensor,
    w: Weights,
    prefix: str,
    num_heads: int,
    *,
    norm_first: bool = False,
    act: _act.Act = "relu",
    eps: float = 1e-5,
    attn_mask: Mask = None,
    key_padding_mask: Mask = None,
    causal: bool = False,
    keys: Mapping[str, str] = TORCH_KEYS,
    fused: bool = False,
) -> Tensor:
    """One encoder layer on (B, L, E): self-attention and a two-layer MLP, each with a residual.

    Post-norm: ``x = norm1(x + sa(x)); x = norm2(x + mlp(x))``.
    Pre-norm (``norm_first=True``): ``x = x + sa(norm1(x)); x = x + mlp(norm2(x))``.
    ``fused=True`` computes the attention with one ``IAttention`` (see ``multi_head_attention``).

    Example::

        for i in range(6):
            x = transformer_encoder_layer(x, w, f"encoder.layers.{i}", 8, norm_first=True, act="gelu")
    """
    p = block(w, prefix, "transformer_encoder_layer")
    missing = {"attn", "norm1", "norm2", "fc1", "fc2"} - set(keys)
    if missing:
        raise WeightError(f"{p.where}: keys needs entries {sorted(missing)}; got {dict(keys)}")

    def sa(t: Tensor) -> Tensor:
        return multi_head_attention(
            t, p, keys["attn"], num_heads, attn_mask=attn_mask, key_padding_mask=key_padding_mask, causal=causal,
            fused=fused,
        )  # fmt: skip

    def ff(t: Tensor) -> Tensor:
        return mlp(t, p, "", names=(keys["fc1"], keys["fc2"]), act=act)

    with scope(x.net, prefix):
        if norm_first:
            # The residual adds come last, so they can fuse into the preceding matmul.
            x = ops.add(x, sa(layer_norm(x, p, keys["norm1"], eps=eps)), name="attn_residual")
            return ops.add(x, ff(layer_norm(x, p, keys["norm2"], eps=eps)), name="mlp_residual")
        x = layer_norm(ops.add(x, sa(x), name="attn_residual"), p, keys["norm1"], eps=eps)
        return layer_norm(ops.add(x, ff(x), name="mlp_residual"), p, keys["norm2"], eps=eps)


def sinusoidal_positions(length: int, dim: int, base: float = 10000.0) -> np.ndarray:
    """The (length, dim) sine/cosine table of "Attention is all you need": sin on even, cos on odd features."""
    pos = np.arange(length, dtype=np.float64)[:, None]
    freq = np.exp(-math.log(base) * np.arange(0, dim, 2, dtype=np.float64) / dim)
    table = np.zeros((length, dim))
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq[: dim // 2])
    return table.astype(np.float32)


def embedding(
    ids: Tensor,
    w: Weights,
    prefix: str,
    *,
    positions: str | None = None,
    scale: float | None = None,
    num_embeddings: int | None = None,
    embedding_dim: int | None = None,
    max_length: int | None = None,
) -> Tensor:
    """Token embedding ``w[prefix + '.weight'][ids]`` (B, L) -> (B, L, D), plus positions.

    Args:
        positions: None; ``'sinusoidal'``; or the key (relative to ``w``) of a learned
            table (max_len, D) or (1, max_len, D), e.g. ``'pos_embedding.weight'``.
            Positions 0..L-1 are added; L may be dynamic: the table is read at the
            run-time positions (a gather), so any L up to the table's length works.
        scale: multiply the token embeddings first (``sqrt(D)`` in the original Transformer).
        max_length: the longest sequence, for a sinusoidal table with a dynamic L
            (default: the largest profile value of the ids' sequence dim, for a network input).

    Example::

        x = embedding(ids, w, "embed_tokens", positions="embed_positions.weight")
    """
    net = ids.net
    p = block(w, prefix, "embedding")
    table = p.take("weight", (num_embeddings, embedding_dim))
    dim = table.shape[1]
    with scope(net, prefix):
        x = ops.embedding(ids, table, name="lookup")
        if scale is not None:
            x = ops.mul(x, float(scale), name="scale")
        if positions is None:
            return x
        length = ids.shape[-1]
        if positions == "sinusoidal":
            longest = length if length >= 0 else (max_length or _longest(ids, p.where))
            pos = sinusoidal_positions(longest, dim)
        else:
            learned = block(w, "", "embedding").take(positions)
            learned = learned.reshape(learned.shape[-2:]) if learned.ndim == 3 and learned.shape[0] == 1 else learned
            if learned.ndim != 2 or learned.shape[1] != dim or learned.shape[0] < max(length, 1):
                raise ShapeError(
                    f"{p.where}: positions {positions!r} has shape {learned.shape}; "
                    f"expected (max_len >= {length if length >= 0 else 'L'}, {dim})"
                )
            pos = learned
        if length >= 0:
            return ops.add(x, net.constant(pos[:length], "positions"), name="add_positions")
        # (L, D) rows at the run-time positions 0..L-1, broadcast over the batch.
        rows = ops.embedding(_positions(ids, -1, "position_ids"), pos, name="positions")
        return ops.add(x, rows, name="add_positions")


def _longest(ids: Tensor, where: str) -> int:
    """The largest sequence length the profiles allow for a network-input ``ids``."""
    spec = ids.net.input_specs.get(ids.name) if ids.trt.is_network_input else None
    dim = spec[-1] if spec else None
    if isinstance(dim, str):
        return max(p.ranges[dim][2] for p in ids.net.profiles())
    raise ShapeError(
        f"{where}: sinusoidal positions for a dynamic sequence length need max_length=; ids {ids.name!r} has "
        f"shape {ids.shape}"
    )
