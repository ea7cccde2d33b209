"""``.safetensors`` files, memory-mapped after the safetensors library validated them.

The format is an 8-byte little-endian header length, a JSON header giving
each tensor's dtype, shape and byte range, then the raw data. The library's
``safe_open(framework='np').get_tensor`` copies every tensor into new memory,
so after ``safe_open`` has checked the header (offsets in bounds, contiguous,
sizes matching shapes) each tensor is mapped in place instead: zero copies.
``mmap=False`` uses ``get_tensor``. bfloat16 has no NumPy dtype and is widened
to float32 (one copy); float8 tensors are refused.

A sharded checkpoint (``model.safetensors.index.json`` mapping each tensor to
one of the shard files beside it, the Hugging Face layout) loads every shard
this way into one store; see :func:`load_safetensors_index`.
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import WeightError
from .limits import DEFAULT, Limits, quote
from .registry import Probe, loads
from .store import Entry, WeightStore

DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
    "BOOL": np.bool_, "BF16": np.uint16,
}  # fmt: skip


def _sniff(p: Probe) -> bool:
    if len(p.head) < 9:
        return False
    (n,) = struct.unpack("<Q", p.head[:8])
    return p.head[8:9] == b"{" and 8 + n <= p.size


def _header(path: Path, limits: Limits) -> tuple[dict, int]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise WeightError(f"{path.name}: truncated safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if 8 + n > size:
            raise WeightError(
                f"{path.name}: safetensors header of {n} bytes runs past the end of the file ({size} bytes)"
            )
        if n > limits.max_json_bytes:
            raise WeightError(
                f"{path.name}: safetensors header of {n} bytes is over limits.max_json_bytes={limits.max_json_bytes}"
            )
        header = json.loads(f.read(n))
    if not isinstance(header, dict):
        raise WeightError(f"{path.name}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    return header, 8 + n


@loads(".safetensors", sniff=_sniff)
def load_safetensors(path: Path, mmap: bool = True, limits: Limits = DEFAULT) -> WeightStore:
    """A ``.safetensors`` file, one memory map for all its tensors."""
    entries, close = _open(path, mmap, limits)
    return WeightStore.from_entries(path, "safetensors", entries, close=close)


def _open(path: Path, mmap: bool, limits: Limits) -> tuple[dict[str, Entry], Callable[[], None]]:
    """One file's entries, and what closes the library's handle (arrays already read stay valid)."""
    header, data_start = _header(path, limits)
    lib = None
    try:
        from safetensors import safe_open
    except ImportError:  # the header checks below still guard the mapping
        safe_open = None
    if safe_open is not None:
        lib = safe_open(str(path), framework="np")
        if set(lib.keys()) != set(header):
            raise WeightError(f"{path.name}: safetensors header and library disagree on the tensor names")
    size = path.stat().st_size
    mm = np.memmap(path, np.uint8, mode="r") if mmap and size > data_start else None
    entries: dict[str, Entry] = {}
    for name, info in header.items():
        try:
            code, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError) as e:
            raise WeightError(f"{path.name}: malformed header entry for {quote(name)}: {quote(repr(info))}") from e
        if any(d < 0 for d in shape) or not all(type(v) is int for v in (begin, end, *info["shape"])):
            raise WeightError(f"{path.name}: tensor {quote(name)}: shape and offsets must be non-negative integers")
        if code not in DTYPES:
            raise WeightError(
                f"{path.name}: tensor {quote(name)} has dtype {quote(code)}, which trtdsl cannot hand to NumPy"
            )
        dtype = np.dtype(DTYPES[code]).newbyteorder("<")
        nbytes = math.prod(shape) * dtype.itemsize  # Python ints: a lying shape cannot wrap around
        if not (0 <= begin <= end and end - begin == nbytes and data_start + end <= size):
            raise WeightError(
                f"{path.name}: tensor {quote(name)}: byte range {begin}..{end} does not fit shape {shape} {code}"
            )
        out_dtype = np.dtype(np.float32) if code == "BF16" else dtype.newbyteorder("=")
        entries[name] = Entry(
            shape,
            out_dtype,
            _reader(path, mm, lib, name, shape=shape, dtype=dtype, offset=data_start + begin, code=code),
        )
    return entries, (lambda: lib.__exit__(None, None, None)) if lib is not None else (lambda: None)


def _reader(path: Path, mm, lib, name: str, *, shape, dtype: np.dtype, offset: int, code: str):
    def read() -> np.ndarray:
        if mm is not None:
            arr = np.ndarray(shape, dtype, buffer=mm, offset=offset)
        elif lib is not None and code != "BF16":  # the library has no NumPy bfloat16
            arr = lib.get_tensor(name)
        else:
            arr = np.fromfile(path, dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
        if code == "BF16":  # bfloat16 is the upper half of a float32
            return (arr.astype(np.uint32) << 16).view(np.float32)
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))

    return read


# ------------------------------------------------------------------ sharded checkpoints
INDEX_SUFFIX = ".safetensors.index.json"


def _sniff_index(p: Probe) -> bool:
    return p.path.name.lower().endswith(INDEX_SUFFIX) and p.head.lstrip()[:1] == b"{"


@loads(INDEX_SUFFIX, name="safetensors_index", sniff=_sniff_index, priority=4)
def load_safetensors_index(path: Path, mmap: bool = True, limits: Limits = DEFAULT) -> WeightStore:
    """A sharded checkpoint (Hugging Face layout): ``model.safetensors.index.json`` and the shards it names.

    The index maps each tensor name to a shard file in the index's own folder;
    every shard goes through :func:`load_safetensors` (memory-mapped) once, and
    the store holds the tensors of all of them. A shard named with a path, one
    that is not a regular file or whose links lead out of the folder, a tensor
    the index places in a shard that lacks it, and a tensor a shard holds that
    the index does not place there are each a :class:`WeightError`.

    Example::

        w = trtdsl.weights.load("llama/model.safetensors.index.json")  # or load("llama")
    """
    weight_map = _weight_map(path, limits)
    placed: dict[str, set[str]] = {}
    for tensor, shard in weight_map.items():
        placed.setdefault(shard, set()).add(tensor)
    if len(placed) > limits.max_shards:
        raise WeightError(
            f"{path.name}: the index names {len(placed)} shard files, over limits.max_shards={limits.max_shards}"
        )
    # The folder as given and, for an index that is a link (the Hugging Face cache links
    # snapshots/<rev>/* to ../../blobs/<sha>), the folder the index itself lies in.
    folders = {path.parent.resolve(), path.resolve().parent}
    entries: dict[str, Entry] = {}
    closers: list[Callable[[], None]] = []
    try:
        for shard in sorted(placed):
            file = _shard_file(path, shard, folders)
            try:
                got, close = _open(file, mmap, limits)
            except WeightError:
                raise
            except Exception as e:  # the safetensors library's own refusals
                raise WeightError(f"{path.name}: shard {quote(shard)}: {type(e).__name__}: {e}") from e
            closers.append(close)
            _check_shard(path, shard, set(got), placed[shard], weight_map)
            entries.update(got)
    except BaseException:
        _close_all(closers)
        raise
    return WeightStore.from_entries(path, "safetensors_index", entries, close=lambda: _close_all(closers))


def _weight_map(path: Path, limits: Limits) -> dict[str, str]:
    size = path.stat().st_size
    if size > limits.max_json_bytes:
        raise WeightError(f"{path.name}: index of {size} bytes is over limits.max_json_bytes={limits.max_json_bytes}")
    with open(path, "rb") as f:
        raw = f.read(limits.max_json_bytes + 1)  # the file may have grown since stat()
    if len(raw) > limits.max_json_bytes:
        raise WeightError(f"{path.name}: index is over limits.max_json_bytes={limits.max_json_bytes}")
    try:
        index = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise WeightError(f"{path.name}: index is not UTF-8 JSON ({type(e).__name__}: {e})") from e
    expected = 'expected {"metadata": {...}, "weight_map": {"tensor name": "shard file name", ...}}'
    if not isinstance(index, dict):
        raise WeightError(f"{path.name}: not a safetensors index: {expected}; found {type(index).__name__}")
    if "weight_map" not in index:
        keys = ", ".join(quote(k, 40) for k in list(index)[:8])
        raise WeightError(f"{path.name}: not a safetensors index: {expected}; found no weight_map (keys: {keys})")
    if not isinstance(index["weight_map"], dict):
        found = type(index["weight_map"]).__name__
        raise WeightError(f"{path.name}: not a safetensors index: {expected}; weight_map is {found}")
    if not isinstance(index.get("metadata", {}), dict):
        raise WeightError(f"{path.name}: index metadata is {type(index['metadata']).__name__}; {expected}")
    weight_map = index["weight_map"]
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str):
            raise WeightError(
                f"{path.name}: weight_map[{quote(tensor)}] is {type(shard).__name__} {quote(repr(shard))}, "
                "expected a shard file name"
            )
    if not weight_map:
        raise WeightError(f"{path.name}: the index's weight_map names no tensors")
    return weight_map


def _shard_file(index: Path, shard: str, folders: set[Path]) -> Path:
    """``shard`` as a regular file in the index's folder, or a WeightError."""
    where = f"{index.name}: shard {quote(shard)}"
    if not shard or shard in (".", "..") or any(c in shard for c in "/\\\0") or os.path.isabs(shard):
        raise WeightError(f"{where}: expected a plain file name in the index's folder, not a path")
    file = index.parent / shard
    try:
        mode = os.stat(file).st_mode  # follows links: what would be opened
        real = file.resolve(strict=True)
    except FileNotFoundError:
        raise WeightError(f"{where}: no such file in {index.parent}") from None
    except OSError as e:  # a link loop, a name too long
        raise WeightError(f"{where}: cannot stat it ({type(e).__name__}: {e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        raise WeightError(f"{where}: expected a regular file, found a {_kind(mode)}")
    if real.parent not in folders:
        raise WeightError(f"{where}: is a link that leads out of the index's folder")
    return file


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"


def _check_shard(index: Path, shard: str, got: set[str], want: set[str], weight_map: dict[str, str]) -> None:
    """Every tensor the index places in ``shard`` is there, and nothing else is."""
    extra = sorted(got - want)
    if extra:
        name = extra[0]
        if name in weight_map:
            raise WeightError(
                f"{index.name}: tensor {quote(name)} is in shard {quote(shard)} and in shard "
                f"{quote(weight_map[name])}, where the index places it; a tensor must be in one shard only"
            )
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise WeightError(
            f"{index.name}: shard {quote(shard)} holds {quote(name)}{more}, which the index does not name"
        )
    missing = sorted(want - got)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise WeightError(
            f"{index.name}: the index places tensor {quote(missing[0])}{more} in shard {quote(shard)}, "
            f"which does not hold it ({len(got)} tensors)"
        )


def _close_all(closers: list[Callable[[], None]]) -> None:
    while closers:
        closers.pop()()
