"""Comparing outputs against golden ones with tolerances: ``compare``, ``compare_files``, ``assert_golden``.

Tolerances live in :mod:`trtdsl.golden.tolerance`, the files in
:mod:`trtdsl.golden.files` and the reports in :mod:`trtdsl.golden.report`; their
names are re-exported here and from :mod:`trtdsl.golden`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import GoldenMismatch, TrtdslError
from .files import load, narrow_type, record
from .report import OutputReport, Report
from .tolerance import DEFAULT_TOLERANCES, EXACT, Tolerance, TolerancePolicy

UPDATE_ENV = "TRTDSL_UPDATE_GOLDEN"

__all__ = [
    "DEFAULT_TOLERANCES", "EXACT", "UPDATE_ENV", "OutputReport", "Report", "Tolerance", "TolerancePolicy",
    "assert_golden", "compare", "compare_files", "load", "record",
]  # fmt: skip


def _pick(
    name: str, expected: np.ndarray | None, tolerance: TolerancePolicy, overrides: Mapping[str, Tolerance]
) -> Tolerance:
    if name in overrides:
        return overrides[name]
    if isinstance(tolerance, Tolerance):
        return tolerance
    narrow = None if expected is None else narrow_type(expected)
    if narrow is not None and dtypes.TABLE[narrow].kind == "int":
        return EXACT
    if expected is not None and expected.dtype.kind in "biu":
        return EXACT  # integer outputs (indices, counts) are exact unless overridden
    if tolerance is None and narrow is not None:
        return Tolerance.for_precision(narrow)
    if tolerance is None:
        kind = expected.dtype.name if expected is not None and expected.dtype.kind == "f" else "float32"
        return Tolerance.for_precision("float32" if kind == "float64" else kind)
    return Tolerance.for_precision(tolerance)


def _nudge(need: float, fails: Any, diff: np.ndarray, scale: np.ndarray) -> float:
    """Raise ``need`` until ``fails(need)`` is empty.

    Rounding in ``atol + rtol*|e|`` can land an ulp short of the error it was
    solved for; each step adds an ulp of the largest failing error (divided by
    ``scale`` for rtol), so a few steps suffice whatever the magnitudes.
    """
    bad = fails(need)
    while need < np.inf and np.any(bad):
        need = float(need + np.max(np.spacing(diff[bad]) / scale[bad]))
        bad = fails(need)
    return need


def _required_atol(diff: np.ndarray, mag: np.ndarray, bad_nan: bool, tol: Tolerance) -> float:
    if bad_nan:
        return float("inf")
    need = max(float(np.max(diff - tol.rtol * mag, initial=0.0)), 0.0)
    return _nudge(need, lambda t: diff > t + tol.rtol * mag, diff, np.ones_like(diff))


def _required_rtol(diff: np.ndarray, mag: np.ndarray, bad_nan: bool, tol: Tolerance) -> float:
    over = diff > tol.atol
    if bad_nan or np.any(over & (mag == 0)):
        return float("inf")
    if not np.any(over):
        return 0.0
    need = float(np.max((diff[over] - tol.atol) / mag[over]))
    return _nudge(need, lambda t: diff > tol.atol + t * mag, diff, np.where(mag > 0, mag, 1.0))


def _compare_one(
    name: str, actual: np.ndarray, expected: np.ndarray, tol: Tolerance, check_dtype: bool
) -> OutputReport:
    r = OutputReport(
        name, "ok", tol, tuple(actual.shape), tuple(expected.shape), actual.dtype.name, expected.dtype.name
    )
    if actual.shape != expected.shape:
        r.status = "shape"
        return r
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    both_nan = np.isnan(a) & np.isnan(e)
    same = (a == e) | both_nan  # covers equal infinities, whose difference is NaN
    with np.errstate(invalid="ignore"):  # inf - inf; such pairs are handled by `same` or become inf below
        diff = np.where(same, 0.0, np.abs(a - e))
    diff = np.where(np.isnan(diff), np.inf, diff)  # NaN against a number, or opposite infinities
    one_nan = bool(np.any(np.isnan(a) ^ np.isnan(e)))
    mag = np.where(np.isfinite(e), np.abs(e), 0.0)
    fail = diff > tol.atol + tol.rtol * mag
    r.size = int(a.size)
    r.mismatches = int(np.count_nonzero(fail))
    r.mismatch_percent = 100.0 * r.mismatches / a.size if a.size else 0.0
    r.max_abs = float(np.max(diff, initial=0.0))
    r.mean_abs = float(np.mean(diff)) if a.size else 0.0
    nonzero = mag > 0
    rel = diff[nonzero] / mag[nonzero]
    r.max_rel = float(np.max(rel, initial=0.0))
    r.mean_rel = float(np.mean(rel)) if rel.size else 0.0
    r.min_atol = _required_atol(diff, mag, one_nan, tol)
    r.min_rtol = _required_rtol(diff, mag, one_nan, tol)
    if a.size:
        score = np.where(fail, diff - tol.rtol * mag, -np.inf) if r.mismatches else diff
        r.worst_index = tuple(int(i) for i in np.unravel_index(int(np.argmax(score)), a.shape))
    if r.mismatches:
        r.status = "mismatch"
    elif check_dtype and actual.dtype != expected.dtype:
        r.status = "dtype"
    return r


def compare(
    actual: Mapping[str, Any] | str | os.PathLike,
    expected: Mapping[str, Any] | str | os.PathLike,
    tolerance: TolerancePolicy = None,
    *,
    overrides: Mapping[str, Tolerance] | None = None,
    check_dtype: bool = True,
) -> Report:
    """Compare two dicts of outputs, output by output; either may be a file written by ``record``.

    ``tolerance``: a ``Tolerance`` for every output; a precision name
    ('float32', 'float16', 'bfloat16', 'int8') for its defaults; or ``None``
    for defaults by each expected array's dtype. Integer and bool outputs are
    exact unless a ``Tolerance`` is given. ``overrides`` maps output names to
    their own ``Tolerance``. Missing and extra outputs, shape mismatches and
    (with ``check_dtype``) dtype mismatches fail.

    Example::

        report = compare(outs, golden, "float16", overrides={"boxes": Tolerance(atol=0.5, rtol=0)})
        assert report.ok, str(report)
        report = compare(outs, "tests/golden/resnet.npz")  # the file's 'precision' when tolerance is None
    """
    if isinstance(expected, (str, os.PathLike)):
        expected, meta = load(expected)
        tolerance = tolerance if tolerance is not None else meta.get("precision")
    if isinstance(actual, (str, os.PathLike)):
        actual, _ = load(actual)
    for what, value in (("actual", actual), ("expected", expected)):
        if not isinstance(value, Mapping):
            raise TrtdslError(
                f"compare: {what} must be a dict of output name -> array or the path of a file written by "
                f"golden.record, got {type(value).__name__}"
            )
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(expected) - set(actual)
    if unknown:
        raise TrtdslError(f"tolerance overrides name unknown outputs {sorted(unknown)}; outputs are {sorted(expected)}")
    report = Report()
    for name, value in expected.items():
        e = np.asarray(value)
        tol = _pick(name, e, tolerance, overrides)
        if name not in actual:
            report.outputs[name] = OutputReport(
                name, "missing", tol, expected_shape=e.shape, expected_dtype=e.dtype.name
            )
            continue
        report.outputs[name] = _compare_one(name, np.asarray(actual[name]), e, tol, check_dtype)
    for name, value in actual.items():
        if name not in expected:
            a = np.asarray(value)
            tol = _pick(name, a, tolerance, overrides)
            report.outputs[name] = OutputReport(name, "extra", tol, actual_shape=a.shape, actual_dtype=a.dtype.name)
    return report


def compare_files(
    actual: str | os.PathLike, expected: str | os.PathLike, tolerance: TolerancePolicy = None, **kw: Any
) -> Report:
    """``compare`` two files written by ``record``; ``tolerance`` defaults to the expected file's 'precision'."""
    return compare(actual, expected, tolerance, **kw)


def assert_golden(
    actual: Mapping[str, Any],
    golden: str | os.PathLike | Mapping[str, Any],
    tolerance: TolerancePolicy = None,
    update: bool = False,
    *,
    overrides: Mapping[str, Tolerance] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Report:
    """Raise ``GoldenMismatch`` with the report table unless ``actual`` matches ``golden``.

    ``golden`` is a file written by ``record`` or a dict of arrays. With
    ``update=True`` or ``TRTDSL_UPDATE_GOLDEN=1`` in the environment, a golden
    *file* is (re)written from ``actual`` (with ``metadata``) instead. When
    ``tolerance`` is None and the golden file's metadata names a 'precision',
    that precision's defaults apply.

    Example::

        def test_resnet(net, feeds):
            assert_golden(trtdsl.reference.run(net, feeds), "tests/golden/resnet.npz", "float16")
    """
    if isinstance(golden, Mapping):
        if update:
            raise TrtdslError("assert_golden(update=True) needs a golden file path, not a dict of arrays")
        expected, meta, source = dict(golden), {}, "the given golden outputs"
    else:
        path = Path(golden)
        if update or os.environ.get(UPDATE_ENV, "") not in ("", "0"):
            record(actual, path, metadata=metadata)
            return compare(actual, actual, tolerance, overrides=overrides)
        if not path.exists():
            raise GoldenMismatch(
                f"golden file {str(path)!r} does not exist; run with {UPDATE_ENV}=1 "
                "(or assert_golden(..., update=True)) to create it"
            )
        expected, meta = load(path)
        source = f"golden file {str(path)!r}"
    if tolerance is None:
        tolerance = meta.get("precision")
    report = compare(actual, expected, tolerance, overrides=overrides)
    if not report.ok:
        raise GoldenMismatch(f"outputs differ from {source}:\n{report}")
    return report
