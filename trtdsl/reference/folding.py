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
once, shape-derived ones per input shapes (up to ``SHAPES`` sets of them), up to ``BUDGET``
bytes in all: a value past it (the dequantized weights of a large quantized network) is
computed in every run, and its layer runs. A shape can
depend on values too (a NonZero's output, a reshape to dims read from an input), so kept
shape-derived values are used only while they hold: at each Shape layer the run compares
the shape of its input with the kept value, and from the first that differs it computes
the shape-derived layers again (and keeps the new values). Kept values are never donated, pooled or fused away (the interpreter treats them as
exported; the pool takes no array that something else holds), and an output among them is
copied before it is returned. Runs that capture or observe tensors compute everything
(an observer sees each tensor as its layer computes it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .control import Structure
from .registry import Node

SHAPES = 8  # sets of input shapes whose shape-derived values are kept
BUDGET = 256 << 20  # bytes of kept values at most


class Made(dict):
    """The values a run noted for keeping (name -> array), and their bytes."""

    size = 0


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
        self.outputs = {p: steps[p].outputs for p in (*self.constant_steps, *self.derived_steps)}
        # Kept values, each with the steps whose outputs they all hold (those a run skips).
        self._constants: tuple[dict[str, np.ndarray], frozenset[int]] | None = None
        self._derived: dict[tuple, tuple[dict[str, np.ndarray], frozenset[int]]] = {}

    def known(self, key: tuple) -> tuple[set[int], dict[str, np.ndarray], dict[int, tuple[str, tuple[int, ...]]]]:
        """For a run at input shapes ``key``: (the steps it can skip, the values it starts from, and
        for each skipped Shape layer its input and the shape that the kept values assume)."""
        values: dict[str, np.ndarray] = {}
        skip: set[int] = set()
        checks: dict[int, tuple[str, tuple[int, ...]]] = {}
        for entry in (self._constants, self._derived.get(key)):
            if entry is not None:
                values.update(entry[0])
                skip.update(entry[1])
        for pos, (x, out) in self.shape_steps.items():
            if pos in skip:
                checks[pos] = (x, tuple(int(v) for v in values[out]))
        return skip, values, checks

    def stale(self, skip: set[int], after: int) -> None:
        """A Shape layer at step ``after`` sees another shape than the kept values assume: from there
        on the run computes the shape-derived layers (``skip`` is the run's set, changed in place)."""
        skip.difference_update(p for p in self.derived_steps if p >= after)

    def record(self, pos: int, env: Mapping[str, Any], made: Made) -> None:
        """Note the values that step ``pos`` (one of ``outputs``) just computed into ``made``, while
        they fit in ``BUDGET`` (a value noted is held to the end of the run, past its last use)."""
        for n in self.outputs[pos]:
            a = env.get(n)
            if a is not None and made.size + a.nbytes <= BUDGET:
                made[n] = a
                made.size += a.nbytes

    def keep(self, key: tuple, made: Mapping[str, np.ndarray], refresh: bool = False) -> None:
        """Keep the values a finished run at input shapes ``key`` made (``refresh``: after stale ones)."""
        if self._constants is None:
            self._constants = self._entry(self.constant_steps, self.constant_names, {}, made, BUDGET)
        if refresh or key not in self._derived:
            if len(self._derived) >= SHAPES and key not in self._derived:
                self._derived.clear()
            earlier = self._derived.get(key, ({}, frozenset()))[0]  # what the run started from stays valid
            room = BUDGET - sum(a.nbytes for a in self._constants[0].values())
            self._derived[key] = self._entry(self.derived_steps, self.derived_names, earlier, made, room)

    def _entry(
        self, steps: list[int], names: frozenset[str], earlier: Mapping[str, np.ndarray],
        made: Mapping[str, np.ndarray], room: int,
    ) -> tuple[dict[str, np.ndarray], frozenset[int]]:  # fmt: skip
        """Values of ``names`` (``made`` over ``earlier``) within ``room`` bytes, and the steps they cover."""
        values: dict[str, np.ndarray] = {}
        for n, a in {**earlier, **made}.items():  # a value made again replaces the earlier one
            if n in names and a.nbytes <= room:
                values[n] = a
                room -= a.nbytes
        return values, frozenset(p for p in steps if all(n in values for n in self.outputs[p]))
