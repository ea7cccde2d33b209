"""Zip archives as untrusted input: the one checked view that npz, ``.keras`` and torch loaders share.

``zipfile`` reads the central directory, but it accepts duplicate names (the
last one wins), members that overlap (the classic zip bomb), names that are
not UTF-8, and it checks a member's CRC-32 only when it is read through it to
the end, which a memory map never does. :class:`Archive` refuses the first
three when it opens the file and finds each member's data offset from its
local header, so stored members can be mapped in place. :meth:`Archive.verify`
checks a stored member's CRC-32 over that map, once, the first time one of its
bytes is handed out: zero copies, and a flipped data byte is caught.
"""

from __future__ import annotations

import itertools
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np

from ..errors import WeightError
from .limits import DEFAULT, Limits, crc32, quote

_LOCAL = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length
_UTF8_FLAG = 0x800
_ENCRYPTED = 0x1


@dataclass(frozen=True)
class Member:
    """One zip member: its directory entry and where its (stored or compressed) bytes start."""

    info: zipfile.ZipInfo
    start: int

    @property
    def name(self) -> str:
        return self.info.filename

    @property
    def stored(self) -> bool:
        return self.info.compress_type == zipfile.ZIP_STORED

    @property
    def end(self) -> int:
        return self.start + self.info.compress_size


class Archive:
    """A zip file checked as a whole before any member is read.

    Refused on open: duplicate or non-UTF-8 member names, names that climb out
    of the archive, encrypted members, members whose bytes overlap another's or
    run past the end of the file, and compressed members that would inflate past
    ``limits`` (the inflated size is what the directory declares, and zipfile
    never inflates beyond it).

    Example::

        with Archive(path) as z:
            data = z.read("config.json", max_bytes=64 << 20)
    """

    def __init__(self, path: Path, limits: Limits = DEFAULT, *, mmap: bool = True):
        self.path, self.limits, self.label = path, limits, path.name
        self.size = path.stat().st_size
        try:
            self.zf = zipfile.ZipFile(path)
        except UnicodeDecodeError as e:
            raise WeightError(f"{self.label}: a zip member name is flagged UTF-8 but is not UTF-8 ({e.reason})") from e
        infos = self.zf.infolist()
        if len(infos) > limits.max_entries:
            raise WeightError(
                f"{self.label}: {len(infos)} zip members, more than limits.max_entries={limits.max_entries}"
            )
        self.members: dict[str, Member] = {}
        with open(path, "rb") as fh:
            for info in infos:
                member = self._check(info, fh)
                if member.name in self.members:
                    raise WeightError(
                        f"{self.label}: refused: the zip holds member {quote(member.name)} twice "
                        "(zip readers disagree on which copy wins)"
                    )
                self.members[member.name] = member
        ordered = sorted(self.members.values(), key=lambda m: m.info.header_offset)
        for a, b in itertools.pairwise(ordered):
            if a.end > b.info.header_offset:
                raise WeightError(
                    f"{self.label}: refused: zip members {quote(a.name)} and {quote(b.name)} overlap "
                    "(a zip bomb shares bytes between members)"
                )
        self.mm = np.memmap(path, np.uint8, mode="r") if mmap and self.size else None
        self._verified: set[str] = set()

    def _check(self, info: zipfile.ZipInfo, fh: IO[bytes]) -> Member:
        name = info.filename
        raw = name.encode("utf-8" if info.flag_bits & _UTF8_FLAG else "cp437")
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise WeightError(f"{self.label}: zip member name {raw[:40]!r} is not UTF-8") from None
        p = PurePosixPath(name.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", name):
            raise WeightError(
                f"{self.label}: refused: zip member {quote(name)} points outside the archive (path traversal)"
            )
        if info.flag_bits & _ENCRYPTED:
            raise WeightError(f"{self.label}: zip member {quote(name)} is encrypted")
        fh.seek(info.header_offset)
        head = fh.read(_LOCAL.size)
        if len(head) < _LOCAL.size or head[:4] != b"PK\x03\x04":
            raise WeightError(f"{self.label}: zip member {quote(name)}: broken local header")
        _, n_name, n_extra = _LOCAL.unpack(head)
        if fh.read(n_name) != raw:
            raise WeightError(f"{self.label}: zip member {quote(name)}: local header names another file")
        member = Member(info, info.header_offset + _LOCAL.size + n_name + n_extra)
        if member.end > self.size:
            raise WeightError(
                f"{self.label}: zip member {quote(name)} is truncated: its {info.compress_size} bytes "
                f"end at {member.end}, past the end of the file ({self.size} bytes)"
            )
        if member.stored and info.file_size != info.compress_size:
            raise WeightError(f"{self.label}: stored zip member {quote(name)} declares two different sizes")
        if not member.stored and not self.limits.inflated_ok(info.file_size, info.compress_size):
            raise WeightError(
                f"{self.label}: refused: zip member {quote(name)} would inflate from {info.compress_size} to "
                f"{info.file_size} bytes, past limits (ratio {self.limits.max_inflate_ratio:g}, "
                f"floor {self.limits.inflate_floor}, max {self.limits.max_member_bytes}); raise them with "
                "load(..., limits=Limits(...)) if you trust the file"
            )
        return member

    # ---------------------------------------------------------------- reads
    def member(self, name: str) -> Member:
        try:
            return self.members[name]
        except KeyError:
            raise WeightError(f"{self.label}: no zip member {quote(name)}") from None

    def verify(self, name: str) -> None:
        """Check a member's CRC-32 against the directory, once per archive; WeightError if it differs."""
        if name in self._verified:
            return
        m = self.member(name)
        if m.stored:
            want, got = m.info.CRC, self._crc_stored(m)
            if got != want:
                raise WeightError(
                    f"{self.label}: zip member {quote(name)} is corrupt: its CRC-32 is {got:08x} but the zip "
                    f"directory says {want:08x}"
                )
        else:
            with self.open(name) as fp:  # zipfile checks the CRC when the stream reaches its end
                while fp.read(1 << 20):
                    pass
        self._verified.add(name)

    def _crc_stored(self, m: Member) -> int:
        if self.mm is not None:
            return crc32(memoryview(self.mm)[m.start : m.end])
        value = 0
        with open(self.path, "rb") as fh:
            fh.seek(m.start)
            left = m.info.compress_size
            while left:
                chunk = fh.read(min(left, 1 << 22))
                if not chunk:
                    break
                value, left = crc32(chunk, value), left - len(chunk)
        return value

    def read(self, name: str, max_bytes: int | None = None, what: str = "member") -> bytes:
        """A whole member's bytes (CRC-checked by zipfile), refused before reading if it exceeds ``max_bytes``."""
        m = self.member(name)
        if max_bytes is not None and m.info.file_size > max_bytes:
            raise WeightError(
                f"{self.label}: {what} {quote(name)} is {m.info.file_size} bytes, more than the limit of "
                f"{max_bytes}; raise it with load(..., limits=Limits(...)) if you trust the file"
            )
        try:
            data = self.zf.read(m.info)
        except zipfile.BadZipFile as e:
            raise WeightError(f"{self.label}: zip member {quote(name)} is corrupt: {e}") from e
        self._verified.add(name)
        return data

    def open(self, name: str) -> IO[bytes]:
        """A stream over a member's inflated bytes; read it to the end to have zipfile check its CRC."""
        return self.zf.open(self.member(name).info)

    def close(self) -> None:
        self.zf.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
