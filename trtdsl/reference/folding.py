"""Values that depend only on constants and input shapes, computed once (fast mode).

Why: networks exported from PyTorch compute reshape dims, split points and slice bounds
at run time from Shape layers: ShuffleNetV2 through TensorRT's ONNX parser has 983
layers, of which 700 (constants, shapes, gathers, integer arithmetic, concatenations)
give the same values in every run at the same input shapes. Each costs the interpreter's
per-layer work (about 10 us) for a few integers; ONNX Runtime folds them when it loads
the model. Here a run with new input shapes computes them as usual and keeps them; a
later run with the same input shapes starts from the kept values and skips their layers.

What counts, in the order the steps run: a constant layer, or any layer (not a loop or
conditional) whose inputs are all constant, is *constant*; a Shape layer, or a layer whose
inputs are all constant or shape-derived, is *shape-derived*. Constant values are kept
once, shape-derived ones per input shapes (up to ``SHAPES`` sets of them). Kept values are
never donated, pooled or fused away (the interpreter treats them as exported), and an
output among them is copied before it is returned. Runs that capture or observe tensors
compute everything (an observer sees each tensor as its layer computes it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .control import Structure
from .registry import Node

SHAPES = 8  # sets of input shapes whose shape-derived values are kept


class Folding:
    """Which steps compute constant or shape-derived values, and the values kept from earlier runs."""

    def __init__(self, steps: Sequence[Node]):
        constant: set[str] = set()
        derived: set[str] = set()
        self.constant_steps: list[int] = []
        self.derived_steps: list[int] = []
        for pos, step in enumerate(steps):
            if isinstance(step, Structure) or not step.outputs:
                continue  # loops and conditionals run their bodies; an assertion still runs every time
            inputs = [n for n in step.inputs if n is not None]
            if step.type == "shape":
                derived.update(step.outputs)
                self.derived_steps.append(pos)
            elif all(n in constant for n in inputs):
                constant.update(step.outputs)
                self.constant_steps.append(pos)
            elif all(n in constant or n in derived for n in inputs):
                derived.update(step.outputs)
                self.derived_steps.append(pos)
        self.constant_names = frozenset(constant)
        self.derived_names = frozenset(derived)
        self.names = self.constant_names | self.derived_names
        self._constants: dict[str, np.ndarray] | None = None
        self._derived: dict[tuple, dict[str, np.ndarray]] = {}

    def known(self, key: tuple) -> tuple[frozenset[int], dict[str, np.ndarray]]:
        """(the steps a run at input shapes ``key`` can skip, the values it starts from)."""
        values: dict[str, np.ndarray] = {}
        skip: list[int] = []
        if self._constants is not None:
            values.update(self._constants)
            skip += self.constant_steps
        derived = self._derived.get(key)
        if derived is not None:
            values.update(derived)
            skip += self.derived_steps
        return frozenset(skip), values

    def keep(self, key: tuple, env: Mapping[str, Any]) -> None:
        """Keep the values a finished run at input shapes ``key`` computed."""
        if self._constants is None:
            self._constants = {n: env[n] for n in self.constant_names if n in env}
        if key not in self._derived:
            if len(self._derived) >= SHAPES:
                self._derived.clear()
            self._derived[key] = {n: env[n] for n in self.derived_names if n in env}
