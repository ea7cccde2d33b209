"""The published calibration loops, restated as the test oracles (the library never imports these).

``entropy_loop`` is pytorch-quantization's / ModelOpt's ``_compute_amax_entropy``
(``calib/histogram.py``), line for line, returning its divergences too.
``mse_loop`` is ModelOpt's ``_compute_amax_mse`` with ``fake_tensor_quant`` (INT8,
narrow range) and ``scaled_e4m3`` (FP8 E4M3, saturating) written in torch, evaluated
in float64 (ModelOpt runs float32, whose summation noise, about 1e-7 relative, is
larger than the gap between neighbouring candidates, so its own choice is noise there).
``percentile_loop`` walks the histogram bin by bin. ``legacy_loop`` is the 2017 GTC
talk's pseudo-code, loop for loop.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy.stats import entropy as scipy_entropy


def entropy_loop(calib_hist, calib_bin_edges, num_bits=8, unsigned=False, stride=1, start_bin=128):
    def _normalize_distr(distr):
        summ = np.sum(distr)
        if summ != 0:
            distr = distr / summ

    bins = np.array(calib_hist, dtype=np.int64)[:]
    bins[0] = bins[1]
    total_data = np.sum(bins)
    divergences = []
    arguments = []
    nbins = 1 << (num_bits - 1 + int(unsigned))
    starting = start_bin
    stop = len(bins)
    new_density_counts = np.zeros(nbins, dtype=np.float64)
    for i in range(starting, stop + 1, stride):
        new_density_counts.fill(0)
        space = np.linspace(0, i, num=nbins + 1)
        digitized_space = np.digitize(range(i), space) - 1
        digitized_space[bins[:i] == 0] = -1
        for idx, digitized in enumerate(digitized_space):
            if digitized != -1:
                new_density_counts[digitized] += bins[idx]
        counter = Counter(digitized_space)
        for key, val in counter.items():
            if key != -1:
                new_density_counts[key] = new_density_counts[key] / val
        new_density = np.zeros(i, dtype=np.float64)
        for idx, digitized in enumerate(digitized_space):
            if digitized != -1:
                new_density[idx] = new_density_counts[digitized]
        total_counts_new = np.sum(new_density) + np.sum(bins[i:])
        _normalize_distr(new_density)
        reference_density = np.array(bins[: len(digitized_space)])
        reference_density[-1] += np.sum(bins[i:])
        total_counts_old = np.sum(reference_density)
        if round(total_counts_new) != total_data or round(total_counts_old) != total_data:
            raise RuntimeError("Count mismatch!")
        _normalize_distr(reference_density)
        ent = scipy_entropy(reference_density, new_density)
        divergences.append(ent)
        arguments.append(i)
    divergences = np.array(divergences)
    last_argmin = len(divergences) - 1 - np.argmin(divergences[::-1])
    calib_amax = calib_bin_edges[last_argmin * stride + starting]
    return float(calib_amax), np.array(arguments), divergences


def legacy_loop(hist, edges, levels=128, start_bin=128):
    """The talk's pseudo-code; returns (threshold, kept, divergences)."""
    hist = np.asarray(hist, dtype=np.float64)
    divergence = {}
    for i in range(start_bin, len(hist)):
        p = hist[:i].copy()
        p[i - 1] += hist[i:].sum()
        merged = i // levels
        q = np.zeros(i)
        for k in range(levels):
            lo = k * merged
            hi = i if k == levels - 1 else (k + 1) * merged
            chunk = hist[lo:hi]
            nonzero = chunk > 0
            if nonzero.any():
                q[lo:hi][nonzero] = chunk.sum() / nonzero.sum()
        divergence[i] = scipy_entropy(p, q) if q.sum() > 0 else np.inf
    kept = np.array(list(divergence))
    div = np.array(list(divergence.values()))
    m = kept[int(np.argmin(div))]
    width = edges[1] - edges[0]
    return float(edges[0] + (m + 0.5) * width), kept, div


def mse_loop(calib_hist, calib_bin_edges, dtype="int8", stride=1, start_bin=128):
    import torch

    counts = torch.from_numpy(np.asarray(calib_hist, dtype=np.float64))
    edges = torch.from_numpy(np.asarray(calib_bin_edges, dtype=np.float64))
    centers = (edges[1:] + edges[:-1]) / 2
    mses, arguments = [], []
    for i in range(start_bin, len(centers), stride):
        amax = centers[i]
        if dtype == "int8":  # fake_tensor_quant(centers, amax, 8, unsigned=False, narrow_range=True)
            scale = 127.0 / amax
            quant_centers = torch.clamp((centers * scale).round_(), -127.0, 127.0) / scale
        else:  # scaled_e4m3: saturate to the E4M3 range, then cast
            scale = 448.0 / amax
            quant_centers = torch.clamp(centers * scale, -448.0, 448.0).to(torch.float8_e4m3fn).double() / scale
        mse = ((quant_centers - centers) ** 2 * counts).mean()
        mses.append(float(mse))
        arguments.append(i)
    argmin = int(np.argmin(mses))
    return float(centers[arguments[argmin]]), np.array(arguments), np.array(mses)


def percentile_loop(calib_hist, calib_bin_edges, percentile):
    total = float(np.sum(calib_hist))
    acc = 0.0
    for idx, c in enumerate(calib_hist):
        acc += c / total
        if acc >= percentile / 100:
            return float(calib_bin_edges[idx])
    return float(calib_bin_edges[len(calib_hist)])
