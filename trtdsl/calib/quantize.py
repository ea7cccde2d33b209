"""``quantize(net, calibrator | ranges)``: calibrate, then write explicit Q/DQ where TensorRT fuses them."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..argcheck import api
from ..errors import CalibrationError
from ..network import Network
from . import algorithms, cache, qdq
from .calibrators import Calibrator, check_feeds
from .observe import Collector

__all__ = ["Report", "calibrate", "quantize"]

_DTYPES = {"int8": "int8", "fp8": "fp8", "float8": "fp8", "e4m3": "fp8", "fp8_e4m3": "fp8"}


@dataclass
class Report:
    """What ``quantize`` did: one row per quantized (or skipped) tensor; ``str()`` is a table.

    Example::

        net = quantize(net, calib, report=False)
        print(net.quant_report)
        net.quant_report.save("report.json")
    """

    network: str
    dtype: str
    algorithm: str
    rows: list[qdq.Row]
    batches: int = 0
    sample: int | None = None
    excluded: tuple[str, ...] = ()

    @property
    def ranges(self) -> dict[str, float]:
        """Activation amax by tensor name (quantized ones)."""
        return {r.tensor: r.amax for r in self.rows if r.kind == "activation" and r.status == "quantized"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "dtype": self.dtype,
            "algorithm": self.algorithm,
            "batches": self.batches,
            "sample": self.sample,
            "excluded": list(self.excluded),
            # NaN (no range) is not JSON: null instead.
            "tensors": [
                {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(r).items()}
                for r in self.rows
            ],
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the report as JSON."""
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")
        return p

    def __str__(self) -> str:
        head = ("tensor", "kind", "amax", "scale", "algorithm", "dtype", "read by")
        body = []
        for r in self.rows:
            kind = r.kind if r.channels == 1 else f"weight/{r.channels}ch"
            amax = f"{r.amax:.6g}" if r.channels == 1 else f"<={r.amax:.6g}"
            scale = f"{r.scale:.6g}" if r.channels == 1 else f"<={r.scale:.6g}"
            readers = ", ".join(r.readers[:3]) + (" ..." if len(r.readers) > 3 else "")
            if r.status != "quantized":
                readers = f"{r.status}; {readers}"
            body.append((r.tensor, kind, amax, scale, r.algorithm, r.dtype, readers))
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in (head, *body)]
        lines.insert(1, "  ".join("-" * w for w in widths))
        quantized = sum(r.status == "quantized" for r in self.rows)
        sampling = "every element counted" if not self.sample else f"sampled: every {self.sample}th element counted"
        lines.insert(
            0,
            f"quantization of {self.network!r}: {self.dtype}, {self.algorithm}, {quantized} of {len(self.rows)} "
            f"tensors quantized, {self.batches} calibration batches, {sampling}"
            + (f"; excluded: {', '.join(self.excluded)}" if self.excluded else ""),
        )
        return "\n".join(lines)


def _tensor_names(net: Network) -> list[str]:
    names = list(net.input_specs)
    for i in range(net.trt.num_layers):
        layer = net.trt.get_layer(i)
        names.extend(layer.get_output(j).name for j in range(layer.num_outputs))
    return names


def _is_input(net: Network, name: str) -> bool:
    """A network input, or a cast of one (a float16 network casts its float32 inputs)."""
    from ..layerinfo import downcast

    while name not in net.input_specs:
        layer = net.producer(name)
        if layer is None or downcast(layer).type.name != "CAST":
            return False
        name = layer.get_input(0).name
    return True


def calibrate(
    net: Network,
    calibrator: Any,
    names: list[str],
    *,
    algorithm: str = "entropy",
    dtype: str = "int8",
    runner: Any = None,
    input_algorithm: str | None = "max",
    **options: Any,
) -> tuple[dict[str, float], dict[str, str], dict[str, dict[str, Any]], int]:
    """Ranges of ``names`` from the calibrator's batches.

    Returns ``(amax by tensor, algorithm by tensor, histogram metadata, batches)``. Network
    inputs use ``input_algorithm`` (None: ``algorithm``).
    """
    from tqdm.auto import tqdm

    from .. import reference

    algorithms.check_algorithm(algorithm, dtype)
    runner = runner if runner is not None else reference.prepare(net)
    collector = Collector(
        names,
        histograms=algorithm != "max" or (input_algorithm not in (None, "max")),
        num_bins=getattr(calibrator, "num_bins", 2048),
        sample=getattr(calibrator, "sample", None),
    )
    try:
        total = len(calibrator)
    except TypeError:
        total = None
    bar = tqdm(
        total=total, unit="batch", desc=f"calibrating {net.name}", disable=not getattr(calibrator, "progress", True)
    )
    with bar:
        i = 0
        while True:
            feeds = calibrator.get_batch()
            if feeds is None:
                break
            collector.run(runner, check_feeds(net, feeds, i))
            bar.update()
            i += 1
    if collector.batches == 0:
        raise CalibrationError(f"{type(calibrator).__name__}.get_batch() returned no batch: no calibration data")
    if algorithm == "percentile":
        options.setdefault("percentile", getattr(calibrator, "percentile", 99.99))
    inputs = [n for n in names if _is_input(net, n)]
    in_algo = input_algorithm or algorithm
    if inputs:
        algorithms.check_algorithm(in_algo, dtype)
    rest = [n for n in names if n not in inputs]
    ranges = collector.ranges(algorithm, dtype=dtype, names=rest, **options)
    ranges.update(collector.ranges(in_algo, dtype=dtype, names=inputs, **options))
    used = {n: in_algo if n in inputs else algorithm for n in names}
    meta = {n: {"algorithm": used[n], "histogram": st.metadata()} for n, st in collector.stats.items()}
    return ranges, used, meta, collector.batches


@api("trtdsl.calib")
def quantize(
    net: Network,
    source: Calibrator | Mapping[str, float] | cache.CalibrationCache | str | os.PathLike,
    *,
    dtype: str = "int8",
    algorithm: str = "entropy",
    per_channel_weights: bool = True,
    exclude: str | tuple[str, ...] | list[str] = (),
    report: bool | str | os.PathLike = True,
    runner: Any = None,
    input_algorithm: str | None = "max",
    **options: Any,
) -> Network:
    """Calibrate ``net`` and rewrite it in place with explicit Q/DQ (TensorRT's placement rules); returns it.

    Args:
        source: a ``Calibrator`` (its ``read_cache()`` is tried first; ``write_cache`` gets the
            result), a dict ``{tensor name: amax}``, a ``CalibrationCache``, or a cache file path.
        dtype: ``'int8'`` or ``'fp8'`` (E4M3, amax maps to 448).
        algorithm: ``'entropy'`` (ModelOpt's), ``'entropy-legacy'`` (TensorRT's
            EntropyCalibration2), ``'percentile'``, ``'mse'`` or ``'max'``; a calibrator's own
            ``algorithm`` wins.
        per_channel_weights: weights per output channel (else per tensor).
        exclude: layer names or globs kept in float (a name covers its scope: ``'head'``).
        report: print the table (True), or also save it as JSON to this path.
        input_algorithm: the algorithm for network inputs (default ``'max'``: an input's range
            is the data's own, and images with few grey levels defeat the entropy search);
            None: ``algorithm``.
        runner: what runs the batches: default the reference interpreter; or anything with
            ``run(feeds) -> dict`` that returns the watched tensors.
        options: algorithm options (``percentile=99.9``, ``start_bin=``, ``stride=``).

    The network definition cannot be copied: build it twice to compare with float.

    Example::

        net = quantize(net, ArrayCalibrator("calib.npz"), dtype="int8", algorithm="entropy")
        plan = trtdsl.build(net)
    """
    qdtype = _DTYPES.get(str(dtype).lower())
    if qdtype is None:
        raise CalibrationError(f"dtype must be 'int8' or 'fp8', got {dtype!r}")
    placement = qdq.plan(net, exclude)
    names = placement.tensors
    known = _tensor_names(net)
    meta: dict[str, dict[str, Any]] = {}
    batches = 0
    algos: dict[str, str] = {}
    if isinstance(source, (str, os.PathLike)):
        source = cache.load_cache(source)
    if isinstance(source, cache.CalibrationCache):
        ranges = cache.match(source, names, known, network=net.name)
        used = f"cache ({source.algorithm or source.format})"
    elif isinstance(source, Mapping):
        _check_ranges(source)
        ranges = cache.match(cache.CalibrationCache(dict(source)), names, known)
        used = "given"
    elif callable(getattr(source, "get_batch", None)):
        algo = getattr(source, "algorithm", None) or algorithm
        algorithms.check_algorithm(algo, qdtype)
        ranges = {}
        data = source.read_cache() if callable(getattr(source, "read_cache", None)) else None
        if data:
            cached = cache.parse_cache(data, source=f"{type(source).__name__}.read_cache()")
            ranges = cache.match(cached, names, known, network=net.name)
            for n in ranges:
                algos[n] = f"cache ({cached.algorithm or cached.format})"
        todo = [n for n in names if n not in ranges]
        if todo:
            got, got_algos, meta, batches = calibrate(
                net,
                source,
                todo,
                algorithm=algo,
                dtype=qdtype,
                runner=runner,
                input_algorithm=input_algorithm,
                **options,
            )
            ranges.update(got)
            algos.update(got_algos)
            if callable(getattr(source, "write_cache", None)):
                source.write_cache(_cache_bytes(source, ranges, algo, qdtype, net.name, meta, options))
        used = algo
    else:
        raise CalibrationError(
            "quantize() needs a Calibrator (anything with get_batch()), a dict {tensor: amax}, a "
            f"CalibrationCache or a cache path; got {type(source).__name__}"
        )
    rows = qdq.apply(net, placement, ranges, dtype=qdtype, per_channel_weights=per_channel_weights,
                     algorithm=used, algorithms=algos)  # fmt: skip
    sample = getattr(source, "sample", None) if not isinstance(source, Mapping) else None
    rep = Report(net.name, qdtype, used, rows, batches, sample, tuple(placement.excluded))
    net.quant_report = rep
    if report:
        print(rep)
        if not isinstance(report, bool):
            rep.save(report)
    return net


def _check_ranges(ranges: Mapping[str, Any]) -> None:
    for name, amax in ranges.items():
        if isinstance(amax, bool) or not isinstance(amax, (int, float, np.floating, np.integer)):
            raise CalibrationError(f"range of {name!r} must be a number (amax), got {type(amax).__name__}")


def _cache_bytes(
    source: Any, ranges: Mapping[str, float], algo: str, dtype: str, network: str, meta: Any, options: Any
) -> bytes:
    fmt = getattr(source, "cache_format", None)
    path = getattr(source, "cache", None)
    if fmt is None:
        fmt = "legacy" if path is not None and not str(path).endswith(".json") else "json"
    if fmt == "legacy":
        return cache.format_legacy(ranges, algo)
    return cache.format_json(ranges, algorithm=algo, dtype=dtype, network=network, tensors=meta, options=options)
