"""Checked access to one block's weights: a mapping, a key prefix and the block's name.

Every block takes ``(w, prefix)``: ``w`` is any mapping of name -> array (a
``WeightStore``, a scope of one, an ``np.load`` result, a dict) or the
``Params`` of an enclosing block, and ``prefix`` is relative to it. A block
opens ``Params(w, prefix, "block_name")`` and asks it for arrays by their last
name (``p.take("weight", (64, 3, 7, 7))``); a missing or misshapen weight is
reported with the block, the full key and the expected shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ShapeError, WeightError, did_you_mean

Shape = Sequence[int | None]  # None: any size on that axis


def join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


class Params:
    """The weights of one block: ``mapping[prefix + '.' + name]``, checked on the way out."""

    __slots__ = ("mapping", "prefix", "block")

    def __init__(self, w: Mapping[str, Any] | Params, prefix: str = "", block: str = "block"):
        if isinstance(w, Params):
            self.mapping: Mapping[str, Any] = w.mapping
            self.prefix = join(w.prefix, prefix)
        elif isinstance(w, Mapping) or hasattr(w, "__getitem__") and hasattr(w, "keys"):
            self.mapping = w
            self.prefix = prefix
        else:
            raise WeightError(f"{block} {prefix!r}: weights must be a mapping of name -> array, got {type(w).__name__}")
        self.block = block

    def __repr__(self) -> str:
        return f"Params({self.prefix!r}, block={self.block!r})"

    @property
    def where(self) -> str:
        """``"conv_bn_act 'layer1.0.conv1'"``: how messages name the block."""
        return f"{self.block} {self.prefix!r}" if self.prefix else self.block

    def key(self, name: str) -> str:
        return join(self.prefix, name)

    def has(self, name: str) -> bool:
        return self.key(name) in self.mapping

    def take(self, name: str, shape: Shape | None = None) -> np.ndarray:
        """The array under ``prefix.name``; WeightError if absent, ShapeError if misshapen."""
        key = self.key(name)
        if key not in self.mapping:
            keys = list(self.mapping.keys())
            expect = f" (expected shape {_fmt(shape)})" if shape is not None else ""
            hint = did_you_mean(key, keys) or _siblings(self.prefix, keys)
            raise WeightError(f"{self.where}: missing weight {key!r}{expect}; the weights have {len(keys)} keys.{hint}")
        array = self._fetch(key)
        if shape is not None:
            _check(self.where, key, array.shape, shape)
        if array.dtype.kind == "f" and array.dtype != np.float32:
            # Blocks fold and fuse in float32; the network casts to its compute dtype.
            array = array.astype(np.float32)
        return array

    def optional(self, name: str, shape: Shape | None = None) -> np.ndarray | None:
        """Like ``take`` but None when the key is absent (a conv without bias)."""
        return self.take(name, shape) if self.has(name) else None

    def _fetch(self, key: str) -> np.ndarray:
        # A WeightStore records use through take(); plain mappings just index.
        take = getattr(self.mapping, "take", None)
        value = None
        if callable(take):
            try:
                value = take(key)
            except TypeError:
                value = None
        if value is None:
            value = self.mapping[key]
        array = np.asarray(value)
        if array.dtype == object:
            raise WeightError(f"{self.where}: weight {key!r} is not a numeric array (dtype object)")
        return array


def _fmt(shape: Shape | None) -> str:
    return "(" + ", ".join("?" if s is None else str(s) for s in shape or ()) + ("," if len(shape or ()) == 1 else "") + ")"


def _check(where: str, key: str, got: tuple[int, ...], want: Shape) -> None:
    if len(got) == len(want) and all(w is None or g == w for g, w in zip(got, want)):
        return
    hint = ""
    if None not in want and sorted(got) == sorted(want) and tuple(got) != tuple(want):
        hint = " It has the right sizes in another order: a transposed layout (e.g. Keras HWIO or (in, out))?"
    elif None not in want and int(np.prod(got)) == int(np.prod(want)):
        hint = f" It has the right number of elements: reshape it to {_fmt(want)}."
    raise ShapeError(f"{where}: weight {key!r} has shape {tuple(got)}, expected {_fmt(want)}.{hint}")


def _siblings(prefix: str, keys: list[str]) -> str:
    """When no key is close, list what exists under the block's prefix."""
    under = [k for k in keys if k.startswith(prefix + ".")] if prefix else []
    if not under:
        return ""
    shown = ", ".join(repr(k) for k in under[:6])
    return f" Keys under {prefix!r}: {shown}{', ...' if len(under) > 6 else ''}."
