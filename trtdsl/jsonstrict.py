"""JSON hooks for untrusted files: Python's ``json`` takes ``NaN``/``Infinity`` and keeps the last of two equal
keys silently; a weight index, a model config or a plan's metadata must mean one thing.

Example::

    json.loads(raw, parse_constant=no_constant, object_pairs_hook=unique_keys)
"""

from __future__ import annotations

from typing import Any


class DuplicateKey(ValueError):
    """An object names ``key`` twice."""

    def __init__(self, key: str):
        super().__init__(f"key {key[:60]!r} appears twice")
        self.key = key


def no_constant(name: str) -> Any:
    """``parse_constant``: refuse NaN, Infinity and -Infinity (no trtdsl file and no Keras config holds them)."""
    raise ValueError(f"{name} is not a JSON number")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: an object, refusing a key it names twice."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out
