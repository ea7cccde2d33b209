"""Statistics of watched tensors, batch by batch, without holding any of them.

``Collector`` hands callbacks to ``Interpreter.run(feeds, observe=...)``, which calls
them while each tensor is alive (buffer reuse stays on; nothing is captured). With
``histograms=False`` it keeps only the running ``max |x|`` (the ``max`` algorithm);
otherwise a ``Histogram`` of ``|x|`` per tensor, built as ModelOpt's
``HistogramCalibrator`` builds it: 2048 bins over ``[0, max]`` on the first batch, and
when a later batch goes beyond the last edge, bins of the same width are appended
(counts already collected stay where they are). Every element is counted unless
``sample=k`` asks for every k-th one (the report then says so).

Any runner with ``run(feeds) -> dict`` works too (a ``Session`` on a plan built with the
watched tensors marked as outputs), so statistics can come from a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import CalibrationError
from . import algorithms

__all__ = ["Collector", "Histogram", "RunningMax"]


def _flat(x: np.ndarray, sample: int | None) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    if sample and sample > 1:
        return x.reshape(-1)[::sample]
    return x


class RunningMax:
    """The largest ``|x|`` seen, and how many elements."""

    def __init__(self, sample: int | None = None):
        self.max = 0.0
        self.count = 0
        self.sample = sample

    def update(self, x: np.ndarray) -> None:
        x = _flat(x, self.sample)
        if x.size:
            # max and -min: two reads of x and no temporary, where abs(x).max() writes a copy.
            m = max(float(x.max()), -float(x.min()))
            if not math.isfinite(m):
                raise CalibrationError(f"calibration data produced a non-finite value ({m})")
            self.max = max(self.max, m)
        self.count += x.size

    def metadata(self) -> dict[str, Any]:
        return {"max": self.max, "count": self.count, "sample": self.sample}


_CHUNK = 1 << 16  # values counted at a time: the scratch stays in cache (256 KB of |x|, 512 KB of indices)


class _Scratch:
    """Reused, cache-sized buffers for ``|x|`` and its bin indices.

    Fresh full-size temporaries for every tensor would page-fault in new memory and push
    the interpreter's own arrays out of the cache; counting chunk by chunk costs a few
    extra ``bincount`` calls instead.
    """

    def __init__(self) -> None:
        self.f = {
            np.dtype(np.float32): np.empty(_CHUNK, np.float32),
            np.dtype(np.float64): np.empty(_CHUNK, np.float64),
        }
        self.i = np.empty(_CHUNK, np.intp)


class Histogram(RunningMax):
    """An incremental histogram of ``|x|`` with uniform bins from 0 (re-binned as the range grows).

    Example::

        h = Histogram()
        for batch in batches:
            h.update(batch)
        amax = algorithms.entropy(h.counts, h.edges)
    """

    def __init__(self, num_bins: int = 2048, sample: int | None = None, scratch: _Scratch | None = None):
        super().__init__(sample)
        if num_bins < 1:
            raise CalibrationError(f"num_bins must be positive, got {num_bins}")
        self.num_bins = num_bins
        self.counts: np.ndarray | None = None
        self.width = 0.0
        self._zeros = 0  # all-zero batches before the first one that sets the range
        self._scratch = scratch if scratch is not None else _Scratch()

    @property
    def edges(self) -> np.ndarray:
        if self.counts is None:
            raise CalibrationError("the histogram is empty: no non-zero value was seen")
        return np.arange(self.counts.size + 1) * self.width

    def update(self, x: np.ndarray) -> None:
        x = _flat(x, self.sample).reshape(-1)
        # max and -min: two reads of x and no temporary, where abs(x).max() writes a copy.
        m = max(float(x.max()), -float(x.min())) if x.size else 0.0
        if not math.isfinite(m):
            raise CalibrationError(f"calibration data produced a non-finite value ({m})")
        self.count += x.size
        self.max = max(self.max, m)
        if m == 0.0:
            if self.counts is None:
                self._zeros += x.size
            else:
                self.counts[0] += x.size
            return
        if self.counts is None:
            self.width = m / self.num_bins
            self.counts = np.zeros(self.num_bins, np.int64)
            self.counts[0] += self._zeros
        elif m > self.counts.size * self.width:
            n = math.ceil(m / self.width)
            self.counts = np.concatenate([self.counts, np.zeros(n - self.counts.size, np.int64)])
        n = self.counts.size
        inv = x.dtype.type(1.0 / self.width)
        buf, ibuf = self._scratch.f[x.dtype], self._scratch.i
        for lo in range(0, x.size, _CHUNK):
            part = x[lo : lo + _CHUNK]
            a, idx = buf[: part.size], ibuf[: part.size]
            np.abs(part, out=a)
            np.multiply(a, inv, out=a)
            idx[...] = a  # truncation is floor for non-negative values
            np.minimum(idx, n - 1, out=idx)  # the max itself (and rounding just above it) is in the last bin
            self.counts += np.bincount(idx, minlength=n)

    def metadata(self) -> dict[str, Any]:
        return {
            **super().metadata(),
            "bins": 0 if self.counts is None else int(self.counts.size),
            "width": self.width,
        }


class Collector:
    """Statistics for the tensors ``names``, fed by interpreter observers or by any runner's outputs.

    Example::

        col = Collector(["stem.relu.out"], histograms=True)
        for feeds in batches:
            col.run(trtdsl.reference.prepare(net), feeds)
        ranges = col.ranges("entropy")
    """

    def __init__(
        self, names: Sequence[str], *, histograms: bool = True, num_bins: int = 2048, sample: int | None = None
    ):
        if sample is not None and (not isinstance(sample, int) or sample < 1):
            raise CalibrationError(f"sample must be a positive int (every k-th element), got {sample!r}")
        self.names = list(names)
        self.sample = sample
        self.histograms = histograms
        scratch = _Scratch()  # one set of buffers for all the collector's histograms
        self.stats: dict[str, RunningMax] = {
            n: Histogram(num_bins, sample, scratch) if histograms else RunningMax(sample) for n in self.names
        }
        self.batches = 0
        self._observers = {n: self._update for n in self.names}

    def _update(self, name: str, array: np.ndarray) -> None:
        self.stats[name].update(array)

    def run(self, runner: Any, feeds: Mapping[str, np.ndarray]) -> None:
        """Run one batch through ``runner`` (an ``Interpreter`` or anything with ``run(feeds) -> dict``)."""
        from ..reference.interpreter import Interpreter

        inputs = [n for n in self.names if n in feeds]
        for n in inputs:
            self.stats[n].update(feeds[n])
        if isinstance(runner, Interpreter):
            watch = {n: fn for n, fn in self._observers.items() if n not in feeds}
            runner.run(feeds, observe=watch)
        else:
            out = runner.run(feeds)
            missing = [n for n in self.names if n not in feeds and n not in out]
            if missing:
                raise CalibrationError(
                    f"the runner returned no value for {len(missing)} watched tensor(s), e.g. {missing[:3]}; "
                    "build the plan it runs with every watched tensor marked as an output "
                    "(Collector.names lists them)"
                )
            for n in self.names:
                if n not in feeds:
                    self.stats[n].update(np.asarray(out[n]))
        self.batches += 1

    def ranges(
        self, algorithm: str = "entropy", *, dtype: str = "int8", names: Sequence[str] | None = None, **options: Any
    ) -> dict[str, float]:
        """The amax of every watched tensor (or of ``names``) by ``algorithm`` (``max`` needs no histograms)."""
        algorithms.check_algorithm(algorithm, dtype)
        out = {}
        for n in self.names if names is None else names:
            st = self.stats[n]
            if algorithm == "max" or st.max == 0.0:
                out[n] = st.max
                continue
            if not isinstance(st, Histogram):
                raise CalibrationError(f"algorithm {algorithm!r} needs histograms; this collector kept only maxima")
            out[n] = algorithms.compute_amax(algorithm, st.counts, st.edges, dtype=dtype, **options)
        return out
