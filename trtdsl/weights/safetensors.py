"""``.safetensors`` files, memory-mapped after the safetensors library validated them.

The format is an 8-byte little-endian header length, a JSON header giving
each tensor's dtype, shape and byte range, then the raw data. The library's
``safe_open(framework='np').get_tensor`` copies every tensor into new memory,
so after ``safe_open`` has checked the header (offsets in bounds, contiguous,
sizes matching shapes) each tensor is mapped in place instead: zero copies.
``mmap=False`` uses ``get_tensor``. bfloat16 is widened to float32 (one copy).

FP8 checkpoints store their weights as float8 beside float32 ``weight_scale``
(or ``weight_scale_inv``) tensors. The float8 codes come out as ``ml_dtypes``
arrays, mapped in place like the rest (read from the file with ``mmap=False``:
the library's NumPy side has no float8): ``F8_E4M3`` as ``float8_e4m3fn``,
``F8_E5M2`` as ``float8_e5m2``, ``F8_E8M0`` as ``float8_e8m0fnu``, and
``F8_E4M3FNUZ``/``F8_E5M2FNUZ`` as the ``fnuz`` types. ``net.constant`` stores a
``float8_e4m3fn`` array as an fp8 weight for ``ops.dequantize``. The packed
sub-byte codes (``F4``, ``F6_E2M3``, ``F6_E3M2``) are refused by name.

Example::

    w = trtdsl.weights.load("model.safetensors")      # an FP8 checkpoint
    q = net.constant(w["fc.weight"])                    # fp8 (out, in): the file's bytes
    y = x @ ops.dequantize(q, w["fc.weight_scale"]).T  # float32

A sharded checkpoint (``model.safetensors.index.json`` mapping each tensor to
one of the shard files beside it, the Hugging Face layout) loads every shard
this way into one store; see :func:`load_safetensors_index` and :mod:`.shards`.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from pathlib import Path

import ml_dtypes
import numpy as np

from ..errors import WeightError
from .limits import DEFAULT, Limits, quote
from .registry import Probe, loads
from .shards import ShardFormat, index_sniffer, load_index, sharded
from .store import Entry, WeightStore

# The header's dtype codes trtdsl reads, and the type of their bytes. The library's NumPy side
# (``get_tensor``) builds only NumPy's own types: BF16 is read as its bits (uint16) and widened,
# the float8 codes as their ml_dtypes type, both from the map or the file.
NATIVE = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8,
    "BOOL": np.bool_,
}  # fmt: skip
FLOAT8 = {
    "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2, "F8_E8M0": ml_dtypes.float8_e8m0fnu,
    "F8_E4M3FNUZ": ml_dtypes.float8_e4m3fnuz, "F8_E5M2FNUZ": ml_dtypes.float8_e5m2fnuz,
}  # fmt: skip
DTYPES = {**NATIVE, "BF16": np.uint16, **FLOAT8}
PACKED = ("F4", "F6_E2M3", "F6_E3M2")  # sub-byte codes, several values to a byte: refused by name


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


@loads(".safetensors", sniff=_sniff, folder=2)
def load_safetensors(path: Path, mmap: bool = True, limits: Limits = DEFAULT) -> WeightStore:
    """A ``.safetensors`` file, one memory map for all its tensors."""
    entries, close = _open(path, mmap, limits)
    return WeightStore.from_entries(path, "safetensors", entries, close=close)


def _open(path: Path, mmap: bool, limits: Limits) -> tuple[dict[str, Entry], Callable[[], None]]:
    """One file's entries, and what closes the library's handle (arrays already read stay valid)."""
    header, data_start = _header(path, limits)
    size = path.stat().st_size
    tensors = [_check(path.name, name, info, data_start, size) for name, info in header.items()]
    lib = None
    try:
        from safetensors import safe_open
    except ImportError:  # the header checks above still guard the mapping
        safe_open = None
    if safe_open is not None:
        lib = safe_open(str(path), framework="np")
        if set(lib.keys()) != set(header):
            raise WeightError(f"{path.name}: safetensors header and library disagree on the tensor names")
    mm = np.memmap(path, np.uint8, mode="r") if mmap and size > data_start else None
    entries: dict[str, Entry] = {}
    for name, code, shape, begin, dtype in tensors:
        out_dtype = np.dtype(np.float32) if code == "BF16" else dtype if code in FLOAT8 else dtype.newbyteorder("=")
        entries[name] = Entry(
            shape,
            out_dtype,
            _reader(path, mm, lib, name, shape=shape, dtype=dtype, offset=data_start + begin, code=code),
        )
    return entries, (lambda: lib.__exit__(None, None, None)) if lib is not None else (lambda: None)


def _check(file: str, name: str, info, data_start: int, size: int) -> tuple[str, str, tuple[int, ...], int, np.dtype]:
    """One header entry, checked before the library reads the header: (name, code, shape, begin, dtype)."""
    try:
        code, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
    except (KeyError, TypeError, ValueError) as e:
        raise WeightError(f"{file}: malformed header entry for {quote(name)}: {quote(repr(info))}") from e
    if any(d < 0 for d in shape) or not all(type(v) is int for v in (begin, end, *info["shape"])):
        raise WeightError(f"{file}: tensor {quote(name)}: shape and offsets must be non-negative integers")
    if not isinstance(code, str) or code not in DTYPES:
        why = " (a sub-byte type packed several to a byte)" if code in PACKED else ""
        raise WeightError(
            f"{file}: tensor {quote(name)} has dtype {quote(code)}{why}, which trtdsl cannot read; "
            f"it reads {', '.join(DTYPES)}"
        )
    dtype = np.dtype(DTYPES[code])
    dtype = dtype if code in FLOAT8 else dtype.newbyteorder("<")  # float8: one byte, kept as NumPy's instance
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: a lying shape cannot wrap around
    if not (0 <= begin <= end and end - begin == nbytes and data_start + end <= size):
        raise WeightError(f"{file}: tensor {quote(name)}: byte range {begin}..{end} does not fit shape {shape} {code}")
    return name, code, shape, begin, dtype


def _reader(path: Path, mm, lib, name: str, *, shape, dtype: np.dtype, offset: int, code: str):
    def read() -> np.ndarray:
        if mm is not None:
            arr = np.ndarray(shape, dtype, buffer=mm, offset=offset)
        elif lib is not None and code in NATIVE:  # the library builds NumPy's own types only
            arr = lib.get_tensor(name)
        else:
            arr = np.fromfile(path, dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
        if code == "BF16":  # bfloat16 is the upper half of a float32
            return (arr.astype(np.uint32) << 16).view(np.float32)
        return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))

    return read


# ------------------------------------------------------------------ sharded checkpoints
INDEX_SUFFIX = ".safetensors.index.json"
SHARDS = sharded(ShardFormat("safetensors_index", "safetensors index", "a safetensors file", _sniff, _open))


@loads(INDEX_SUFFIX, name=SHARDS.name, sniff=index_sniffer(INDEX_SUFFIX), priority=4, folder=1)
def load_safetensors_index(path: Path, mmap: bool = True, limits: Limits = DEFAULT) -> WeightStore:
    """A sharded checkpoint (Hugging Face layout): ``model.safetensors.index.json`` and the shards it names.

    The index maps each tensor name to a shard file in the index's own folder;
    every shard goes through :func:`load_safetensors` (memory-mapped) once, and
    the store holds the tensors of all of them. A shard named with a path, one
    that is not a regular file or whose links lead out of the folder, a shard
    that is not a safetensors file, a tensor the index places in a shard that
    lacks it, and a tensor a shard holds that the index does not place there
    are each a :class:`WeightError` (:func:`.shards.load_index`, shared with
    ``pytorch_model.bin.index.json``).

    Example::

        w = trtdsl.weights.load("llama/model.safetensors.index.json")  # or load("llama")
    """
    return load_index(path, SHARDS, mmap, limits)
