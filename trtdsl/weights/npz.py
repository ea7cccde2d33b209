"""NumPy ``.npz`` and ``.npy`` files, memory-mapped and never unpickled.

``np.load(..., mmap_mode='r')`` ignores ``mmap_mode`` for ``.npz`` and copies
every member on access. But ``np.savez`` stores members uncompressed, so each
``.npy`` member is a header plus raw bytes at a fixed offset in the zip. This
loader reads each member's zip local header and ``.npy`` header and maps the
data bytes in place: no copy, and pages are read only when TensorRT touches
them. Compressed members (``np.savez_compressed``) must be inflated, so they
are read with ``allow_pickle=False`` into one array each, on first access.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

from ..errors import WeightError
from .registry import Probe, loads
from .store import Entry, WeightStore

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length


def _npy_header(fp, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(fp)
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


def _mapped(mm: np.memmap, shape, fortran: bool, dtype: np.dtype, offset: int):
    def read() -> np.ndarray:
        arr = np.ndarray(shape, dtype, buffer=mm, offset=offset, order="F" if fortran else "C")
        return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))

    return read


@loads(".npz", sniff=lambda p: bool(p.zip_names) and all(n.endswith(".npy") for n in p.zip_names))
def load_npz(path: Path, mmap: bool = True) -> WeightStore:
    """An ``.npz`` archive; uncompressed members are memory-mapped unless ``mmap=False``."""
    zf = zipfile.ZipFile(path)
    size = path.stat().st_size
    mm = np.memmap(path, np.uint8, mode="r") if mmap and size else None
    entries: dict[str, Entry] = {}
    with open(path, "rb") as fh:
        for info in zf.infolist():
            key = info.filename.removesuffix(".npy")
            where = f"{path.name}: member {info.filename!r}"
            if info.is_dir():
                continue
            if info.compress_type == zipfile.ZIP_STORED and mm is not None:
                fh.seek(info.header_offset)
                sig, n_name, n_extra = _LOCAL_HEADER.unpack(fh.read(_LOCAL_HEADER.size))
                if sig != b"PK\x03\x04":
                    raise WeightError(f"{where}: broken zip local header")
                start = info.header_offset + _LOCAL_HEADER.size + n_name + n_extra
                fh.seek(start)
                shape, fortran, dtype = _npy_header(fh, where)
                offset = fh.tell()
                nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                if offset + nbytes > min(start + info.file_size, size):
                    raise WeightError(f"{where}: truncated: {nbytes} data bytes declared past the end of the member")
                read = _mapped(mm, shape, fortran, dtype, offset)
            else:
                with zf.open(info) as fp:
                    shape, fortran, dtype = _npy_header(fp, where)
                nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                if nbytes > info.file_size:  # refuse before inflating: a bomb cannot pass this
                    raise WeightError(f"{where}: declares {nbytes} bytes but the member holds {info.file_size}")

                def read(info=info) -> np.ndarray:
                    with zf.open(info) as fp:
                        arr = np.lib.format.read_array(fp, allow_pickle=False)
                    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))

            if key in entries:
                raise WeightError(f"{where}: the archive holds {key!r} twice")
            entries[key] = Entry(shape, dtype.newbyteorder("="), read)
    return WeightStore.from_entries(path, "npz", entries, close=zf.close)


def _is_npy(p: Probe) -> bool:
    return p.head.startswith(b"\x93NUMPY")


@loads(".npy", sniff=_is_npy)
def load_npy(path: Path, mmap: bool = True) -> WeightStore:
    """A single ``.npy`` array, named after the file's stem."""
    with open(path, "rb") as fh:
        shape, _, dtype = _npy_header(fh, path.name)
    arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    if arr.dtype.isnative is False:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    entry = Entry(shape, dtype.newbyteorder("="), lambda: arr)
    return WeightStore.from_entries(path, "npy", {path.stem: entry})
