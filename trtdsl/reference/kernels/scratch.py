"""Work arrays kept between calls, per thread: im2col matrices, phase images, Winograd tiles.

Why: a kept matrix whose padding is written once needs no clearing and faults in
no fresh pages on the next call with the same shapes.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

_SCRATCH_BYTES = 64 << 20
_scratch_local = threading.local()


def kept(key: tuple, make: Callable[[], np.ndarray]) -> np.ndarray:
    """The work array cached under ``key``, made by ``make()`` the first time, kept for reuse.

    Kept per thread (two threads never share one), the most recently used first, up to
    _SCRATCH_BYTES in all; an array larger than that is made anew on every call.
    """
    cache: OrderedDict | None = getattr(_scratch_local, "cache", None)
    if cache is None:
        cache = _scratch_local.cache = OrderedDict()
    found = cache.get(key)
    if found is not None:
        cache.move_to_end(key)
        return found
    array = make()
    if array.nbytes <= _SCRATCH_BYTES:
        cache[key] = array
        total = sum(a.nbytes for a in cache.values())
        while total > _SCRATCH_BYTES:
            total -= cache.popitem(last=False)[1].nbytes
    return array


def shared(role: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialized work array of ``shape``, on one buffer per ``role`` that every shape shares.

    For work arrays rewritten whole on every call (nothing to keep between calls): one
    buffer, grown to the largest shape asked for, instead of one kept array per shape.
    """
    dtype = np.dtype(dtype)
    nbytes = dtype.itemsize * math.prod(shape)
    buf = kept(("shared", role), lambda: np.empty(0, np.uint8))
    if buf.nbytes < nbytes:
        _scratch_local.cache.pop(("shared", role))
        buf = kept(("shared", role), lambda: np.empty(nbytes, np.uint8))
    return buf[:nbytes].view(dtype).reshape(shape)


def zeroed(shape: tuple[int, ...], dtype: np.dtype, ones_row: bool, geometry: tuple) -> np.ndarray:
    """A zeroed im2col matrix (N, G, rows, pixels), its last row ones if ``ones_row``, kept for reuse.

    Every call with the same shape and ``geometry`` writes the same boxes of the matrix,
    so what lies outside them (the padding's zeros, the ones row) never changes and a
    kept matrix needs no clearing: that saves a memset of the whole matrix per call.
    """

    def make() -> np.ndarray:
        cols = np.zeros(shape, dtype=dtype)
        if ones_row:
            cols[:, :, -1] = 1
        return cols

    return kept(("im2col", shape, np.dtype(dtype), ones_row, geometry), make)
