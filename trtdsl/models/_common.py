"""What every model function does first: turn its ``weights`` argument into a mapping."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..weights.store import WeightStore, as_store

WeightsArg = Mapping[str, Any] | str | os.PathLike


def params(weights: WeightsArg, model: str) -> WeightStore:
    """The float32 block view of ``weights`` for ``model``; a path is loaded with ``trtdsl.weights.load``."""
    if isinstance(weights, (str, os.PathLike)):
        from .. import weights as weights_pkg

        weights = weights_pkg.load(weights)
    return as_store(weights, model).block("", model, float32=True)


def make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: round channels to a multiple of 8, never down by more than 10%."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new
