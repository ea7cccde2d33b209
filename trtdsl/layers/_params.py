"""How a block finds its weights: a ``WeightStore`` view named after the block.

Every block takes ``(w, prefix)``: ``w`` is a ``WeightStore`` (a file, a scope of
one, an enclosing block's view) or a plain mapping of name -> array (a dict, an
``np.load`` result), which becomes an in-memory store; ``prefix`` is relative to
it. ``block(w, prefix, "conv_bn_act")`` is the view the block reads with
``take``/``optional``; a missing or misshapen weight is reported with the block,
the full key and the expected shape, and every read counts as a use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from ..weights.store import WeightStore, as_store

Weights = Mapping[str, Any] | WeightStore


def block(w: Weights, prefix: str, kind: str) -> WeightStore:
    """The float32 view of ``w`` under ``prefix`` that block ``kind`` reads (blocks fold and fuse in float32)."""
    return as_store(w).block(prefix, kind, float32=True)


def scope(net: Any, prefix: str) -> contextlib.AbstractContextManager[None]:
    """``net.scope(prefix)``, or nothing for an empty prefix (a block at the top of a state dict)."""
    return net.scope(prefix) if prefix else contextlib.nullcontext()
