"""cuda-python helpers on a real GPU: buffers, pinned memory, streams, events, graphs, leaks, DLPack with torch."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from trtdsl.errors import TrtdslError
from trtdsl.runtime import DeviceArray, cuda

from ._gpu import gpu_marks

pytestmark = gpu_marks()


def _roundtrip(host: np.ndarray, stream: cuda.Stream) -> np.ndarray:
    """host -> pinned -> device -> device -> pinned -> fresh host array, all async on one stream."""
    n = host.nbytes
    with (
        cuda.PinnedBuffer(n) as pin_in,
        cuda.PinnedBuffer(n) as pin_out,
        cuda.DeviceBuffer(n) as a,
        cuda.DeviceBuffer(n) as b,
    ):
        src = pin_in.array(host.shape, host.dtype)
        src[...] = host
        cuda.memcpy_async(a.ptr, pin_in.ptr, n, stream)
        cuda.memcpy_async(b.ptr, a.ptr, n, stream)
        cuda.memcpy_async(pin_out.ptr, b.ptr, n, stream)
        stream.synchronize()
        return pin_out.array(host.shape, host.dtype).copy()


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int8, np.int64, np.uint8, np.bool_])
@pytest.mark.parametrize("shape", [(1,), (3, 5, 7), (1 << 20,), (37 << 20,)])
def test_async_copies_roundtrip_exact(dtype, shape, stream, rng):
    if np.prod(shape) > (1 << 20) and dtype not in (np.float32, np.uint8):
        pytest.skip("large sizes only for two dtypes, to keep the run short")
    host = (rng.standard_normal(shape) * 100).astype(dtype)
    np.testing.assert_array_equal(_roundtrip(host, stream), host)


def test_pinned_buffer_views_keep_it_alive():
    buf = cuda.PinnedBuffer(64)
    view = buf.array((4, 4), np.float32)
    del buf
    gc.collect()
    view[...] = 3.0  # would crash if the pinned memory had been freed
    assert view.sum() == 48
    with pytest.raises(TrtdslError, match="cannot hold"):
        cuda.PinnedBuffer(8).array((4,), np.float32)


def test_stream_ordering_with_events(rng):
    """A copy on stream B that waits on an event recorded on stream A sees A's data."""
    n = 64 << 20
    host = rng.integers(0, 255, n, dtype=np.uint8)
    with cuda.Stream() as a, cuda.Stream() as b, cuda.PinnedBuffer(n) as pin, cuda.PinnedBuffer(n) as out:
        d1, d2 = cuda.DeviceBuffer(n), cuda.DeviceBuffer(n)
        np.asarray(pin)[...] = host
        ready = cuda.Event()
        cuda.memcpy_async(d1.ptr, pin.ptr, n, a)  # slow enough that B would overtake without the event
        ready.record(a)
        b.wait(ready)
        cuda.memcpy_async(d2.ptr, d1.ptr, n, b)
        cuda.memcpy_async(out.ptr, d2.ptr, n, b)
        b.synchronize()
        assert ready.query() and a.query() and b.query()
        np.testing.assert_array_equal(np.asarray(out), host)


def test_event_elapsed_time(stream):
    n = 256 << 20
    start, end = cuda.Event(timing=True), cuda.Event(timing=True)
    with cuda.DeviceBuffer(n) as a, cuda.DeviceBuffer(n) as b:
        start.record(stream)
        for _ in range(4):
            cuda.memcpy_async(b.ptr, a.ptr, n, stream)
        end.record(stream)
        end.synchronize()
    ms = end.elapsed_ms(start)
    assert 0.0 < ms < 1000.0
    with pytest.raises(cuda.CudaError, match=r"cudaEventElapsedTime failed: cudaErrorInvalidResourceHandle"):
        cuda.Event().elapsed_ms(cuda.Event())  # events without timing


def test_cuda_graph_of_copies_replays(stream, rng):
    n = 1 << 20
    with cuda.PinnedBuffer(n * 4) as pin_in, cuda.PinnedBuffer(n * 4) as pin_out:
        d1, d2 = cuda.DeviceBuffer(n * 4), cuda.DeviceBuffer(n * 4)
        src, dst = pin_in.array(n, np.float32), pin_out.array(n, np.float32)
        with cuda.capture(stream) as graph:
            cuda.memcpy_async(d1.ptr, pin_in.ptr, n * 4, stream)
            cuda.memcpy_async(d2.ptr, d1.ptr, n * 4, stream)
            cuda.memcpy_async(pin_out.ptr, d2.ptr, n * 4, stream)
        dst[...] = 0
        stream.synchronize()
        assert not dst.any()  # capturing ran nothing
        for _ in range(3):
            src[...] = rng.standard_normal(n, dtype=np.float32)
            graph.launch(stream)
            stream.synchronize()
            np.testing.assert_array_equal(dst, src)
        graph.close()
        with pytest.raises(TrtdslError, match="not captured"):
            graph.launch(stream)


def test_failed_capture_leaves_stream_usable(stream):
    with pytest.raises(ZeroDivisionError), cuda.capture(stream):
        1 / 0
    with cuda.DeviceBuffer(16) as d, cuda.PinnedBuffer(16) as h:
        cuda.memcpy_async(d.ptr, h.ptr, 16, stream)
        stream.synchronize()


def _free_after(fn) -> int:
    cuda.synchronize()
    gc.collect()
    free0, _ = cuda.mem_info()
    fn()
    cuda.synchronize()
    gc.collect()
    free1, _ = cuda.mem_info()
    return free0 - free1


def test_10000_allocate_free_cycles_leave_memory_where_it_started():
    def closed():
        for i in range(10_000):
            cuda.DeviceBuffer(1 << 20 if i % 2 else 4096).close()

    def collected():  # freed by garbage collection only
        for _ in range(10_000):
            DeviceArray.empty((256, 1024), "float32")

    def pinned_and_events():
        for _ in range(2_000):
            cuda.PinnedBuffer(1 << 16)
            cuda.Event()
            cuda.Stream()

    def stream_ordered():
        with cuda.Stream() as s:
            for _ in range(10_000):
                cuda.DeviceBuffer(1 << 20, stream=s)
            s.synchronize()

    cuda.DeviceBuffer(1 << 20).close()  # let the context and allocator warm up first
    for fn in (closed, collected, pinned_and_events):
        assert _free_after(fn) == 0, fn.__name__
    # the stream-ordered pool may keep its reservation; it must not grow with the cycle count
    assert _free_after(stream_ordered) <= 64 << 20
