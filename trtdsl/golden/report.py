"""What a comparison found: ``OutputReport`` per output and ``Report``, whose ``str`` is a table."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .tolerance import Tolerance


@dataclass
class OutputReport:
    """How one output compares. ``status`` is 'ok', 'mismatch', 'missing', 'extra', 'shape' or 'dtype'.

    Relative errors are taken over the elements whose expected value is nonzero;
    ``min_atol``/``min_rtol`` are ``inf`` when no tolerance can pass (a NaN
    against a number, or a nonzero error where the expected value is 0 for
    ``min_rtol``).
    """

    name: str
    status: str
    tolerance: Tolerance
    actual_shape: tuple[int, ...] | None = None
    expected_shape: tuple[int, ...] | None = None
    actual_dtype: str | None = None
    expected_dtype: str | None = None
    max_abs: float = float("nan")
    mean_abs: float = float("nan")
    max_rel: float = float("nan")
    mean_rel: float = float("nan")
    mismatch_percent: float = float("nan")
    mismatches: int = 0
    size: int = 0
    min_atol: float = float("nan")
    min_rtol: float = float("nan")
    worst_index: tuple[int, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __repr__(self) -> str:
        shape = self.expected_shape if self.expected_shape is not None else self.actual_shape
        tail = (
            f", {self.mismatches} of {self.size} elements exceed {self.tolerance}" if self.status == "mismatch" else ""
        )
        return f"OutputReport({self.name!r}, {self.status}, shape={shape}, max_abs={_num(self.max_abs)}{tail})"

    def describe(self) -> str:
        """One sentence on what failed (empty when ok)."""
        if self.status == "missing":
            return f"{self.name}: missing from the actual outputs"
        if self.status == "extra":
            return f"{self.name}: not in the expected outputs"
        if self.status == "shape":
            return f"{self.name}: shape {self.actual_shape} != expected {self.expected_shape}"
        if self.status == "dtype":
            return f"{self.name}: dtype {self.actual_dtype} != expected {self.expected_dtype}"
        if self.status == "mismatch":
            return (
                f"{self.name}: {self.mismatches} of {self.size} elements ({self.mismatch_percent:.4g}%) "
                f"exceed {self.tolerance}; worst at index {self.worst_index}; would pass with "
                f"atol>={self.min_atol:.3g} (rtol={self.tolerance.rtol:g}) or rtol>={self.min_rtol:.3g} "
                f"(atol={self.tolerance.atol:g})"
            )
        return ""


_COLUMNS = ("output", "status", "shape", "max abs", "mean abs", "max rel", "mean rel", "mismatch", "atol", "rtol", "min atol", "min rtol")  # fmt: skip


def _shape(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "-"
    return "x".join(map(str, shape)) if shape else "scalar"


def _num(x: float) -> str:
    return "-" if np.isnan(x) else f"{x:.3g}"


@dataclass
class Report:
    """The comparison of several outputs; ``str(report)`` is a table, ``report[name]`` one row."""

    outputs: dict[str, OutputReport] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.outputs.values())

    @property
    def failures(self) -> list[OutputReport]:
        return [r for r in self.outputs.values() if not r.ok]

    def __getitem__(self, name: str) -> OutputReport:
        return self.outputs[name]

    def __iter__(self):
        return iter(self.outputs.values())

    def __len__(self) -> int:
        return len(self.outputs)

    def __str__(self) -> str:
        rows = [_COLUMNS]
        for r in self.outputs.values():
            shape = r.expected_shape if r.expected_shape is not None else r.actual_shape
            mismatch = "-" if np.isnan(r.mismatch_percent) else f"{r.mismatch_percent:.4g}%"
            rows.append((
                r.name, r.status, _shape(shape),
                _num(r.max_abs), _num(r.mean_abs), _num(r.max_rel), _num(r.mean_rel), mismatch,
                f"{r.tolerance.atol:g}", f"{r.tolerance.rtol:g}", _num(r.min_atol), _num(r.min_rtol),
            ))  # fmt: skip
        widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        verdict = "all outputs match" if self.ok else f"{len(self.failures)} of {len(self)} outputs FAIL"
        notes = [r.describe() for r in self.failures]
        return "\n".join([*lines, verdict, *notes])

    def __repr__(self) -> str:
        failing = [r.name for r in self.failures]
        return f"Report(ok={self.ok}, outputs={list(self.outputs)}" + (f", failing={failing})" if failing else ")")
