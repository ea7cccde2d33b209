"""Recording golden outputs and comparing against them: tolerances, reports, ``assert_golden``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import GoldenMismatch, TrtdslError

UPDATE_ENV = "TRTDSL_UPDATE_GOLDEN"
_META_KEY = "__metadata__"
_DTYPES_KEY = "__dtypes__"  # narrow (ml_dtypes) outputs, stored as exact float32/int8 values


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


# ---------------------------------------------------------------------- files
def record(outputs: Mapping[str, Any], path: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``outputs`` (name -> array) and JSON-serializable ``metadata`` to an ``.npz`` file.

    The file loads with ``numpy.load(path, allow_pickle=False)``: metadata is
    stored as a 0-d unicode array holding JSON.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    narrow: dict[str, str] = {}
    for name, value in outputs.items():
        if name in (_META_KEY, _DTYPES_KEY):
            raise TrtdslError(f"golden record {str(path)!r}: output name {name!r} is reserved")
        array = np.asarray(value)
        narrow_name = _narrow(array)
        if narrow_name is not None:
            # npz has no bfloat16/fp8 dtype: keep the exact values in the storage dtype and the type by name.
            narrow[name] = narrow_name
            array = array.astype(dtypes.to_numpy(narrow_name))
        if array.dtype.hasobject or array.dtype.kind not in "biuf":
            raise TrtdslError(
                f"golden record {str(path)!r}: output {name!r} has dtype {array.dtype}; "
                "golden files hold numeric or bool arrays only"
            )
        arrays[name] = array
    try:
        meta = json.dumps(dict(metadata or {}), sort_keys=True)
    except TypeError as e:
        raise TrtdslError(f"golden record {str(path)!r}: metadata is not JSON-serializable: {e}") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # an open file keeps numpy from appending '.npz' to the name
        extra = {_DTYPES_KEY: np.array(json.dumps(narrow))} if narrow else {}
        np.savez_compressed(f, **arrays, **{_META_KEY: np.array(meta)}, **extra)
    return path


def load(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(outputs, metadata)`` from a file written by ``record`` (or any ``.npz`` of plain arrays)."""
    path = Path(path)
    if not path.exists():
        raise TrtdslError(f"golden file {str(path)!r} does not exist")
    if not path.is_file():
        raise TrtdslError(f"golden file {str(path)!r} is not a file")
    outputs: dict[str, np.ndarray] = {}
    metadata: Any = {}
    narrow: Any = {}
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # garbage, a truncated zip, a pickle: numpy fails in many ways, none a crash here
        raise TrtdslError(f"golden file {str(path)!r} is not a readable .npz: {type(e).__name__}: {e}") from e
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise TrtdslError(
            f"golden file {str(path)!r} holds one bare array (.npy); golden files are .npz of named arrays"
        )
    with data:
        for name in data.files:
            try:
                array = data[name]
            except ValueError as e:  # numpy's refusal to unpickle an object array
                raise TrtdslError(
                    f"golden file {str(path)!r}: array {name!r} is a pickled object array; "
                    f"golden files hold plain arrays only, and trtdsl does not unpickle ({e})"
                ) from e
            except Exception as e:
                raise TrtdslError(
                    f"golden file {str(path)!r}: cannot read array {name!r}: {type(e).__name__}: {e}"
                ) from e
            if name == _META_KEY:
                try:
                    metadata = json.loads(str(array)) if array.dtype.kind == "U" else json.loads(bytes(array).decode())
                except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as e:
                    raise TrtdslError(f"golden file {str(path)!r}: metadata is not valid JSON: {e}") from e
                if not isinstance(metadata, dict):
                    raise TrtdslError(
                        f"golden file {str(path)!r}: metadata must be a JSON object, got {type(metadata).__name__}"
                    )
            elif name == _DTYPES_KEY and array.dtype.kind == "U":
                try:
                    narrow = json.loads(str(array))
                except (ValueError, RecursionError) as e:
                    raise TrtdslError(f"golden file {str(path)!r}: its dtype record is not valid JSON: {e}") from e
            elif array.dtype.kind not in "biuf":
                raise TrtdslError(
                    f"golden file {str(path)!r}: array {name!r} has dtype {array.dtype}; golden files hold numeric "
                    "or bool arrays only"
                )
            else:
                outputs[name] = array
    for name, dt in narrow.items() if isinstance(narrow, dict) else ():
        if name in outputs and isinstance(dt, str) and dtypes.canonical(dt) in dtypes.TABLE:
            outputs[name] = outputs[name].astype(dtypes.holder(dt))
    return outputs, metadata


def _narrow(array: np.ndarray) -> str | None:
    """The canonical name of an ``ml_dtypes`` array's type (bfloat16, fp8, ...), else None."""
    if array.dtype.kind != "V":
        return None
    try:
        name = dtypes.canonical(array.dtype)
    except TrtdslError:
        return None
    return name if dtypes.TABLE[name].narrow else None


# ----------------------------------------------------------------- comparison
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


def _pick(
    name: str, expected: np.ndarray | None, tolerance: TolerancePolicy, overrides: Mapping[str, Tolerance]
) -> Tolerance:
    if name in overrides:
        return overrides[name]
    if isinstance(tolerance, Tolerance):
        return tolerance
    narrow = None if expected is None else _narrow(expected)
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
    actual: Mapping[str, Any],
    expected: Mapping[str, Any],
    tolerance: TolerancePolicy = None,
    *,
    overrides: Mapping[str, Tolerance] | None = None,
    check_dtype: bool = True,
) -> Report:
    """Compare two dicts of outputs, output by output.

    ``tolerance``: a ``Tolerance`` for every output; a precision name
    ('float32', 'float16', 'bfloat16', 'int8') for its defaults; or ``None``
    for defaults by each expected array's dtype. Integer and bool outputs are
    exact unless a ``Tolerance`` is given. ``overrides`` maps output names to
    their own ``Tolerance``. Missing and extra outputs, shape mismatches and
    (with ``check_dtype``) dtype mismatches fail.

    Example::

        report = compare(outs, golden, "float16", overrides={"boxes": Tolerance(atol=0.5, rtol=0)})
        assert report.ok, str(report)
    """
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
    a, _ = load(actual)
    e, meta = load(expected)
    return compare(a, e, tolerance if tolerance is not None else meta.get("precision"), **kw)


# ------------------------------------------------------------------- pytest
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
