"""A pool of dead activation buffers, handed back out for new outputs of the same size.

Why: a run of a CNN allocates and frees the same few sizes of activation over
and over. Left to ``malloc``, big blocks go back to the kernel when freed
(glibc unmaps or trims them) and return as fresh pages that fault in one at a
time, zero-filled: about 1,900 page faults, 3 ms, per ResNet-50 run on the
2-core CI machine (bench/reference.py). Pooled, a dead buffer is reused while
it is still mapped and likely still in cache.

Safety comes from reference counts, not from analysis of the graph: ``give``
keeps a buffer only when the array handed over holds the last reference to
the memory it owns, the proof NumPy itself uses to reuse temporaries in place.
A captured tensor, a network output, a view alive in another tensor, a feed
the caller holds and a cached weight all hold a reference, so they are never
kept. Should an interpreter count references differently, the check fails
towards keeping nothing (tests/reference/test_buffer_reuse.py pins it).

Only sizes that some layer has asked ``empty`` for are kept, so a network
whose layers never ask holds nothing.
"""

from __future__ import annotations

import sys
import threading

import numpy as np

DEFAULT_LIMIT = 256 << 20  # bytes kept at most; beyond it, buffers of the largest size are let go first
# Buffers kept at most per size: more than this many dead tensors of one size before the next
# request of it are not reused, only held (ViT's 700 residual-stream tensors of its layer norms'
# size took the pool to its limit: 406 instead of 150 MiB peak).
PER_SIZE = 8


def _sole_reference_count() -> int:
    """What ``sys.getrefcount`` reports for an object that only one local name holds (2 on CPython 3.11)."""
    owner = np.empty(1)
    return sys.getrefcount(owner)


_SOLE = _sole_reference_count()


class BufferPool:
    """Dead C-contiguous buffers keyed by byte size; the most recently freed is handed out first."""

    def __init__(self, limit: int = DEFAULT_LIMIT):
        self.limit = limit
        self.held = 0  # bytes kept now
        self._free: dict[int, list[np.ndarray]] = {}  # byte size -> 1-D uint8 buffers
        self._lock = threading.Lock()

    def empty(self, shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
        """An uninitialized C-contiguous array, on a kept buffer of the same byte size when there is one."""
        dtype = np.dtype(dtype)
        nbytes = dtype.itemsize
        for s in shape:
            nbytes *= s
        with self._lock:
            stack = self._free.setdefault(nbytes, [])  # the key marks the size as wanted
            buf = stack.pop() if stack else None
            if buf is not None:
                self.held -= nbytes
        if buf is None:
            return np.empty(shape, dtype)
        return buf.view(dtype).reshape(shape)

    def give(self, array: np.ndarray) -> bool:
        """Keep the memory of ``array`` if nothing else can reach it and its size is wanted; whether it was kept.

        Pass the only reference the caller has, not a name it keeps: ``pool.give(env.pop(name))``.
        """
        if type(array) is not np.ndarray:
            return False
        owner = array if array.base is None else array.base
        del array  # a view handed over dies here, and with it its reference to ``owner``
        if (
            type(owner) is not np.ndarray
            or owner.base is not None  # memory owned by something else (a buffer, an mmap)
            or owner.nbytes not in self._free
            or not owner.flags.c_contiguous
            or not owner.flags.writeable
            or sys.getrefcount(owner) != _SOLE
        ):
            return False
        nbytes = owner.nbytes
        if nbytes > self.limit:
            return False
        buf = owner.reshape(-1).view(np.uint8)
        with self._lock:
            if len(self._free[nbytes]) >= PER_SIZE:
                return False
            self._free[nbytes].append(buf)
            self.held += nbytes
            while self.held > self.limit:
                size = max(s for s, stack in self._free.items() if stack)
                self._free[size].pop(0)
                self.held -= size
        return True

    def clear(self) -> None:
        """Let every kept buffer go (sizes stay wanted)."""
        with self._lock:
            for stack in self._free.values():
                stack.clear()
            self.held = 0
