"""What a loader hands over and every view of one file shares: ``Entry`` and ``_Source``.

A loader describes each weight as an :class:`Entry` (shape and dtype now, data on
``read()``); :meth:`WeightStore.from_entries` puts them in one ``_Source``, which
reads each array once, caches it read-only, and keeps the record of uses that
the store's views share.

Example::

    entries = {"fc.weight": Entry((10, 4), np.dtype(np.float32), lambda: array)}
    w = WeightStore.from_entries("model.bin", "mine", entries)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import WeightError


@dataclass
class Entry:
    """One weight as a loader describes it: its metadata now, its data on ``read()``."""

    shape: tuple[int, ...]
    dtype: np.dtype
    read: Callable[[], np.ndarray]

    def __post_init__(self) -> None:
        if id(self.dtype) not in _CANONICAL_IDS:
            self.dtype = canonical(self.dtype)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


# ids of NumPy's own dtype instances of the common types (immortal singletons): the
# common case skips canonical(), which a model's construction calls per weight.
_CANONICAL_IDS = frozenset(
    id(np.dtype(t)) for t in (np.float32, np.float16, np.float64, np.int8, np.int32, np.int64, np.uint8, np.bool_)
)


_USERDEF = 256  # NPY_USERDEF: types other packages register with NumPy (ml_dtypes) are numbered from here


def canonical(dtype: np.dtype) -> np.dtype:
    """NumPy's own instance of ``dtype``. h5py and explicit byte orders give equal but distinct
    instances ('<f4'), which trt.Weights refuses: "Could not implicitly convert NumPy data type".

    An ``ml_dtypes`` type (bfloat16, float8_e4m3fn, ...) keeps its type: its ``.str`` is '<V1',
    which ``np.dtype`` reads back as raw void bytes.
    """
    d = np.dtype(dtype)
    if d.num >= _USERDEF:
        return np.dtype(d.type) if d.isnative else d
    return np.dtype(d.str)


class _Source:
    """What every view of one loaded file shares: entries, cached arrays and the use record."""

    def __init__(self, path: Path, fmt: str, entries: dict[str, Entry], *, shapeless: bool, close: Callable | None):
        self.path, self.fmt, self.entries, self.shapeless = path, fmt, entries, shapeless
        self.cache: dict[str, np.ndarray] = {}
        self.used: set[str] = set()
        self.missed: set[str] = set()  # full names blocks looked for and did not find (optional weights)
        self._close = close
        self._slashed: bool | None = None

    @property
    def slashed(self) -> bool:
        """Whether any name has a '/' (Keras' 'conv2d/kernel'): then blocks look for either separator."""
        if self._slashed is None:
            self._slashed = any("/" in k for k in self.entries)
        return self._slashed

    def array(self, key: str) -> np.ndarray:
        arr = self.cache.get(key)
        if arr is None:
            try:
                arr = np.asarray(self.entries[key].read())
            except WeightError:
                raise
            except Exception as e:
                raise WeightError(f"{self.path.name}: cannot read weight {key!r}: {type(e).__name__}: {e}") from e
            if id(arr.dtype) not in _CANONICAL_IDS and arr.dtype is not canonical(arr.dtype):
                arr = arr.view(canonical(arr.dtype))  # same bytes, a dtype TensorRT accepts
            arr.flags.writeable = False  # one cached array is shared by every view and every take()
            self.cache[key] = arr
        return arr

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None
