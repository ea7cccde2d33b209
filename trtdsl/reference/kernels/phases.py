"""im2col by stride phases, for strided kernels with many offsets per phase (a 7x7 stride-2 stem)."""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .scratch import kept


@dataclass(frozen=True)
class PhasePlan:
    """How a strided kernel's offsets fall into the stride phases of the padded input, per spatial dim.

    Padded input pixel ``o * s + f * d`` (output ``o``, kernel offset ``f``) lies in phase
    ``r = f * d % s`` at index ``o + f * d // s`` of that phase. The offsets of one phase
    step through it evenly, so each combination of phases fills its rows of the im2col
    matrix with one strided copy, each row a unit-stride run of the phase. The rows come
    phase by phase, so the weight matrix's columns are permuted to match (``columns``).
    """

    key: tuple
    lengths: tuple[int, ...]  # per dim: length of each phase
    fills: tuple[tuple[tuple[slice, slice], ...], ...]  # per dim, per phase: (phase slice, input slice)
    groups: tuple[tuple[tuple[int, int, int, tuple[int, ...]], ...], ...]  # per dim: (phase, first, step, offsets)

    def columns(self, channels: int) -> np.ndarray:
        """Weight-matrix column (c * prod(F) + flat offset) of each im2col row, in row order."""
        kernel = tuple(sum(len(g[3]) for g in dim) for dim in self.groups)
        out = []
        for combo in itertools.product(*self.groups):
            flat = np.ravel_multi_index(np.ix_(*(g[3] for g in combo)), kernel).reshape(-1)
            out.append((np.arange(channels)[:, None] * math.prod(kernel) + flat).reshape(-1))
        return np.concatenate(out)


@functools.lru_cache(maxsize=256)
def phase_plan(
    spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
    pre: tuple[int, ...], out: tuple[int, ...],
) -> PhasePlan:  # fmt: skip
    lengths, fills, groups = [], [], []
    for size, f, s, d, p, m in zip(spatial, kernel, stride, dilation, pre, out, strict=True):
        q = m + (f - 1) * d // s  # phase pixels any output reads
        by_phase: dict[int, list[int]] = {}
        for j in range(f):
            by_phase.setdefault(j * d % s, []).append(j)
        dim_groups = []
        for r, js in sorted(by_phase.items()):
            firsts = [j * d // s for j in js]
            dim_groups.append((r, firsts[0], firsts[1] - firsts[0] if len(js) > 1 else 1, tuple(js)))
        dim_fills = []
        for r in range(s):
            q0 = max(0, -((r - p) // s))  # first phase index at or after the input's start
            i0 = q0 * s + r - p
            count = max(0, min(q - q0, (size - 1 - i0) // s + 1))
            dim_fills.append((slice(q0, q0 + count), slice(i0, i0 + max(count - 1, 0) * s + 1, s)))
        lengths.append(q)
        fills.append(tuple(dim_fills))
        groups.append(tuple(dim_groups))
    return PhasePlan((spatial, kernel, stride, dilation, pre, out), tuple(lengths), tuple(fills), tuple(groups))


def im2col_phased(x: np.ndarray, cols: np.ndarray, plan: PhasePlan, out: tuple[int, ...]) -> None:
    """Fill ``cols`` (N, G, rows, prod(out)) from ``x`` (N, G, C/G, *L) in the phase order of ``plan``."""
    lead, nd = x.shape[:3], len(out)
    strides = tuple(len(dim) for dim in plan.fills)
    # The zero-padded input split into its stride phases, kept: only the input's boxes are
    # written, so the padding's zeros stay from the first call.
    phases = kept(("phases", x.shape, x.dtype, plan.key), lambda: np.zeros((*strides, *lead, *plan.lengths), x.dtype))
    for rs in itertools.product(*(range(s) for s in strides)):
        boxes = [plan.fills[i][r] for i, r in enumerate(rs)]
        if all(dst.stop > dst.start for dst, _ in boxes):
            phases[rs][(Ellipsis, *(dst for dst, _ in boxes))] = x[(Ellipsis, *(src for _, src in boxes))]
    pixel = phases.strides[-nd:]
    row = 0
    for combo in itertools.product(*plan.groups):
        start = phases[tuple(g[0] for g in combo)][(Ellipsis, *(slice(g[1], None) for g in combo))]
        counts = tuple(len(g[3]) for g in combo)
        view = as_strided(
            start, (*lead, *counts, *out), (*start.strides[:3], *(g[2] * st for g, st in zip(combo, pixel)), *pixel)
        )
        rows = lead[2] * math.prod(counts)
        cols[:, :, row : row + rows].reshape(*lead, *counts, *out)[...] = view
        row += rows
