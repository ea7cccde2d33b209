"""NumPy ``.npz`` and ``.npy`` files, memory-mapped and never unpickled.

``np.load(..., mmap_mode='r')`` ignores ``mmap_mode`` for ``.npz`` and copies
every member on access. But ``np.savez`` stores members uncompressed, so each
``.npy`` member is a header plus raw bytes at a fixed offset in the zip. This
loader reads each member's zip local header and ``.npy`` header and maps the
data bytes in place: no copy, and pages are read only when TensorRT touches
them, after the member's CRC-32 is checked over the map on first access.
Compressed members (``np.savez_compressed``) are inflated straight into one
array each, on first access; :mod:`.zipcheck` bounds what they may inflate to.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import WeightError
from .limits import DEFAULT, Limits, quote
from .registry import Probe, loads
from .store import Entry, WeightStore
from .zipcheck import Archive


def _npy_header(fp, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(fp)
    except ValueError as e:
        raise WeightError(f"{where}: not a .npy array (expected the magic b'\\x93NUMPY'): {e}") from None
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise WeightError(f"{where}: unsupported .npy version {version}")
    if dtype.hasobject:
        raise WeightError(f"{where}: holds pickled Python objects (dtype {dtype}); trtdsl never unpickles weight files")
    if dtype.kind not in "biufc" or dtype.fields is not None:
        raise WeightError(f"{where}: dtype {dtype} is not a numeric weight")
    return tuple(int(d) for d in shape), bool(fortran), dtype


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    return math.prod(shape) * dtype.itemsize  # Python ints: a declared (2**40, 2**40) cannot wrap around


def _mapped(z: Archive, name: str, shape, fortran: bool, dtype: np.dtype, offset: int):
    def read() -> np.ndarray:
        z.verify(name)  # CRC-32 over the map, the first time the member is read
        arr = np.ndarray(shape, dtype, buffer=z.mm, offset=offset, order="F" if fortran else "C")
        return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))

    return read


def _inflated(z: Archive, name: str, where: str):
    def read() -> np.ndarray:
        with z.open(name) as fp:
            shape, fortran, dtype = _npy_header(fp, where)
            arr = np.empty(shape, dtype, order="F" if fortran else "C")
            view = memoryview(arr.reshape(-1, order="A").view(np.uint8)) if arr.size else memoryview(b"")
            got = 0
            while got < len(view):  # into the array's own memory: no second copy
                n = fp.readinto(view[got:])
                if not n:
                    raise WeightError(f"{where}: truncated: {got} of {len(view)} data bytes")
                got += n
            if fp.read(1):  # reading to the end also makes zipfile check the CRC-32
                raise WeightError(f"{where}: holds bytes past its declared array")
        return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))

    return read


@loads(".npz", sniff=lambda p: bool(p.zip_names) and all(n.endswith(".npy") for n in p.zip_names))
def load_npz(path: Path, mmap: bool = True, limits: Limits = DEFAULT) -> WeightStore:
    """An ``.npz`` archive; uncompressed members are memory-mapped unless ``mmap=False``."""
    z = Archive(path, limits, mmap=mmap)
    entries: dict[str, Entry] = {}
    with open(path, "rb") as fh:
        for name, m in z.members.items():
            if m.info.is_dir():
                continue
            key = name.removesuffix(".npy")
            where = f"{path.name}: member {quote(name)}"
            if m.stored and z.mm is not None:
                fh.seek(m.start)
                shape, fortran, dtype = _npy_header(fh, where)
                offset = fh.tell()
                if offset + _nbytes(shape, dtype) > m.end:
                    raise WeightError(
                        f"{where}: truncated: {_nbytes(shape, dtype)} data bytes declared past the end of the member"
                    )
                read = _mapped(z, name, shape, fortran, dtype, offset)
            else:
                with z.open(name) as fp:
                    shape, fortran, dtype = _npy_header(fp, where)
                if _nbytes(shape, dtype) > m.info.file_size:  # refuse before inflating: a bomb cannot pass this
                    raise WeightError(
                        f"{where}: declares {_nbytes(shape, dtype)} bytes but the member holds {m.info.file_size}"
                    )
                read = _inflated(z, name, where)
            if key in entries:
                raise WeightError(f"{where}: the archive holds {quote(key)} twice")
            entries[key] = Entry(shape, dtype.newbyteorder("="), read)
    return WeightStore.from_entries(path, "npz", entries, close=z.close)


def _is_npy(p: Probe) -> bool:
    return p.head.startswith(b"\x93NUMPY")


@loads(".npy", sniff=_is_npy)
def load_npy(path: Path, mmap: bool = True) -> WeightStore:
    """A single ``.npy`` array, named after the file's stem."""
    with open(path, "rb") as fh:
        shape, _, dtype = _npy_header(fh, path.name)
        header = fh.tell()
    if header + _nbytes(shape, dtype) > path.stat().st_size:
        raise WeightError(
            f"{path.name}: truncated: the header declares {_nbytes(shape, dtype)} data bytes, "
            f"the file holds {path.stat().st_size - header}"
        )
    arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    if arr.dtype.isnative is False:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    entry = Entry(shape, dtype.newbyteorder("="), lambda: arr)
    return WeightStore.from_entries(path, "npy", {path.stem: entry})
