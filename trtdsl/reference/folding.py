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
once, shape-derived ones per input shapes (up to ``SHAPES`` sets of them). A shape can
depend on values too (a NonZero's output, a reshape to dims read from an input), so kept
shape-derived values are used only while they hold: at each Shape layer the run compares
the shape of its input with the kept value, and from the first that differs it computes
the shape-derived layers again (and keeps the new values). Kept values are never donated,
pooled or fused away (the interpreter treats them as exported), and an output among them
is copied before it is returned. Runs that capture or observe tensors compute everything
(an observer sees each tensor as its layer computes it).
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
        self.shape_steps: dict[int, tuple[str, str]] = {}  # position -> (its input, its output)
        for pos, step in enumerate(steps):
            if isinstance(step, Structure) or not step.outputs:
                continue  # loops and conditionals run their bodies; an assertion still runs every time
            inputs = [n for n in step.inputs if n is not None]
            if step.type == "shape":
                derived.update(step.outputs)
                self.derived_steps.append(pos)
                self.shape_steps[pos] = (step.inputs[0], step.outputs[0])
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

    def known(self, key: tuple) -> tuple[set[int], dict[str, np.ndarray], dict[int, tuple[str, tuple[int, ...]]]]:
        """For a run at input shapes ``key``: (the steps it can skip, the values it starts from, and
        for each skipped Shape layer its input and the shape that the kept values assume)."""
        values: dict[str, np.ndarray] = {}
        skip: set[int] = set()
        checks: dict[int, tuple[str, tuple[int, ...]]] = {}
        if self._constants is not None:
            values.update(self._constants)
            skip.update(self.constant_steps)
        derived = self._derived.get(key)
        if derived is not None:
            values.update(derived)
            skip.update(self.derived_steps)
            for pos, (x, out) in self.shape_steps.items():
                if out in derived:
                    checks[pos] = (x, tuple(int(v) for v in derived[out]))
        return skip, values, checks

    def stale(self, skip: set[int], after: int) -> None:
        """A Shape layer at step ``after`` sees another shape than the kept values assume: from there
        on the run computes the shape-derived layers (``skip`` is the run's set, changed in place)."""
        skip.difference_update(p for p in self.derived_steps if p >= after)

    def keep(self, key: tuple, env: Mapping[str, Any], refresh: bool = False) -> None:
        """Keep the values a finished run at input shapes ``key`` computed (``refresh``: replacing stale ones)."""
        if self._constants is None:
            self._constants = {n: env[n] for n in self.constant_names if n in env}
        if refresh or key not in self._derived:
            if len(self._derived) >= SHAPES and key not in self._derived:
                self._derived.clear()
            self._derived[key] = {n: env[n] for n in self.derived_names if n in env}
