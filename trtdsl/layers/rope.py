"""Llama-style rotary position embeddings (RoPE) on TensorRT's ``IRotaryEmbeddingLayer``.

``rope_tables`` computes the cos/sin tables of "RoFormer" (Su et al., 2021) as
Llama uses them: angle ``p · base^(-2i/R)`` for position p and pair i, in float64,
stored once per network as float32 constants. ``rotary`` applies them to (B, H, S, D)
queries or keys, by position ids when given (decoding with a cache) or by
positions 0..S-1.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..errors import ShapeError
from ..tensor import Tensor

__all__ = ["rope_tables", "rotary"]


def rope_tables(
    max_positions: int, rotary_dim: int, base: float = 10000.0, inv_freq: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(cos, sin)``, each (max_positions, rotary_dim / 2) float32.

    ``inv_freq`` (rotary_dim / 2,) replaces ``base^(-2i/R)``, for scaled variants (Llama 3's
    ``rope_scaling``, NTK).

    Example::

        cos, sin = rope_tables(4096, 128, base=500000.0)
    """
    if rotary_dim <= 0 or rotary_dim % 2:
        raise ShapeError(f"rope_tables: rotary_dim must be even and positive, got {rotary_dim}")
    if inv_freq is None:
        inv_freq = 1.0 / float(base) ** (np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim)
    inv = np.asarray(inv_freq, np.float64)
    if inv.shape != (rotary_dim // 2,):
        raise ShapeError(f"rope_tables: inv_freq has shape {inv.shape}; expected ({rotary_dim // 2},)")
    angles = np.arange(max_positions, dtype=np.float64)[:, None] * inv
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def rotary(
    x: Tensor,
    position_ids: Tensor | None = None,
    *,
    base: float = 10000.0,
    max_positions: int = 2048,
    rotary_dim: int | None = None,
    interleaved: bool = False,
    inv_freq: np.ndarray | None = None,
    name: str = "rope",
) -> Tensor:
    """Rotate (B, H, S, D) queries or keys by their positions, as Llama does.

    Args:
        position_ids: (B, S) int32/int64 positions (< ``max_positions``); None means 0..S-1
            (static B and S).
        rotary_dim: rotate only the first R features (partial rotary, as GPT-NeoX/Phi); default D.
        interleaved: rotate adjacent pairs (Meta's original Llama checkpoints) rather than the
            two halves (Hugging Face's layout).

    Example::

        q = layers.rotary(q, pos, base=500000.0, max_positions=8192)
        k = layers.rotary(k, pos, base=500000.0, max_positions=8192)
    """
    d = x.shape[-1]
    if d < 0:
        raise ShapeError(f"rotary {name!r}: head_dim of {x.name!r} {x.shape} must be static")
    r = d if rotary_dim is None else int(rotary_dim)
    if position_ids is None:
        b, s = x.shape[0], x.shape[2]
        if b < 0 or s < 0:
            raise ShapeError(
                f"rotary {name!r}: without position_ids the batch and sequence length must be static, got {x.shape}"
            )
        cos, sin = rope_tables(s, r, base, inv_freq)
        cos, sin = np.broadcast_to(cos, (b, s, r // 2)), np.broadcast_to(sin, (b, s, r // 2))
        return ops.rotary_embedding(x, cos, sin, interleaved=interleaved, rotary_dim=r, name=name)
    net = x.net
    freq = "" if inv_freq is None else np.asarray(inv_freq, np.float64).tobytes().hex()
    what = f"rope:{max_positions}:{r}:{float(base)}:{freq}"

    def table(i: int, role: str) -> Tensor:
        # One constant per position-ids tensor and table: the q and k of a layer share it.
        return net.derived(position_ids, f"{what}:{role}",
                           lambda: net.constant(rope_tables(max_positions, r, base, inv_freq)[i], f"{name}.{role}",
                                                dtype="float32"))  # fmt: skip

    cos_t, sin_t = table(0, "cos"), table(1, "sin")
    return ops.rotary_embedding(x, cos_t, sin_t, position_ids=position_ids, interleaved=interleaved, rotary_dim=r,
                                name=name)  # fmt: skip
