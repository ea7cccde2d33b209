"""Calibration caches: TensorRT's legacy text format, trtdsl's JSON format, and matching them to a network.

Legacy TensorRT (<= 10) caches, as ``IInt8Calibrator.writeCalibrationCache`` wrote them::

    TRT-8601-EntropyCalibration2
    images: 3c010a14
    (Unnamed Layer* 3) [Shuffle]_output: 3d7f2d5a
    conv1 out: 0

The first line is ``TRT-<version>-<algorithm>`` (version 4 digits up to TensorRT 9, e.g.
8601 = 8.6.1, 6 digits from 10, e.g. 100300), then one ``<tensor name>: <value>`` line per
tensor, where the value is the big-endian float32 bit pattern of the scale ``amax / 127``
in 8 hex digits, or a bare ``0``; ``7f800000`` is an infinite scale. Names may hold spaces
and ``": "``, so a line splits at its *last* ``": "``.

The JSON format keeps what the legacy one cannot: the amax itself, the algorithm and
dtype per tensor, and the histogram's metadata (bins, width, elements counted, sampling).

ONNX Runtime's TensorRT-EP table (``name amax`` lines) is recognised and refused: its
values are ranges, not TensorRT scales.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import dtypes
from ..errors import CacheError, CalibrationWarning, did_you_mean

__all__ = ["CalibrationCache", "format_json", "format_legacy", "load_cache", "match", "parse_cache", "save_cache"]

LEGACY_ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
# trtdsl algorithm -> the legacy header name that describes it best (the JSON format keeps the exact one).
_LEGACY_NAME = {
    "entropy": "EntropyCalibration2",
    "entropy-legacy": "EntropyCalibration2",
    "max": "MinMaxCalibration",
    "percentile": "LegacyCalibration",
    "mse": "LegacyCalibration",
}
LEGACY_QMAX = dtypes.qmax("int8")  # legacy scales are amax / 127 whatever the type
JSON_FORMAT = "trtdsl.calibration"
MAX_BYTES = 64 << 20  # a cache is a few KB to a few MB; more is not a cache
_HEADER = re.compile(r"TRT-(\d+)-([A-Za-z0-9]+)")
_HEX = re.compile(r"[0-9a-fA-F]{8}")
_LEGACY_LINE = re.compile(r".*: ([0-9a-fA-F]{8}|0)")
_ORT_LINE = re.compile(r"\S.*\s[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


@dataclass
class CalibrationCache:
    """Activation ranges by tensor name, with where they came from.

    ``ranges`` holds ``amax`` per tensor (a legacy cache's ``scale * 127``, exact in float64).
    """

    ranges: dict[str, float]
    format: str = "json"  # "json" or "legacy"
    algorithm: str | None = None
    dtype: str | None = None
    network: str | None = None
    version: str | None = None  # a legacy header's version digits
    legacy_algorithm: str | None = None  # a legacy header's algorithm name
    tensors: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-tensor JSON records

    def scale(self, name: str) -> float:
        """The legacy scale (``amax / 127``) of ``name``, as float32."""
        return float(struct.unpack(">f", struct.pack(">f", self.ranges[name] / LEGACY_QMAX))[0])


# --------------------------------------------------------------------- reading
def load_cache(path: str | os.PathLike) -> CalibrationCache:
    """Read a calibration cache file (legacy TensorRT text or trtdsl JSON, sniffed from the content).

    Example::

        cache = load_cache("resnet50.cache")
        print(cache.ranges["conv1.out"])
    """
    p = Path(path)
    if not p.is_file():
        raise CacheError(f"no calibration cache file {str(p)!r}")
    if p.stat().st_size > MAX_BYTES:
        raise CacheError(f"{p.name}: {p.stat().st_size} bytes is too large for a calibration cache (limit {MAX_BYTES})")
    return parse_cache(p.read_bytes(), source=p.name)


def parse_cache(data: bytes | str, *, source: str = "cache") -> CalibrationCache:
    """Parse cache bytes (what ``Calibrator.read_cache`` returns)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) > MAX_BYTES:
            raise CacheError(f"{source}: {len(data)} bytes is too large for a calibration cache")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CacheError(
                f"{source}: not a text calibration cache (byte {e.start} is not UTF-8); TensorRT caches and "
                "trtdsl JSON caches are text (ONNX Runtime's calibration.flatbuffers is not supported)"
            ) from None
    elif isinstance(data, str):
        text = data
    else:
        raise CacheError(f"{source}: a cache is bytes or str, got {type(data).__name__}")
    text = text.removeprefix("\ufeff")
    stripped = text.lstrip()
    if not stripped:
        raise CacheError(f"{source}: the calibration cache is empty")
    if stripped.startswith("{"):
        return _parse_json(stripped, source)
    return _parse_legacy(text, source)


def _parse_legacy(text: str, source: str) -> CalibrationCache:
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), 0)
    header = lines[first].strip()
    m = _HEADER.fullmatch(header)
    if m is None:
        body = [line for line in lines[first:] if line.strip()]
        sample = [line.strip() for line in body[:20]]
        legacy_like = any(_LEGACY_LINE.fullmatch(line) for line in sample)
        if sample and not legacy_like and all(_ORT_LINE.fullmatch(line) for line in sample):
            raise CacheError(
                f"{source}: this is ONNX Runtime's TensorRT-EP calibration table ('name amax' lines), not a "
                "TensorRT calibration cache; its values are ranges: pass them to quantize() as a dict "
                "{tensor name: amax}"
            )
        raise CacheError(
            f"{source}: line {first + 1} should be a TensorRT cache header such as 'TRT-8601-EntropyCalibration2', "
            f"got {header[:80]!r}"
        )
    version, algo = m.groups()
    if len(version) not in (4, 6):
        raise CacheError(
            f"{source}: header {header!r}: the version must have 4 digits (TensorRT <= 9, e.g. 8601) or 6 "
            f"(TensorRT >= 10, e.g. 100300), got {len(version)}"
        )
    if algo not in LEGACY_ALGORITHMS:
        raise CacheError(
            f"{source}: header {header!r}: unknown calibrator {algo!r}; TensorRT writes one of "
            f"{list(LEGACY_ALGORITHMS)}.{did_you_mean(algo, LEGACY_ALGORITHMS)}"
        )
    ranges: dict[str, float] = {}
    seen: dict[str, int] = {}
    for no, line in enumerate(lines[first + 1 :], start=first + 2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(": ")
        value = value.strip()
        if not sep or not name:
            raise CacheError(f"{source}: line {no} should be '<tensor name>: <8 hex digits>', got {line[:80]!r}")
        if name in seen:
            raise CacheError(f"{source}: tensor {name!r} appears twice (lines {seen[name]} and {no})")
        if value == "0":
            scale = 0.0
        elif _HEX.fullmatch(value):
            scale = struct.unpack(">f", bytes.fromhex(value))[0]
        else:
            raise CacheError(
                f"{source}: line {no} ({name!r}): the scale must be 8 hex digits (a big-endian float32) or 0, "
                f"got {value[:20]!r}"
            )
        if math.isnan(scale) or scale < 0:
            raise CacheError(f"{source}: line {no} ({name!r}): scale {value} is {scale}, not a non-negative number")
        seen[name] = no
        ranges[name] = scale * LEGACY_QMAX  # exact: a float32 times 127 fits a float64
    # The header names TensorRT's calibrator, which is what the ranges came from: keep that name.
    return CalibrationCache(ranges, "legacy", algo, "int8", None, version, algo)


def _parse_json(text: str, source: str) -> CalibrationCache:
    try:
        doc = json.loads(text)
    except RecursionError:
        raise CacheError(f"{source}: malformed JSON calibration cache: it nests too deeply") from None
    except ValueError as e:  # JSONDecodeError, and ints past Python's 4300-digit conversion limit
        raise CacheError(f"{source}: malformed JSON calibration cache: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != JSON_FORMAT:
        if isinstance(doc, dict) and doc and all(isinstance(v, (list, dict, float, int)) for v in doc.values()):
            raise CacheError(
                f"{source}: a JSON table without format '{JSON_FORMAT}' (ONNX Runtime's calibration.json?) is "
                "not a trtdsl cache; pass its ranges to quantize() as a dict {tensor name: amax}"
            )
        raise CacheError(f'{source}: a JSON cache needs "format": "{JSON_FORMAT}"')
    if type(doc.get("version")) is not int or doc.get("version") != 1:
        raise CacheError(f"{source}: JSON cache version {_short(doc.get('version'))} is not supported (expected 1)")
    tensors = doc.get("tensors")
    if not isinstance(tensors, dict):
        raise CacheError(f'{source}: "tensors" must map tensor names to records, got {_short(tensors)}')
    ranges: dict[str, float] = {}
    for name, rec in tensors.items():
        amax = rec.get("amax") if isinstance(rec, dict) else None
        # An int past 1e308 would make float() raise OverflowError.
        number = isinstance(amax, float) or (type(amax) is int and amax.bit_length() <= 1000)
        if not number or not (amax >= 0):
            raise CacheError(
                f'{source}: tensor {_short(name)}: "amax" must be a non-negative number, got {_short(amax)}'
            )
        ranges[name] = float(amax)
    dtype = doc.get("dtype")
    if dtype not in (None, "int8", "fp8"):
        raise CacheError(f"{source}: dtype must be 'int8' or 'fp8', got {_short(dtype)}")
    for key in ("algorithm", "network"):
        if doc.get(key) is not None and not isinstance(doc.get(key), str):
            raise CacheError(f"{source}: {key!r} must be a string or null, got {_short(doc.get(key))}")
    return CalibrationCache(
        ranges,
        "json",
        doc.get("algorithm"),
        dtype,
        doc.get("network"),
        tensors={k: dict(v) for k, v in tensors.items()},
    )


def _short(value: Any) -> str:
    """``repr`` cut to 60 characters: a hostile cache's values can be megabytes long."""
    shown = repr(value)
    return shown[:60] + "..." if len(shown) > 60 else shown


# --------------------------------------------------------------------- writing
def format_legacy(ranges: Mapping[str, float], algorithm: str = "entropy", *, version: str = "100000") -> bytes:
    """Legacy TensorRT cache text: scales ``amax / 127`` as big-endian float32 hex.

    Example::

        Path("model.cache").write_bytes(format_legacy({"images": 2.5}, "entropy"))
    """
    if not re.fullmatch(r"\d{4}|\d{6}", str(version)):
        raise CacheError(f"version must be 4 or 6 digits (e.g. '8601', '100300'), got {version!r}")
    head = _LEGACY_NAME.get(algorithm, algorithm)
    if head not in LEGACY_ALGORITHMS:
        raise CacheError(f"no legacy calibrator name for algorithm {algorithm!r}")
    out = [f"TRT-{version}-{head}"]
    for name, amax in ranges.items():
        if "\n" in name or "\r" in name or not name:
            raise CacheError(f"tensor name {name!r} cannot be written to a line-based cache")
        scale = struct.pack(">f", float(amax) / LEGACY_QMAX)
        out.append(f"{name}: {scale.hex()}")
    return ("\n".join(out) + "\n").encode()


def format_json(
    ranges: Mapping[str, float],
    *,
    algorithm: str | None = None,
    dtype: str = "int8",
    network: str | None = None,
    tensors: Mapping[str, Mapping[str, Any]] | None = None,
    options: Mapping[str, Any] | None = None,
) -> bytes:
    """trtdsl's JSON cache: amax, algorithm and dtype per tensor, plus histogram metadata in ``tensors``."""
    recs = {}
    for name, amax in ranges.items():
        rec = {"amax": float(amax), "algorithm": algorithm, "dtype": dtype}
        rec.update((tensors or {}).get(name, {}))
        recs[name] = rec
    doc = {"format": JSON_FORMAT, "version": 1, "network": network, "algorithm": algorithm, "dtype": dtype,
           "options": dict(options or {}), "tensors": recs}  # fmt: skip
    return (json.dumps(doc, indent=1) + "\n").encode()


def save_cache(path: str | os.PathLike, data: bytes) -> Path:
    p = Path(path)
    p.write_bytes(data)
    return p


# -------------------------------------------------------------------- matching
def match(
    cache: CalibrationCache, wanted: Iterable[str], network_tensors: Iterable[str], *, network: str = ""
) -> dict[str, float]:
    """The cache's ranges for the ``wanted`` tensors, warning about every mismatch with near matches.

    Warns (``CalibrationWarning``) when a wanted tensor has no entry, and when cache entries
    name no tensor of the network (a cache made for another network or another naming).
    """
    wanted = list(wanted)
    known = set(network_tensors)
    found = {n: cache.ranges[n] for n in wanted if n in cache.ranges}
    missing = [n for n in wanted if n not in cache.ranges]
    stray = [n for n in cache.ranges if n not in known]
    if cache.network and network and cache.network != network:
        warnings.warn(
            f"calibration cache was made for network {cache.network!r}, not {network!r}",
            CalibrationWarning,
            stacklevel=3,
        )
    if missing:
        shown = "; ".join(f"{n!r}{did_you_mean(n, cache.ranges, 1)}" for n in missing[:8])
        warnings.warn(
            f"calibration cache has no range for {len(missing)} of {len(wanted)} tensors that get Q/DQ: {shown}"
            + (" ..." if len(missing) > 8 else ""),
            CalibrationWarning,
            stacklevel=3,
        )
    if stray:
        shown = "; ".join(f"{n!r}{did_you_mean(n, known, 1)}" for n in stray[:8])
        warnings.warn(
            f"{len(stray)} calibration cache entries name no tensor of the network: {shown}"
            + (" ..." if len(stray) > 8 else ""),
            CalibrationWarning,
            stacklevel=3,
        )
    return found
