"""Range algorithms against the published loops (tests/calib/oracles.py) on the same histograms.

Each vectorized algorithm must choose the oracle's candidate; where two candidates'
divergences (or errors) agree within 1e-12 relative, a near-tie that summation order
can flip, either choice passes. The oracle loops take seconds on 2048-bin
histograms, so the default run checks a few cases (smaller histograms, and one of
2048 bins); ``-m calib_oracle`` runs many.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

from trtdsl.calib import algorithms as A
from trtdsl.errors import CalibrationError

from . import oracles

TIE = 1e-12


def _hist(kind: str, bins: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = 60_000
    x = {
        "normal": lambda: rng.standard_normal(n) * rng.uniform(0.1, 5),
        "laplace": lambda: rng.laplace(0, rng.uniform(0.1, 2), n),
        "relu": lambda: np.maximum(rng.standard_normal(n), 0),
        "outliers": lambda: np.concatenate([rng.standard_normal(n), rng.uniform(20, 40, 30)]),
        "sparse": lambda: rng.integers(0, 17, n) / 16.0,  # few distinct values: many empty bins
        "lognormal": lambda: rng.lognormal(0, 1.2, n),
        "tiny": lambda: rng.standard_normal(500),  # a small batch: sparse counts
    }[kind]()
    a = np.abs(x)
    return np.histogram(a, bins=bins, range=(0, a.max()))


def _same_choice(mine: float, oracle: float, candidates: np.ndarray, values: np.ndarray, edges_or_amax) -> None:
    """mine == oracle, or the two candidates' oracle values are a near-tie."""
    if mine == oracle:
        return
    amax_of = np.asarray(edges_or_amax)
    i_mine = int(np.flatnonzero(np.isclose(amax_of, mine, rtol=0, atol=0))[0])
    i_orc = int(np.flatnonzero(np.isclose(amax_of, oracle, rtol=0, atol=0))[0])
    v_mine, v_orc = values[i_mine], values[i_orc]
    assert abs(v_mine - v_orc) <= TIE * abs(v_orc), (mine, oracle, v_mine, v_orc)


def check_entropy(counts, edges, start_bin=128):
    oracle, kept, div = oracles.entropy_loop(counts, edges, start_bin=start_bin)
    mine = A.entropy(counts, edges, start_bin=start_bin)
    _same_choice(mine, oracle, kept, div, edges[kept])
    # The divergences themselves agree with the loop's (scipy's) to rounding.
    k2, d2 = A.entropy_divergences(counts, start_bin=start_bin)
    np.testing.assert_array_equal(k2, kept)
    finite = np.isfinite(div)
    np.testing.assert_array_equal(np.isfinite(d2), finite)
    np.testing.assert_allclose(d2[finite], div[finite], rtol=1e-9, atol=1e-15)


def check_mse(counts, edges, dtype, start_bin=128):
    oracle, cand, errs = oracles.mse_loop(counts, edges, dtype=dtype, start_bin=start_bin)
    mine = A.mse(counts, edges, dtype=dtype, start_bin=start_bin)
    centers = (edges[1:] + edges[:-1]) / 2
    _same_choice(mine, oracle, cand, errs, centers[cand])
    c2, e2 = A.mse_errors(counts, edges, dtype=dtype, start_bin=start_bin)
    np.testing.assert_array_equal(c2, cand)
    # ModelOpt takes the mean over bins; an exact zero is the oracle's rounding at its largest error.
    np.testing.assert_allclose(e2 / len(counts), errs, rtol=1e-9, atol=1e-15 * errs.max())


def check_legacy(counts, edges, start_bin=128):
    oracle, kept, div = oracles.legacy_loop(counts, edges, start_bin=start_bin)
    mine = A.entropy_legacy(counts, edges, start_bin=start_bin)
    width = edges[1] - edges[0]
    _same_choice(mine, oracle, kept, div, edges[0] + (kept + 0.5) * width)


# ------------------------------------------------------------------- default CI
FEW = [("normal", 512, 1), ("outliers", 512, 2), ("sparse", 640, 3)]


@pytest.mark.parametrize(("kind", "bins", "seed"), [*FEW, ("relu", 2048, 4)])
def test_entropy_matches_modelopt_loop(kind, bins, seed):
    check_entropy(*_hist(kind, bins, seed))


@pytest.mark.parametrize(("kind", "bins", "seed"), [*FEW, ("relu", 2048, 4)])
@pytest.mark.parametrize("dtype", ["int8", "fp8"])
def test_mse_matches_modelopt_loop(kind, bins, seed, dtype):
    check_mse(*_hist(kind, bins, seed), dtype)


@pytest.mark.parametrize("dtype", ["int8", "fp8"])
@pytest.mark.parametrize("scale", [10**6, 10**11])
def test_mse_with_counts_past_float_exactness(dtype, scale):
    # Calibration over many batches gives counts whose prefix sums and squares no longer
    # fit float64 exactly: mse's screening bound must still keep the oracle's choice.
    counts, edges = _hist("laplace", 2048, 7)
    check_mse(counts * scale, edges, dtype)


@pytest.mark.parametrize("dtype", ["int8", "fp8"])
@pytest.mark.parametrize(
    "counts",
    [
        np.eye(1, 512, 511, dtype=np.int64)[0],  # everything in the last bin
        np.eye(1, 512, 3, dtype=np.int64)[0] * 10**9,  # everything in one low bin
        np.ones(512, np.int64),  # flat: many candidates close together
        np.r_[np.zeros(300, np.int64), np.full(212, 5)],
    ],
    ids=["last-bin", "one-low-bin", "flat", "upper-block"],
)
def test_mse_on_degenerate_histograms(dtype, counts):
    edges = np.linspace(0, 3.0, counts.size + 1)
    check_mse(counts, edges, dtype)
    cand, errs = A.mse_errors(counts, edges, dtype=dtype)
    centers = (edges[1:] + edges[:-1]) / 2
    assert A.mse(counts, edges, dtype=dtype) == centers[cand[int(np.argmin(errs))]]


@pytest.mark.parametrize(("kind", "bins", "seed"), FEW)
def test_entropy_legacy_matches_talk_loop(kind, bins, seed):
    check_legacy(*_hist(kind, bins, seed))


@pytest.mark.parametrize(("kind", "bins", "seed"), [*FEW, ("lognormal", 2048, 5), ("tiny", 2048, 6)])
@pytest.mark.parametrize("pct", [99.99, 99.9, 50.0, 100.0])
def test_percentile_matches_loop(kind, bins, seed, pct):
    counts, edges = _hist(kind, bins, seed)
    assert A.percentile(counts, edges, percentile=pct) == oracles.percentile_loop(counts, edges, pct)


# ----------------------------------------------------------------- opt-in many
MANY = [(k, b, s) for s in range(4) for k in ("normal", "laplace", "relu", "outliers", "sparse", "lognormal", "tiny")
        for b in (2048,)]  # fmt: skip


@pytest.mark.calib_oracle
@pytest.mark.parametrize(("kind", "bins", "seed"), MANY)
def test_many_against_the_loops(kind, bins, seed):
    counts, edges = _hist(kind, bins, 100 + seed)
    check_entropy(counts, edges)
    check_legacy(counts, edges)
    for dtype in ("int8", "fp8"):
        check_mse(counts, edges, dtype)


# ----------------------------------------------------------------- worked example
def test_entropy_legacy_on_the_talks_worked_example():
    # GTC 2017 S7310: P = [1, 0, 2, 3, 5, 3, 1, 7] quantized to 2 levels and expanded is
    # Q = [2, 0, 2, 2, 4, 4, 4, 4] (zeros stay zero). One more, empty, bin: no outliers.
    p = np.array([1, 0, 2, 3, 5, 3, 1, 7])
    counts = np.append(p, 0)
    kept, div = A.entropy_legacy_divergences(counts, levels=2, start_bin=8)
    assert kept.tolist() == [8]
    q = np.array([2, 0, 2, 2, 4, 4, 4, 4], float)
    assert div[0] == pytest.approx(scipy_entropy(p, q), rel=1e-12)
    assert div[0] == pytest.approx(sum(pi / 22 * np.log(pi / qi) for pi, qi in zip(p, q) if pi), rel=1e-12)
    # The threshold is the middle of the last kept bin: (m + 0.5) * width.
    assert A.entropy_legacy(counts, np.arange(10.0), levels=2, start_bin=8) == 8.5


def test_entropy_legacy_adds_outliers_to_the_last_bin():
    counts = np.array([1, 0, 2, 3, 5, 3, 1, 7, 4])  # 4 beyond the 8th bin
    _, div = A.entropy_legacy_divergences(counts, levels=2, start_bin=8)
    p = np.array([1, 0, 2, 3, 5, 3, 1, 11])
    q = np.array([2, 0, 2, 2, 4, 4, 4, 4], float)
    assert div[0] == pytest.approx(scipy_entropy(p, q), rel=1e-12)


def test_modelopt_entropy_exact_ties():
    # Equal counts in the first 64 bins, nothing after: every candidate reproduces P exactly
    # (divergence 0), and the loop keeps the last of the equal minima (amax = edges[256]).
    counts = np.array([10] * 64 + [0] * 192)
    edges = np.linspace(0, 1, 257)
    oracle, kept, div = oracles.entropy_loop(counts, edges)
    assert oracle == 1.0 and np.all(div == 0)
    _, mine = A.entropy_divergences(counts)
    assert np.max(np.abs(mine)) < 1e-12  # zero up to the closed form's rounding: any choice is a tie
    _same_choice(A.entropy(counts, edges), oracle, kept, div, edges[kept])


def test_max_amax_is_the_last_non_empty_edge():
    assert A.max_amax([3, 0, 1, 0], np.arange(5.0)) == 3.0
    assert A.max_amax([0, 0], np.arange(3.0)) == 0.0


# -------------------------------------------------------------------- errors
def test_entropy_with_fp8_names_the_alternatives():
    for name in ("entropy", "entropy-legacy"):
        with pytest.raises(CalibrationError, match=r"integer levels only.*'max', 'percentile' or 'mse'"):
            A.compute_amax(name, np.ones(2048), np.arange(2049.0), dtype="fp8")


def test_unknown_algorithm_suggests():
    with pytest.raises(CalibrationError, match=r"unknown calibration algorithm 'entrpy'.*Did you mean 'entropy'"):
        A.compute_amax("entrpy", np.ones(2048), np.arange(2049.0))


def test_bad_histograms_are_refused():
    with pytest.raises(CalibrationError, match="len\\(counts\\) \\+ 1 edges"):
        A.entropy(np.ones(10), np.arange(10.0))
    with pytest.raises(CalibrationError, match="non-negative"):
        A.mse(-np.ones(300), np.arange(301.0))
    with pytest.raises(CalibrationError, match="fewer than start_bin=128"):
        A.entropy(np.ones(100), np.arange(101.0))
    with pytest.raises(CalibrationError, match="percentile must be in"):
        A.percentile(np.ones(10), np.arange(11.0), percentile=101)
    with pytest.raises(CalibrationError, match="uniform bins starting at 0"):
        A.mse(np.ones(300), np.linspace(1, 2, 301))
    with pytest.raises(CalibrationError, match="whole numbers"):
        A.entropy(np.full(300, 0.5), np.arange(301.0))


def test_empty_histograms_give_zero():
    for name in ("entropy", "entropy-legacy", "mse", "percentile", "max"):
        assert A.compute_amax(name, np.zeros(2048, int), np.arange(2049.0)) == 0.0


@pytest.mark.parametrize("name", ["entropy", "entropy-legacy", "mse"])
@pytest.mark.parametrize("counts", [np.full(300, 2**62, np.uint64), np.full(300, 1e30)], ids=["uint64", "float"])
def test_counts_past_int64_prefix_sums_are_refused(name, counts):
    # A total at 2**62 or more would wrap the int64 prefix sums into a silent wrong amax.
    with pytest.raises(CalibrationError, match=r"counts total .* past 2\*\*62"):
        A.compute_amax(name, counts, np.linspace(0, 1, 301), start_bin=128)


def test_percentile_of_counts_whose_integer_sum_would_wrap():
    # 300 x 2**62 as uint64 sums to 0 mod 2**64; the percentile must still see the counts.
    counts = np.zeros(300, np.uint64)
    counts[:150] = 2**62
    edges = np.linspace(0, 3.0, 301)
    assert A.percentile(counts, edges, percentile=50.0) == oracles.percentile_loop(counts.astype(float), edges, 50.0)


@pytest.mark.parametrize("name", ["entropy", "entropy-legacy", "mse", "percentile", "max"])
@pytest.mark.parametrize(
    "edges",
    [np.r_[np.linspace(0, 1, 300), np.nan], np.r_[np.linspace(0, 1, 300), np.inf], np.linspace(1, 0, 301)],
    ids=["nan", "inf", "decreasing"],
)
def test_edges_that_are_not_finite_and_increasing_are_refused(name, edges):
    # Such edges gave amax nan or inf (a NaN Q/DQ scale) or a silently wrong one.
    with pytest.raises(CalibrationError, match=r"edges must be finite and strictly increasing"):
        A.compute_amax(name, np.ones(300, np.int64), edges)
