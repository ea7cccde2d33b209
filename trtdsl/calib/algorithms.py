"""Range algorithms: pure functions of a histogram of ``|x|`` (``counts, edges -> amax``).

Each is the published algorithm, vectorized over every candidate threshold
(array operations, no Python loop per threshold), choosing the same candidate as
the published loop:

- ``max``: the right edge of the last non-empty bin (calibrators track the exact max instead).
- ``percentile``: ModelOpt / pytorch-quantization ``_compute_amax_percentile``:
  ``edges[searchsorted(cumsum(counts / total), p / 100)]``.
- ``entropy``: ModelOpt / pytorch-quantization ``_compute_amax_entropy``: ``bins[0] = bins[1]``,
  candidates ``i = start_bin .. len(bins)`` bins kept, 128 levels, KL divergence of the
  clipped reference against the quantized-and-expanded candidate, the *last* minimum wins
  and ``amax = edges[i]``.
- ``entropy-legacy``: TensorRT's EntropyCalibration2 as NVIDIA's 2017 GTC talk S7310
  ("8-bit Inference with TensorRT") gives it: candidates ``i = 128 .. len(bins) - 1``,
  bins merged ``i // 128`` at a time (the last level takes the remainder), the *first*
  minimum wins and ``amax = (i + 0.5) * width``.
- ``mse``: ModelOpt ``_compute_amax_mse``: candidates are the bin centers ``i >= start_bin``,
  the error is ``sum(counts * (Q(centers) - centers)**2)``, the first minimum wins. INT8
  rounds half to even and clips at 127; FP8 clips at 448 and rounds to E4M3 (ml_dtypes).

The KL divergence of each candidate is computed in closed form from prefix sums (in
``np.longdouble``, whose extra precision keeps the cancellation in ``sum p log p -
sum p log q`` far below the 1e-12 relative near-tie margin). The MSE of every candidate is
screened in closed form (two gathers of prefix sums and two dot products per block of
candidates, with a bound on its rounding), and the few candidates the bound cannot rule
out are evaluated from exact integer moments over the ranges of bins that round to each
quantized level (``mse_errors``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import CalibrationError

__all__ = [
    "ALGORITHMS",
    "QMAX",
    "compute_amax",
    "entropy",
    "entropy_divergences",
    "entropy_legacy",
    "entropy_legacy_divergences",
    "fp8_levels",
    "max_amax",
    "mse",
    "mse_errors",
    "percentile",
]

QMAX = {d: dtypes.qmax(d) for d in ("int8", "fp8")}  # 127 and 448, from the dtype table
_INTEGER_ONLY = ("entropy", "entropy-legacy")
_LD = np.longdouble

AlgorithmFn = Callable[..., float]
ALGORITHMS: dict[str, AlgorithmFn] = {}


def algorithm(name: str) -> Callable[[AlgorithmFn], AlgorithmFn]:
    """Register a range algorithm ``fn(counts, edges, **options) -> amax`` under ``name``."""

    def wrap(fn: AlgorithmFn) -> AlgorithmFn:
        ALGORITHMS[name] = fn
        return fn

    return wrap


def _check(counts: Any, edges: Any) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(counts)
    e = np.asarray(edges, dtype=np.float64)
    if c.ndim != 1 or e.ndim != 1 or e.size != c.size + 1:
        raise CalibrationError(
            f"a histogram needs 1-D counts and len(counts) + 1 edges, got counts {c.shape} and edges {e.shape}"
        )
    if c.size == 0 or (c.dtype.kind == "f" and not np.all(np.isfinite(c))) or np.any(c < 0):
        raise CalibrationError("histogram counts must be finite, non-negative and not empty")
    if c.dtype.kind not in "iuf":
        raise CalibrationError(f"histogram counts must be numbers, got dtype {c.dtype}")
    # Increasing between finite ends means finite throughout (a NaN fails every comparison).
    if not (math.isfinite(e[0]) and math.isfinite(e[-1]) and bool((e[1:] > e[:-1]).all())):
        bad = e[~np.isfinite(e)][:3] if not np.all(np.isfinite(e)) else e[1:][np.diff(e) <= 0][:3]
        raise CalibrationError(f"histogram edges must be finite and strictly increasing; got {bad.tolist()} among them")
    return c, e


_MAX_TOTAL = 2**62  # counts past this (4.6e18 values) would overflow the int64 prefix sums


def _integer_counts(counts: Any) -> np.ndarray:
    """Counts as int64 (prefix sums over them are exact); fractional counts are refused.

    So are counts whose total reaches 2**62: int64 prefix sums would wrap around silently
    (a uint64 or float histogram can hold such counts; no calibration run collects them).
    """
    c = np.asarray(counts)
    total = float(c.sum(dtype=np.float64))
    if total >= _MAX_TOTAL:
        raise CalibrationError(
            f"histogram counts total {total:.3g}, at or past 2**62; the algorithms need a total below that "
            "(rescale the counts, e.g. counts // 1000, which keeps their proportions)"
        )
    if c.dtype.kind == "f":
        if np.any(c != np.floor(c)):
            raise CalibrationError("histogram counts must be whole numbers")
        return c.astype(np.int64)
    return c.astype(np.int64, copy=True)


def _need_bins(n: int, start_bin: int, name: str) -> None:
    if n < start_bin:
        raise CalibrationError(
            f"{name}: the histogram has {n} bins, fewer than start_bin={start_bin}; collect with more bins "
            "(the default is 2048) or lower start_bin"
        )


# ------------------------------------------------------------------------ max
@algorithm("max")
def max_amax(counts: Any, edges: Any, **_: Any) -> float:
    """The right edge of the last non-empty bin (0.0 for an empty histogram).

    Example::

        amax = max_amax(np.array([3, 0, 1, 0]), np.linspace(0, 4, 5))   # 3.0
    """
    c, e = _check(counts, edges)
    nz = np.flatnonzero(c)
    return 0.0 if nz.size == 0 else float(e[nz[-1] + 1])


# ----------------------------------------------------------------- percentile
@algorithm("percentile")
def percentile(counts: Any, edges: Any, *, percentile: float = 99.99, **_: Any) -> float:
    """The amax that keeps ``percentile`` percent of the values (ModelOpt's bin choice: a left edge).

    Example::

        amax = percentile(counts, edges, percentile=99.9)
    """
    c, e = _check(counts, edges)
    if not 0 <= percentile <= 100:
        raise CalibrationError(f"percentile must be in [0, 100], got {percentile}")
    total = c.sum(dtype=np.float64)  # an int64 or uint64 sum could wrap around
    if total == 0:
        return 0.0
    cdf = np.cumsum(c / total)
    idx = int(np.searchsorted(cdf, percentile / 100))
    return float(e[min(idx, e.size - 1)])


# -------------------------------------------------------------------- entropy
def _kl_from_levels(bins: np.ndarray, lo: np.ndarray, hi: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """KL(P || Q) per candidate, where candidate t keeps ``kept[t]`` bins merged into levels ``[lo, hi)``.

    P is the kept bins with every count beyond added to the last kept bin; Q spreads
    each level's count evenly over its non-empty bins (zeros stay zero). Both are
    normalized, as ``scipy.stats.entropy`` does. Closed form:
    ``KL = (sum p log p - sum p log q) / P + log(Q / P)``; the level sums come from
    integer prefix sums (exact), so only the logarithms round.
    """
    n = bins.size
    total = float(bins.sum())
    cb = np.concatenate([[0], np.cumsum(bins)])
    nz = bins > 0
    cn = np.concatenate([[0], np.cumsum(nz)])
    blogb = np.zeros(n, _LD)
    blogb[nz] = bins[nz].astype(_LD) * np.log(bins[nz].astype(_LD))
    cbl = np.concatenate([[0], np.cumsum(blogb)])
    s = (cb[hi] - cb[lo]).astype(np.float64)
    cnt = cn[hi] - cn[lo]
    with np.errstate(divide="ignore", invalid="ignore"):
        level = s * np.log(s / cnt)
    level[cnt == 0] = 0.0
    b_sum = level.sum(axis=1, dtype=_LD)
    a_sum = cbl[kept]
    q_total = cb[kept].astype(np.float64)
    tail = total - q_total
    last = bins[kept - 1].astype(np.float64)
    q_last = s[:, -1] / np.maximum(cnt[:, -1], 1)
    fix = tail > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        p_last = (last + tail).astype(_LD)
        a_fix = p_last * np.log(p_last) - np.where(last > 0, last.astype(_LD) * np.log(last.astype(_LD)), 0)
        a_sum = np.where(fix, a_sum + a_fix, a_sum)
        b_sum = np.where(fix, b_sum + tail.astype(_LD) * np.log(q_last), b_sum)
        kl = (a_sum - b_sum) / _LD(total) + np.log(q_total / total)
    # Outliers piled on an empty last bin (q = 0 where p > 0) diverge: scipy gives inf. Nothing kept at
    # all normalizes 0 / 0: scipy gives NaN, and np.argmin takes a NaN as the minimum; so do we, as published.
    kl = np.where(fix & (last == 0), np.inf, kl.astype(np.float64))
    return np.where(q_total == 0, np.nan, kl)


def entropy_divergences(
    counts: Any, *, levels: int = 128, start_bin: int = 128, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, divergence)`` for every candidate of ModelOpt's entropy search (``bins[0] = bins[1]`` first)."""
    bins = _integer_counts(counts)
    if bins.size > 1:
        bins[0] = bins[1]
    n = bins.size
    _need_bins(n, start_bin, "entropy")
    kept = np.arange(start_bin, n + 1, stride)
    k = np.arange(levels)
    # np.digitize(range(i), linspace(0, i, levels + 1)) - 1 puts bin j in level floor(j * levels / i)
    # exactly (i / levels is a dyadic fraction), so level k holds j in [ceil(k i / L), ceil((k + 1) i / L)).
    lo = -((-k[None, :] * kept[:, None]) // levels)
    hi = -((-(k[None, :] + 1) * kept[:, None]) // levels)
    return kept, _kl_from_levels(bins, lo, hi, kept)


@algorithm("entropy")
def entropy(counts: Any, edges: Any, *, levels: int = 128, start_bin: int = 128, stride: int = 1, **_: Any) -> float:
    """The amax minimizing the KL divergence, exactly as ModelOpt / pytorch-quantization publish it.

    Example::

        amax = entropy(hist.counts, hist.edges)
    """
    c, e = _check(counts, edges)
    if not np.any(c):
        return 0.0
    kept, kl = entropy_divergences(c, levels=levels, start_bin=start_bin, stride=stride)
    best = len(kl) - 1 - int(np.argmin(kl[::-1]))  # the last minimum, as the published loop takes
    return float(e[kept[best]])


def entropy_legacy_divergences(
    counts: Any, *, levels: int = 128, start_bin: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """``(kept, divergence)`` for every candidate of the 2017 talk's EntropyCalibration2 search."""
    bins = _integer_counts(counts)
    n = bins.size
    _need_bins(n + 1, start_bin + 1, "entropy-legacy")
    kept = np.arange(start_bin, n)
    if kept.size == 0:
        raise CalibrationError(f"entropy-legacy: the histogram has {n} bins; it needs more than start_bin={start_bin}")
    merged = kept // levels
    k = np.arange(levels)
    lo = k[None, :] * merged[:, None]
    hi = np.where(k[None, :] == levels - 1, kept[:, None], (k[None, :] + 1) * merged[:, None])
    return kept, _kl_from_levels(bins, lo, hi, kept)


@algorithm("entropy-legacy")
def entropy_legacy(counts: Any, edges: Any, *, levels: int = 128, start_bin: int = 128, **_: Any) -> float:
    """TensorRT's EntropyCalibration2 as the 2017 GTC talk describes it: ``threshold = (m + 0.5) * width``.

    Example::

        amax = entropy_legacy(hist.counts, hist.edges)
    """
    c, e = _check(counts, edges)
    if not np.any(c):
        return 0.0
    kept, kl = entropy_legacy_divergences(c, levels=levels, start_bin=start_bin)
    kl = np.where(np.isnan(kl), np.inf, kl)  # nothing kept: no candidate (the talk's loop has no such case)
    m = int(kept[int(np.argmin(kl))])  # the first minimum
    width = e[1] - e[0]
    return float(e[0] + (m + 0.5) * width)


# ------------------------------------------------------------------------ mse
def fp8_levels() -> np.ndarray:
    """The non-negative finite float8 E4M3 values, ascending (0 ... 448)."""
    import ml_dtypes

    every = np.arange(256, dtype=np.uint16).astype(np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    return np.unique(np.abs(every[np.isfinite(every)]))


def _grid(dtype: str) -> tuple[np.ndarray, int]:
    """The non-negative levels as integers ``G`` and the integer ``K`` with ``levels = G / scale``, ``K = max * scale``."""
    if dtype == "int8":
        k = int(QMAX["int8"])
        return np.arange(k + 1, dtype=np.int64), k
    if dtype == "fp8":
        # E4M3 values are multiples of 2**-9: scaled by 512 they are integers.
        return (fp8_levels() * 512).astype(np.int64), int(QMAX["fp8"]) * 512
    raise CalibrationError(f"dtype must be 'int8' or 'fp8', got {dtype!r}")


def _mse_setup(c: np.ndarray, e: np.ndarray, dtype: str, start_bin: int, stride: int):
    """What both mse paths start from, for a histogram ``_check`` has passed."""
    n = c.size
    width = (e[-1] - e[0]) / n
    if abs(e[0]) > 1e-12 * abs(e[-1]) or not np.allclose(np.diff(e), width, rtol=1e-6, atol=0):
        raise CalibrationError("mse needs uniform bins starting at 0 (a histogram of |x|)")
    _need_bins(n, start_bin + 1, "mse")
    grid, k = _grid(dtype)
    return _integer_counts(c), np.arange(start_bin, n, stride), grid, k, width


def _level_bounds(cand: np.ndarray, grid: np.ndarray, k: int, n: int, out: np.ndarray | None = None) -> np.ndarray:
    """``bounds[t, g]``: the first bin that rounds to level ``g + 1`` at candidate ``cand[t]`` (float, integral).

    In units of half a bin a center is ``2j + 1`` and the candidate amax ``a = 2i + 1``. Bin
    ``j`` is in level ``g`` when ``K (2j + 1) >= mid(G[g-1], G[g]) a``, i.e. ``4K j >= (G[g-1]
    + G[g]) a - 2K``; the top level takes everything above (the clipping). The numerator is an
    exact integer below 2**53 whose quotient is never within 1e-6 of an integer unless it is
    one, so the float ceil is the integer ceil. Level 0 starts at bin 0.
    """
    num = np.multiply.outer((2 * cand + 1).astype(np.float64), (grid[1:] + grid[:-1]).astype(np.float64), out=out)
    num -= 2 * k
    num /= 4 * k
    np.ceil(num, out=num)
    return np.clip(num, 0, n, out=num)


def _mse_careful(w: np.ndarray, cand: np.ndarray, grid: np.ndarray, k: int) -> np.ndarray:
    """The scaled error ``sum_j w_j (K (2j + 1) - G a)**2`` of each candidate, from moments exact in integers.

    The moments of ``t = j - lo`` over each level are integers kept small by the shift, so
    only the final sums of squares round. At an exact midpoint both levels give the same
    error, so where the tie goes cannot change the sum.
    """
    n = w.size
    a2 = 2 * cand[:, None] + 1
    bounds = np.empty((cand.size, grid.size + 1), np.int64)
    bounds[:, 0], bounds[:, -1] = 0, n
    bounds[:, 1:-1] = _level_bounds(cand, grid, k, n)
    j = np.arange(n, dtype=np.int64)
    lo = bounds[:, :-1]
    if int(w.sum()) * 4 * n * n >= 2**63:  # counts past ~10**12: the moments need Python's integers
        w, j, lo = w.astype(object), j.astype(object), lo.astype(object)
    c0 = np.concatenate([[0], np.cumsum(w)])[bounds]
    c1 = np.concatenate([[0], np.cumsum(w * j)])[bounds]
    c2 = np.concatenate([[0], np.cumsum(w * j * j)])[bounds]
    m0 = np.diff(c0, axis=1)
    s1 = np.diff(c1, axis=1)
    m1 = s1 - lo * m0
    m2 = np.diff(c2, axis=1) - 2 * lo * s1 + lo * lo * m0
    # 2K * (center - level) = 2K (2t) + D with D = K (2 lo + 1) - G (2i + 1).
    d = (k * (2 * lo + 1) - grid[None, :] * a2).astype(np.float64)
    kf = float(k)
    m2 = np.asarray(m2.sum(axis=1), dtype=np.float64)  # the integer sum, then one rounding
    m0, m1 = np.asarray(m0, dtype=np.float64), np.asarray(m1, dtype=np.float64)
    return (4 * kf * kf) * m2 + ((4 * kf) * d * m1 + d * d * m0).sum(axis=1)


def _mse_screen(w: np.ndarray, cand: np.ndarray, grid: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The same scaled errors in closed form, with a bound on their rounding: ``(estimate, bound)``.

    Expanding the square, ``E = K**2 S2 - 2K a X + a**2 Y`` with ``S2 = sum w (2j+1)**2`` (the
    same for every candidate), ``X = sum w (2j+1) G`` and ``Y = sum w G**2``; summing by parts
    over the levels, ``X`` and ``Y`` are one gather of prefix sums at the level bounds and one
    dot product each. The estimate rounds; the bound is on that rounding, not on the error.
    """
    n = w.size
    wf = w.astype(np.float64)
    odd = 2 * np.arange(n, dtype=np.float64) + 1
    g = grid.astype(np.float64)
    a = 2 * cand.astype(np.float64) + 1
    p0 = np.concatenate([[0.0], np.cumsum(wf)])
    p1 = np.concatenate([[0.0], np.cumsum(wf * odd)])
    dg, dg2 = np.diff(g), np.diff(g * g)
    x, y = np.empty(cand.size), np.empty(cand.size)
    # 128 candidates at a time: the blocks stay in cache and their buffers are reused.
    num, index = np.empty((128, grid.size - 1)), np.empty((128, grid.size - 1), np.intp)
    for s in range(0, cand.size, 128):
        block = cand[s : s + 128]
        index[: block.size] = _level_bounds(block, grid, k, n, out=num[: block.size])
        x[s : s + block.size] = p1.take(index[: block.size]) @ dg
        y[s : s + block.size] = p0.take(index[: block.size]) @ dg2
    x = g[-1] * p1[n] - x
    y = g[-1] ** 2 * p0[n] - y
    t0 = float(k) ** 2 * float(np.sum(wf * odd * odd))
    t1 = (2.0 * k) * a * x
    t2 = a * a * y
    # Each prefix sum is within n eps of exact, each product and dot within len(grid) + 2 eps;
    # the subtractions can cancel, so the bound is on the magnitudes before them.
    gamma = 2 * (n + grid.size + 64) * np.finfo(np.float64).eps
    scale = t0 + (2.0 * k) * a * (g[-1] * p1[n]) + a * a * (g[-1] ** 2 * p0[n])
    return t0 - t1 + t2, gamma * scale


def mse_errors(
    counts: Any, edges: Any, *, dtype: str = "int8", start_bin: int = 128, stride: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``(candidate bin indices, error)`` for every candidate amax ``centers[i]`` of ModelOpt's mse search.

    ``error[t] = sum(counts * (Q(centers) - centers)**2)`` (ModelOpt takes the mean: the
    same argmin). The bins must be uniform from 0, as histograms of ``|x|`` are. Each error
    is evaluated from integer moments of the bins that round to each level (see
    ``_mse_careful``); ``mse`` screens with a cheaper closed form first.
    """
    w, cand, grid, k, width = _mse_setup(*_check(counts, edges), dtype, start_bin, stride)
    return cand, _mse_careful(w, cand, grid, k) * (width / (2 * k)) ** 2


@algorithm("mse")
def mse(counts: Any, edges: Any, *, dtype: str = "int8", start_bin: int = 128, stride: int = 1, **_: Any) -> float:
    """The amax (a bin center) minimizing the quantization MSE, as ModelOpt's ``_compute_amax_mse``.

    The closed form of ``_mse_screen`` rules out every candidate whose error is certainly
    above the minimum; the few left are evaluated as ``mse_errors`` evaluates them, so the
    choice (the first minimum) is the one ``argmin(mse_errors(...))`` makes.

    Example::

        amax = mse(hist.counts, hist.edges, dtype="fp8")
    """
    c, e = _check(counts, edges)
    if not np.any(c):
        return 0.0
    w, cand, grid, k, _ = _mse_setup(c, e, dtype, start_bin, stride)
    est, bound = _mse_screen(w, cand, grid, k)
    best = float(np.min(est + bound))
    # 1e-9 of the minimum also covers the careful evaluation's own rounding.
    near = cand[est - bound <= best + 1e-9 * abs(best)]
    chosen = near[int(np.argmin(_mse_careful(w, near, grid, k)))]
    return float((e[chosen] + e[chosen + 1]) / 2)


# ------------------------------------------------------------------- dispatch
def check_algorithm(name: str, dtype: str) -> None:
    """Raise a clear error for an unknown algorithm or one the dtype cannot use."""
    from ..errors import did_you_mean

    if name not in ALGORITHMS:
        raise CalibrationError(
            f"unknown calibration algorithm {name!r}; choose one of {sorted(ALGORITHMS)}."
            + did_you_mean(name, ALGORITHMS)
        )
    if dtype not in QMAX:
        raise CalibrationError(f"quantization dtype must be 'int8' or 'fp8', got {dtype!r}")
    if dtype == "fp8" and name in _INTEGER_ONLY:
        raise CalibrationError(
            f"algorithm {name!r} is defined for integer levels only (INT8's 128), not FP8 E4M3; "
            "for fp8 use 'max', 'percentile' or 'mse'"
        )


def compute_amax(name: str, counts: Any, edges: Any, *, dtype: str = "int8", **options: Any) -> float:
    """Run algorithm ``name`` on a histogram of ``|x|``.

    Example::

        amax = compute_amax("percentile", counts, edges, percentile=99.9)
    """
    check_algorithm(name, dtype)
    return ALGORITHMS[name](counts, edges, dtype=dtype, **options)
