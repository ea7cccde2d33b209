"""Tolerances: ``Tolerance(atol, rtol)`` and the defaults by the precision a network computes in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import dtypes
from ..errors import TrtdslError


@dataclass(frozen=True)
class Tolerance:
    """``|actual - expected| <= atol + rtol * |expected|`` must hold for every element."""

    atol: float
    rtol: float

    @classmethod
    def for_precision(cls, precision: dtypes.DTypeLike) -> Tolerance:
        """The default tolerance for a network computed in ``precision`` ('float32', 'float16', 'int8', ...)."""
        key = dtypes.canonical(precision)
        if key not in DEFAULT_TOLERANCES:
            return EXACT
        return DEFAULT_TOLERANCES[key]

    def __post_init__(self) -> None:
        for what in ("atol", "rtol"):
            v = getattr(self, what)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not v >= 0:
                # `not v >= 0` is also true for NaN, which would make every comparison pass.
                raise TrtdslError(f"tolerance {what} must be a number >= 0, got {v!r}")

    def __str__(self) -> str:
        return f"atol={self.atol:g} rtol={self.rtol:g}"


EXACT = Tolerance(0.0, 0.0)
# Defaults by the precision the network computes in: the ``tolerance`` of each row of
# ``dtypes.TABLE``, where the reasoning behind each number is written down.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    name: Tolerance(*d.tolerance) for name, d in dtypes.TABLE.items() if d.tolerance is not None
}

TolerancePolicy = Tolerance | str | None
