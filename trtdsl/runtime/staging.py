"""Host-side data movement for a Session: pinned staging and chunked copies.

A NumPy feed lives in pageable memory, which the DMA engines cannot read
asynchronously. It is copied into a pinned staging buffer first. For large
tensors that host copy is split into chunks done by a small thread pool
(``np.copyto`` releases the GIL), and each chunk's device copy is enqueued as
soon as the chunk is staged, so the host copy and the PCIe transfer overlap
instead of adding up. Outputs come back the same way in reverse, one event per
chunk.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from . import cuda

CHUNK_BYTES = 4 << 20  # below this a tensor moves in one piece
# Measured on an H100 host (a 16-core VM): 8 threads, about 16 chunks of >= 4 MiB copied fastest.
_THREADS, _PIECES = 8, 16
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=min(_THREADS, os.cpu_count() or 1), thread_name_prefix="trtdsl-stage"
            )
    return _pool


def chunk_elements(nbytes: int, item: int) -> int:
    """Elements per chunk of a large copy: about _PIECES chunks, each at least CHUNK_BYTES."""
    step = max(CHUNK_BYTES, -(-nbytes // _PIECES))
    return max(step // item, 1)


def copy_into(dst: np.ndarray, src: np.ndarray, dtype: str) -> None:
    """Write ``src`` into the pinned view ``dst`` (same number of elements).

    ``src`` went through the feed rule (``dtypes.convert``) already, so it has ``dst``'s dtype.
    """
    np.copyto(dst, src.reshape(dst.shape), casting="no")


def stage_in(src: np.ndarray, view: np.ndarray, pinned_ptr: int, dst: int, *, dtype: str, stream: cuda.Stream) -> None:
    """Copy host ``src`` to device ``dst`` through the pinned ``view`` (which starts at ``pinned_ptr``)."""
    nbytes = view.nbytes
    if nbytes <= CHUNK_BYTES:
        copy_into(view, src, dtype)
        cuda.memcpy_async(dst, pinned_ptr, nbytes, stream)
        return
    flat_dst = view.reshape(-1)
    flat_src = np.ascontiguousarray(src).reshape(-1)
    item = view.itemsize
    step = chunk_elements(nbytes, item)
    bounds = [(a, min(a + step, flat_dst.size)) for a in range(0, flat_dst.size, step)]
    futures = [pool().submit(copy_into, flat_dst[a:b], flat_src[a:b], dtype) for a, b in bounds]
    try:
        for (a, b), f in zip(bounds, futures, strict=True):
            f.result()
            cuda.memcpy_async(dst + a * item, pinned_ptr + a * item, (b - a) * item, stream)
    finally:
        for f in futures:  # never leave a thread writing into the staging buffer after an error
            f.cancel()
            if not f.cancelled():
                f.exception()


def fill(view: np.ndarray, src: np.ndarray, dtype: str) -> None:
    """``copy_into``, split over the thread pool when large (no device copy: a graph does that)."""
    if view.nbytes <= CHUNK_BYTES:
        copy_into(view, src, dtype)
        return
    flat_dst, flat_src = view.reshape(-1), np.ascontiguousarray(src).reshape(-1)
    step = chunk_elements(view.nbytes, view.itemsize)
    parts = [(flat_dst[a : a + step], flat_src[a : a + step]) for a in range(0, flat_dst.size, step)]
    for f in [pool().submit(copy_into, d, s, dtype) for d, s in parts]:
        f.result()


class Chunks:
    """The per-chunk events of one chunked device-to-host copy."""

    def __init__(self) -> None:
        self.parts: list[tuple[cuda.Event, int, int]] = []


def stage_out(src: int, pinned_ptr: int, nbytes: int, *, item: int, stream: cuda.Stream, events: Any) -> Chunks | None:
    """Enqueue device ``src`` -> pinned copy; chunked (with an event per chunk) when large.

    ``events(i)`` returns the lane's i-th reusable chunk event.
    """
    if nbytes <= CHUNK_BYTES:
        cuda.memcpy_async(pinned_ptr, src, nbytes, stream)
        return None
    chunks = Chunks()
    step = chunk_elements(nbytes, item) * item
    for a in range(0, nbytes, step):
        b = min(a + step, nbytes)
        cuda.memcpy_async(pinned_ptr + a, src + a, b - a, stream)
        ev = events(len(chunks.parts))
        ev.record(stream)
        chunks.parts.append((ev, a // item, b // item))
    return chunks


def collect(view: np.ndarray, chunks: Chunks | None, dtype: str, out: np.ndarray | None = None) -> np.ndarray:
    """The contents of pinned ``view`` in ``out`` (C-contiguous) or a fresh array, each chunk copied as it lands.

    Without chunks the caller must have waited for the whole transfer.
    """
    if out is None and chunks is None:
        return view.copy()
    if out is None:
        out = np.empty(view.shape, view.dtype)
    flat_out, flat_view = out.reshape(-1), view.reshape(-1)
    if chunks is None:
        flat_out[...] = flat_view
        return out

    def part(ev: cuda.Event, a: int, b: int) -> None:
        ev.synchronize()
        flat_out[a:b] = flat_view[a:b]

    for f in [pool().submit(part, *p) for p in chunks.parts]:
        f.result()
    return out
