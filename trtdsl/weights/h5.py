"""Generic HDF5: every numeric dataset under its path, read lazily through h5py.

HDF5 stores an unchunked, unfiltered dataset as one contiguous run of bytes,
and h5py reports its file offset. Those datasets are memory-mapped in place
(no copy); chunked or compressed ones are read by h5py into one array each.
"""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np

from .registry import loads
from .store import Entry, WeightStore

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class Window(io.RawIOBase):
    """A read-only file object over bytes ``[start, start+size)`` of a file, e.g. one stored zip member."""

    def __init__(self, path: Path, start: int, size: int):
        self._f = open(path, "rb")
        self._start, self._size, self._pos = start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf) -> int:
        n = max(0, min(len(buf), self._size - self._pos))
        self._f.seek(self._start + self._pos)
        got = self._f.readinto(memoryview(buf)[:n])
        self._pos += got
        return got

    def close(self) -> None:
        self._f.close()
        super().close()


class Mapper:
    """Maps contiguous datasets of one HDF5 image that starts at byte ``base`` of ``path``."""

    def __init__(self, path: Path | None, base: int = 0):
        self.mm = None
        if path is not None and path.stat().st_size:
            self.mm = np.memmap(path, np.uint8, mode="r")
        self.base = base

    def entry(self, ds: h5py.Dataset) -> Entry | None:
        """An Entry for a numeric dataset (None for strings, compounds and the like)."""
        dtype, shape = ds.dtype, tuple(int(d) for d in ds.shape)
        if dtype.kind not in "biuf" or dtype.fields is not None:
            return None
        native = dtype.newbyteorder("=")
        offset = ds.id.get_offset() if ds.chunks is None else None
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if self.mm is not None and offset is not None and self.base + offset + nbytes <= len(self.mm):
            mm, start = self.mm, self.base + offset

            def read() -> np.ndarray:
                arr = np.ndarray(shape, dtype, buffer=mm, offset=start)
                return arr if dtype.isnative else arr.astype(native)

        else:

            def read() -> np.ndarray:
                return np.asarray(ds[()], dtype=native)

        return Entry(shape, native, read)


def open_h5(path: Path, *, mmap: bool) -> tuple[h5py.File, Mapper]:
    return h5py.File(path, "r"), Mapper(path if mmap else None)


@loads(".h5", ".hdf5", ".hdf", name="h5", sniff=lambda p: p.head.startswith(HDF5_MAGIC), priority=9)
def load_h5(path: Path, mmap: bool = True) -> WeightStore:
    """Every numeric dataset of an HDF5 file, keyed by its path (``'group/sub/name'``)."""
    f, mapper = open_h5(path, mmap=mmap)
    entries: dict[str, Entry] = {}

    def visit(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            e = mapper.entry(obj)
            if e is not None:
                entries[name] = e

    f.visititems(visit)  # hard links only: external and soft links are not followed
    return WeightStore.from_entries(path, "h5", entries, close=f.close)
