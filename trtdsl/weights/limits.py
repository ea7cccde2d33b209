"""How much work and memory a weight file may ask for, and a safe way to quote one.

A weight file is untrusted input: its headers declare sizes, counts and
nesting that a loader would otherwise believe. Every loader checks those
declarations against :class:`Limits` *before* it allocates or inflates
anything, so a 2 KB file cannot ask for gigabytes or hours. The defaults are
far above what real checkpoints need; raise one with
``trtdsl.weights.load(path, limits=Limits(max_json_bytes=1 << 30))``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightError

try:  # ISA-L's CRC-32 runs at ~12 GB/s here against zlib's ~1.3 GB/s; same polynomial and result
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is an optional speed-up
    _crc32 = zlib.crc32


@dataclass(frozen=True)
class Limits:
    """Upper bounds a weight file must stay within; ``WeightError`` names the one exceeded.

    Attributes:
        max_json_bytes: a JSON document inside a weight file (Keras ``config.json``,
            the ``model_config`` attribute, a safetensors header).
        max_inflate_ratio: inflated / compressed size of a compressed zip member or
            HDF5 dataset, and a torch tensor's bytes / its storage's (a stride of 0
            repeats them); those smaller than ``inflate_floor`` are exempt.
        inflate_floor: bytes any compressed member may inflate to, whatever its ratio.
        max_member_bytes: inflated size of one zip member or one dataset.
        max_entries: containers plus leaves in a torch checkpoint, or objects in an HDF5 file.
        max_depth: nesting of containers in a torch checkpoint.
        h5_timeout: seconds the HDF5 worker may spend on one file's structure
            (reading a chunked dataset adds a second per 100 MB).
        h5_worker_memory: address-space limit of the HDF5 worker process, in bytes.
        max_shards: shard files a sharded checkpoint's index may name
            (``model.safetensors.index.json``, ``pytorch_model.bin.index.json``); each is opened once.

    Example::

        from trtdsl.weights import Limits, load
        w = load("huge_config.keras", limits=Limits(max_json_bytes=512 << 20))
    """

    max_json_bytes: int = 64 << 20
    max_inflate_ratio: float = 200.0
    inflate_floor: int = 64 << 20
    max_member_bytes: int = 1 << 40
    max_entries: int = 1_000_000
    max_depth: int = 100
    h5_timeout: float = 60.0
    h5_worker_memory: int = 8 << 30
    max_shards: int = 10_000

    def inflated_ok(self, inflated: int, stored: int) -> bool:
        """Whether a member that stores ``stored`` bytes may inflate to ``inflated``."""
        if inflated > self.max_member_bytes:
            return False
        return inflated <= max(self.inflate_floor, self.max_inflate_ratio * max(stored, 1))


DEFAULT = Limits()


def crc32(data, value: int = 0) -> int:
    """CRC-32 as zip stores it (zlib's polynomial), over any buffer, e.g. a slice of a memory map."""
    return _crc32(data, value)


def preview(data: bytes, n: int = 8) -> str:
    """The first ``n`` bytes of ``data`` as a short, printable, escaped literal (never more of the file).

    Error messages quote a file through this only: a message about
    ``/proc/self/environ`` must not print the environment.
    """
    shown = repr(bytes(data[:n]))
    return shown + ("..." if len(data) > n else "")


def quote(name: object, n: int = 80) -> str:
    """A name read from a file (a key, a member), escaped and cut to ``n`` characters for a message."""
    text = name if isinstance(name, str) else repr(name)
    return repr(text[:n]) + ("..." if len(text) > n else "")  # repr escapes what is not printable


def first_line(e: BaseException) -> str:
    """An exception's first line, cut and escaped for a message (library messages may quote the file)."""
    text = str(e).strip()
    if not text:
        return "(no message)"
    line = text.splitlines()[0][:300]
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


def read_capped(path: Path, limits: Limits, what: str) -> bytes:
    """The bytes of a small untrusted file (a JSON index or config), refused past ``limits.max_json_bytes``
    before it is read, and again if it grew since (at most that many bytes plus one are read)."""
    cap = limits.max_json_bytes
    size = path.stat().st_size
    if size > cap:
        raise WeightError(f"{path.name}: {what} of {size} bytes is over limits.max_json_bytes={cap}")
    with open(path, "rb") as f:
        raw = f.read(cap + 1)
    if len(raw) > cap:
        raise WeightError(f"{path.name}: {what} is over limits.max_json_bytes={cap}")
    return raw
