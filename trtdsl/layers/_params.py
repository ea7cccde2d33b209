"""Checked access to one block's weights: a mapping, a key prefix and the block's name.

Every block takes ``(w, prefix)``: ``w`` is any mapping of name -> array (a
``WeightStore``, a scope of one, an ``np.load`` result, a dict) or the
``Params`` of an enclosing block, and ``prefix`` is relative to it. A block
opens ``Params(w, prefix, "block_name")`` and asks it for arrays by their last
name (``p.take("weight", (64, 3, 7, 7))``); a missing or misshapen weight is
reported with the block, the full key and the expected shape.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import WeightError, WeightShapeError, did_you_mean
from ..weights.store import layout_hint

_F32 = np.dtype(np.float32)
Shape = Sequence[int | None]  # None: any size on that axis


def join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _join2(a: str, b: str) -> str:
    # join(a, b) without the generator: key() runs for every weight of a model.
    return f"{a}.{b}" if a and b else a or b


def scope(net: Any, prefix: str) -> contextlib.AbstractContextManager[None]:
    """``net.scope(prefix)``, or nothing for an empty prefix (a block at the top of a state dict)."""
    return net.scope(prefix) if prefix else contextlib.nullcontext()


class Params:
    """The weights of one block: ``mapping[prefix + '.' + name]``, checked on the way out."""

    __slots__ = ("block", "mapping", "parent", "prefix")

    def __init__(self, w: Mapping[str, Any] | Params, prefix: str = "", block: str = "block"):
        self.parent: Params | None = None
        if isinstance(w, Params):
            self.mapping: Mapping[str, Any] = w.mapping
            self.prefix = _join2(w.prefix, prefix)
            self.parent = w
        elif isinstance(w, Mapping) or (hasattr(w, "__getitem__") and hasattr(w, "keys")):
            self.mapping = w
            self.prefix = prefix
        else:
            raise WeightError(f"{block} {prefix!r}: weights must be a mapping of name -> array, got {type(w).__name__}")
        self.block = block

    def __repr__(self) -> str:
        return f"Params({self.prefix!r}, block={self.block!r})"

    @property
    def where(self) -> str:
        """``"conv_bn_act 'layer1.0.conv1' (in residual_block 'layer1.0')"``: how messages name the block."""
        own = f"{self.block} {self.prefix!r}" if self.prefix else self.block
        return f"{own} (in {self.parent._own})" if self.parent is not None else own

    @property
    def _own(self) -> str:
        return f"{self.block} {self.prefix!r}" if self.prefix else self.block

    def key(self, name: str) -> str:
        return _join2(self.prefix, name)

    def has(self, name: str) -> bool:
        return self.key(name) in self.mapping

    def take(self, name: str, shape: Shape | None = None) -> np.ndarray:
        """The array under ``prefix.name``; WeightError if absent, ShapeError if misshapen."""
        key = _join2(self.prefix, name)
        if key not in self.mapping:
            keys = list(self.mapping.keys())
            expect = f" (expected shape {_fmt(shape)})" if shape is not None else ""
            hint = did_you_mean(key, keys) or _siblings(self.prefix, keys)
            raise WeightError(f"{self.where}: missing weight {key!r}{expect}; the weights have {len(keys)} keys.{hint}")
        return self._take(key, shape)

    def _take(self, key: str, shape: Shape | None) -> np.ndarray:
        value = self.mapping[key] if type(self.mapping) is dict else None  # _fetch's common case, inline
        if type(value) is np.ndarray and value.dtype.kind != "O":
            array = value
        else:
            array = self._fetch(key)
        if shape is not None:
            got = array.shape
            # Most weights match exactly; the element-wise check (None = any size) only when not.
            if got != shape:
                _check(self, key, got, shape)
        dtype = array.dtype
        if dtype is _F32:
            return array
        if dtype.kind == "f":
            if dtype != np.float32:
                # Blocks fold and fuse in float32; the network casts to its compute dtype.
                array = array.astype(np.float32)
            else:
                # safetensors gives dtype('<f4'), equal to float32 but not the canonical
                # object, and trt.Weights refuses it; a view fixes that without a copy.
                array = array.view(_F32)
        return array

    def optional(self, name: str, shape: Shape | None = None) -> np.ndarray | None:
        """Like ``take`` but None when the key is absent (a conv without bias)."""
        key = _join2(self.prefix, name)
        return self._take(key, shape) if key in self.mapping else None

    def _fetch(self, key: str) -> np.ndarray:
        # A WeightStore records use through take(); plain mappings just index.
        mapping = self.mapping
        if type(mapping) is dict:
            value = mapping[key]
        else:
            take = getattr(mapping, "take", None)
            value = None
            if callable(take):
                try:
                    value = take(key)
                except TypeError:
                    value = None
            if value is None:
                value = mapping[key]
        array = value if type(value) is np.ndarray else np.asarray(value)
        if array.dtype.kind == "O":
            raise WeightError(f"{self.where}: weight {key!r} is not a numeric array (dtype object)")
        return array


def _fmt(shape: Shape | None) -> str:
    return (
        "("
        + ", ".join("?" if s is None else str(s) for s in shape or ())
        + ("," if len(shape or ()) == 1 else "")
        + ")"
    )


def _check(p: Params, key: str, got: tuple[int, ...], want: Shape) -> None:
    if len(got) == len(want) and all(w is None or g == w for g, w in zip(got, want, strict=True)):
        return
    hint = layout_hint(tuple(got), tuple(-1 if w is None else int(w) for w in want))
    raise WeightShapeError(f"{p.where}: weight {key!r} has shape {tuple(got)}, expected {_fmt(want)}.{hint}")


def _siblings(prefix: str, keys: list[str]) -> str:
    """When no key is close, list what exists under the block's prefix."""
    under = [k for k in keys if k.startswith(prefix + ".")] if prefix else []
    if not under:
        return ""
    shown = ", ".join(repr(k) for k in under[:6])
    return f" Keys under {prefix!r}: {shown}{', ...' if len(under) > 6 else ''}."
