"""The plan sidecar (``model.plan.json``): what it holds, and the checks it must pass to be read.

A plan may come from a build server or a colleague, so its sidecar is
untrusted input. :func:`read_meta` checks it against the schema below before
anything uses it, and every failure is a :class:`TrtdslError` that names the
field: no ``KeyError``, ``RecursionError`` or a 466 TiB allocation from an
``opt`` of 10**12. Format 2 records the engine's size and SHA-256, so a
swapped or truncated engine is caught before TensorRT sees it.

Schema (format 2)::

    {"format": 2, "engine_bytes": int, "engine_sha256": "64 hex digits",
     "backend": str, "network": str, "build_seconds": float >= 0, "options": {...},
     "inputs":  [{"name": str, "dtype": "float32"|..., "shape": [int >= 0 | dim name, ...]}, ...],
     "outputs": [{"name": str, "dtype": ..., "shape": [int >= -1 | dim name, ...]}, ...],
     "profiles": [{dim name: [min, opt, max]} for every dim the inputs use, ...],
     "layers": [layer records, see trtdsl.planinfo.check_layers] (optional; absent in older plans)}
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from . import dtypes
from .errors import ProfileError, TrtdslError
from .jsonstrict import no_constant, unique_keys
from .profile import check_range

FORMAT_VERSION = 2
READS = (1, 2)  # format 1 had no engine hash: read, but reported as unverified
MAX_META_BYTES = 16 << 20
MAX_DIM = 2**31 - 1  # TensorRT's int32 dimension limit of the plans this writes
MAX_VOLUME = 2**40  # elements of one I/O tensor at its largest profile shape
MAX_RANK = 8  # nvinfer1::Dims::MAX_DIMS
MAX_TEXT = 4096


def engine_sha256(engine: bytes) -> str:
    return hashlib.sha256(engine).hexdigest()


def read_meta(meta_path: Path, engine: bytes) -> dict[str, Any]:
    """The checked sidecar as plain data; TrtdslError naming the first field that is wrong."""
    where = f"plan metadata {str(meta_path)!r}"
    size = meta_path.stat().st_size
    if size > MAX_META_BYTES:
        raise TrtdslError(f"{where} is {size} bytes, more than the {MAX_META_BYTES} a plan's metadata can need")
    try:
        meta = json.loads(meta_path.read_bytes(), parse_constant=no_constant, object_pairs_hook=unique_keys)
    except RecursionError:
        raise TrtdslError(f"{where} is malformed: it nests too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise TrtdslError(f"{where} is malformed: not JSON ({e})") from None
    return _Checker(where).plan(meta, engine)


class _Checker:
    def __init__(self, where: str):
        self.where = where

    def fail(self, field: str, expected: str, got: Any) -> TrtdslError:
        shown = repr(got)
        shown = shown[:60] + "..." if len(shown) > 60 else shown
        return TrtdslError(f"{self.where} is malformed: {field}: expected {expected}, got {shown}")

    def text(self, obj: dict, key: str, field: str, *, required: bool = True) -> str:
        if key not in obj and not required:
            return ""
        v = obj.get(key)
        if not isinstance(v, str) or len(v) > MAX_TEXT or not v.isprintable():
            # printable only: a name with ESC or a newline would reach the terminal through `trtdsl info`
            raise self.fail(field, f"a printable string of at most {MAX_TEXT} characters", v)
        return v

    def plan(self, meta: Any, engine: bytes) -> dict[str, Any]:
        if not isinstance(meta, dict):
            raise self.fail("the document", "a JSON object", meta)
        fmt = meta.get("format")
        if type(fmt) is not int:
            raise self.fail("format", f"a format version ({', '.join(map(str, READS))})", fmt)
        if fmt not in READS:
            newer = fmt > FORMAT_VERSION
            raise TrtdslError(
                f"{self.where}: format {fmt!r} is not one this trtdsl reads ({', '.join(map(str, READS))})"
                + ("; it was written by a newer trtdsl: upgrade to read it" if newer else "")
            )
        out: dict[str, Any] = {"format": fmt, "verified": False}
        if fmt >= 2:
            size, digest = meta.get("engine_bytes"), meta.get("engine_sha256")
            if type(size) is not int or size < 0:
                raise self.fail("engine_bytes", "the engine's size in bytes", size)
            if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
                raise self.fail("engine_sha256", "64 lower-case hex digits", digest)
            if len(engine) != size:
                raise TrtdslError(
                    f"{self.where}: the engine file holds {len(engine)} bytes, the metadata says {size}: "
                    "it is truncated or not the engine this metadata describes"
                )
            if engine_sha256(engine) != digest:
                raise TrtdslError(
                    f"{self.where}: the engine's SHA-256 does not match the metadata's: the engine file was "
                    "swapped or corrupted after it was saved"
                )
            out["verified"] = True
        out["backend"] = self.text(meta, "backend", "backend", required=False)
        out["network"] = self.text(meta, "network", "network", required=False)
        secs = meta.get("build_seconds", 0.0)
        if type(secs) not in (int, float) or not math.isfinite(secs) or secs < 0:
            raise self.fail("build_seconds", "a non-negative number", secs)
        out["build_seconds"] = float(secs)
        options = meta.get("options", {})
        if not isinstance(options, dict):
            raise self.fail("options", "a JSON object", options)
        out["options"] = options
        out["inputs"] = self.specs(meta.get("inputs"), "inputs", min_dim=0)
        out["outputs"] = self.specs(meta.get("outputs"), "outputs", min_dim=-1)
        out["profiles"] = self.profiles(meta.get("profiles"), out["inputs"])
        from .planinfo import check_layers  # the layer records' own schema (absent before they were recorded)

        out["layers"] = check_layers(meta.get("layers", []), self.where)
        return out

    def specs(self, items: Any, field: str, *, min_dim: int) -> list[tuple[str, str, tuple[int | str, ...]]]:
        if not isinstance(items, list) or len(items) > 10_000:
            raise self.fail(field, "a list of {name, dtype, shape} objects", items)
        out, names = [], set()
        for i, d in enumerate(items):
            f = f"{field}[{i}]"
            if not isinstance(d, dict):
                raise self.fail(f, "an object with name, dtype and shape", d)
            name = self.text(d, "name", f"{f}.name")
            if not name or name in names:
                raise self.fail(f"{f}.name", "a non-empty name used once", name)
            names.add(name)
            dtype = d.get("dtype")
            try:
                ok = isinstance(dtype, str) and dtypes.canonical(dtype) == dtype
            except TrtdslError:
                ok = False
            if not ok:
                raise self.fail(f"{f}.dtype", "a trtdsl dtype name such as 'float32'", dtype)
            shape = d.get("shape")
            if not isinstance(shape, list) or len(shape) > MAX_RANK:
                raise self.fail(f"{f}.shape", f"a list of at most {MAX_RANK} dims", shape)
            for j, s in enumerate(shape):
                if isinstance(s, str):
                    if not 0 < len(s) <= 200 or not s.isprintable():
                        raise self.fail(f"{f}.shape[{j}]", "a printable dim name of 1..200 characters", s)
                elif type(s) is not int or not min_dim <= s <= MAX_DIM:
                    raise self.fail(f"{f}.shape[{j}]", f"an int in {min_dim}..{MAX_DIM} or a dim name", s)
            out.append((name, dtype, tuple(shape)))
        return out

    def profiles(self, items: Any, inputs: list) -> list[dict[str, tuple[int, int, int]]]:
        used = {s for _, _, shape in inputs for s in shape if isinstance(s, str)}
        if not isinstance(items, list) or not items or len(items) > 1000:
            raise self.fail("profiles", "a non-empty list of {dim: [min, opt, max]} objects", items)
        out = []
        for i, p in enumerate(items):
            f = f"profiles[{i}]"
            if not isinstance(p, dict):
                raise self.fail(f, "an object {dim: [min, opt, max]}", p)
            missing, extra = sorted(used - set(p)), sorted(set(p) - used)
            if missing:
                raise TrtdslError(f"{self.where} is malformed: {f} has no range for dim(s) {missing} the inputs use")
            if extra:
                raise TrtdslError(f"{self.where} is malformed: {f} has range(s) for dim(s) {extra} no input uses")
            ranges = {}
            for dim, rng in p.items():
                if not isinstance(rng, list) or len(rng) != 3:
                    raise self.fail(f"{f}.{dim}", "[min, opt, max]", rng)
                try:
                    lo, opt, hi = check_range(dim, rng)
                except ProfileError as e:
                    raise ProfileError(f"{self.where} is malformed: {f}: {e}") from None
                if hi > MAX_DIM:
                    raise self.fail(f"{f}.{dim}", f"values up to {MAX_DIM}", rng)
                ranges[dim] = (lo, opt, hi)
            for name, _, shape in inputs:
                volume = math.prod(ranges[s][2] if isinstance(s, str) else s for s in shape)
                if volume > MAX_VOLUME:
                    raise TrtdslError(
                        f"{self.where} is malformed: {f}: input {name!r} would hold {volume} elements at its "
                        f"largest shape, more than {MAX_VOLUME}"
                    )
            out.append(ranges)
        return out
