"""The first check every runner makes of its feeds: a mapping of input name -> array.

The reference interpreter, ``Session`` and ``trtdsl run`` all call :func:`check_mapping`
before looking at any array, so a list, ``None`` or an integer key gets the same
clear :class:`~trtdsl.errors.ShapeError` everywhere, never a raw ``TypeError``.
(How each array's dtype is converted is the dtype table's rule, applied after this.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ShapeError, did_you_mean

__all__ = ["check_mapping"]


def check_mapping(feeds: Any, inputs: Sequence[str], where: str = "the network") -> Mapping[str, Any]:
    """Return ``feeds`` after checking it maps input names (str) to values that are not None.

    Example::

        check_mapping({"x": x}, ["x"])      # returns the dict
        check_mapping(x, ["x"])             # ShapeError: ... wrap it as {'x': array}
    """
    names = list(inputs)
    if not isinstance(feeds, Mapping):
        hint = f" Wrap it as {{{names[0]!r}: array}}." if len(names) == 1 else ""
        raise ShapeError(
            f"feeds for {where} must be a dict of input name -> array, got {type(feeds).__name__}; "
            f"inputs are {names}.{hint}"
        )
    for key, value in feeds.items():
        if not isinstance(key, str):
            raise ShapeError(
                f"feed key {key!r} ({type(key).__name__}) is not an input name; feeds of {where} are keyed by "
                f"name, inputs are {names}"
            )
        if value is None:
            raise ShapeError(f"feed {key!r} of {where} is None; expected an array.{did_you_mean(key, names)}")
    return feeds
