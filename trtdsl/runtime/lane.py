"""Per-stream execution state of a Session: context, buffers, output allocator, request handles."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _trt
from ..errors import BackendError, ProfileError, TrtdslError
from . import cuda, staging

_TIMING = ("h2d_ms", "compute_ms", "d2h_ms")


_have_trt: bool | None = None


def _trt_loaded() -> bool:
    # Cached: without TensorRT, _trt.available() retries the imports, far too slow for every call.
    global _have_trt
    if _have_trt is None:
        _have_trt = _trt.available()
    return _have_trt


def trt_errors(since: int) -> str:
    """TensorRT's error messages logged since ``log_mark()`` returned ``since``, as a sentence tail."""
    if not _trt_loaded():
        return ""
    errors = _trt.logger().errors[since:]
    return (" TensorRT: " + " | ".join(errors)) if errors else ""


def log_mark() -> int:
    return len(_trt.logger().errors) if _trt_loaded() else 0


def output_allocator_class() -> type:
    """An ``IOutputAllocator`` subclass (a plain class when TensorRT is absent, for stand-in engines)."""
    base = _trt.load().IOutputAllocator if _trt_loaded() else object

    class OutputAllocator(base):
        """Device memory for outputs whose shape is known only after execution (nonzero, NMS...)."""

        def __init__(self, stream: cuda.Stream):
            base.__init__(self)
            self.stream = stream
            self.buffers: dict[str, cuda.DeviceBuffer] = {}  # grow-only, reused across calls
            self.shapes: dict[str, tuple[int, ...]] = {}
            self.fresh = False  # outputs="device": every call gets new memory that its result owns
            self.taken: dict[str, cuda.DeviceBuffer] = {}
            self.error: Exception | None = None

        def reallocate_output_async(self, tensor_name, memory, size, alignment, stream):
            try:
                size = max(int(size), 1)  # a null address means "allocation failed" to TensorRT
                if self.fresh:
                    buf = self.taken[tensor_name] = cuda.DeviceBuffer(size, stream=self.stream)
                    return buf.ptr
                buf = self.buffers.get(tensor_name)
                if buf is None or buf.nbytes < size:
                    if buf is not None:
                        buf.close()
                    buf = self.buffers[tensor_name] = cuda.DeviceBuffer(size)
                return buf.ptr
            except Exception as e:  # exceptions must not cross into TensorRT
                self.error = e
                return 0

        def reallocate_output(self, tensor_name, memory, size, alignment):
            return self.reallocate_output_async(tensor_name, memory, size, alignment, self.stream.handle)

        def notify_shape(self, tensor_name, shape):
            self.shapes[tensor_name] = tuple(int(d) for d in shape)

    return OutputAllocator


class Lane:
    """One stream, its execution context, and the buffers of the last shapes it ran."""

    def __init__(self, session: Any, stream: cuda.Stream):
        self.session, self.stream = session, stream
        mark = log_mark()
        self.ctx = session.engine.create_execution_context()
        if self.ctx is None:
            raise BackendError("could not create a TensorRT execution context." + trt_errors(mark))
        self.key: tuple | None = None
        self.profile = 0
        self.out_shapes: dict[str, tuple[int, ...]] = {}
        self.dds: set[str] = set()
        self.allocator: Any = None
        self.dev: dict[str, cuda.DeviceBuffer] = {}
        self.nbytes: dict[str, int] = {}
        self.pin: dict[str, cuda.PinnedBuffer] = {}
        self.views: dict[str, np.ndarray] = {}
        self.bound: dict[str, int] = {}
        self.pending: RunHandle | None = None
        self.done = cuda.Event()
        self.sync = cuda.Event()
        self.chunk_events: list[cuda.Event] = []
        self.timers: list[cuda.Event] | None = None

    def chunk_event(self, i: int) -> cuda.Event:
        while len(self.chunk_events) <= i:
            self.chunk_events.append(cuda.Event())
        return self.chunk_events[i]

    def reshape(self, shapes: dict[str, tuple[int, ...]], key: tuple) -> None:
        s = self.session
        index = s.feeds.profile(key)  # ProfileError naming input, dim and range
        mark = log_mark()
        if index != self.profile:
            if not self.ctx.set_optimization_profile_async(index, self.stream.handle):
                raise TrtdslError(f"set_optimization_profile_async({index}) failed." + trt_errors(mark))
            self.profile = index
        for name, shape in shapes.items():
            if not self.ctx.set_input_shape(name, shape):
                raise ProfileError(f"TensorRT rejected shape {shape} for input {name!r}." + trt_errors(mark))
        self.out_shapes = {n: tuple(int(d) for d in self.ctx.get_tensor_shape(n)) for n in s.output_names}
        self.dds = {n for n, shape in self.out_shapes.items() if any(d < 0 for d in shape)}
        for name in self.dds:
            if self.allocator is None:
                self.allocator = output_allocator_class()(self.stream)
            if not self.ctx.set_output_allocator(name, self.allocator):
                raise TrtdslError(f"set_output_allocator({name!r}) failed." + trt_errors(mark))
        sizes = {**shapes, **self.out_shapes}
        self.nbytes = {
            n: int(np.prod(sh, dtype=np.int64)) * s.itemsize[n] for n, sh in sizes.items() if n not in self.dds
        }
        for name in self.out_shapes:
            if name not in self.dds:
                self.device(name)
        self.views.clear()
        self.key = key

    def device(self, name: str) -> cuda.DeviceBuffer:
        """The lane's device buffer for ``name``, grown to the current shape (input buffers only when staged)."""
        buf = self.dev.get(name)
        if buf is None or buf.nbytes < self.nbytes[name]:
            if buf is not None:
                buf.close()
            buf = self.dev[name] = cuda.DeviceBuffer(max(self.nbytes[name], 256))
        return buf

    def view(self, name: str, shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
        """Pinned staging view of ``name`` for ``shape`` and its address (grown when too small)."""
        v = self.views.get(name)
        if v is not None and v.shape == shape:
            return v, self.pin[name].ptr
        dt = self.session.host_dtype[name]
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        buf = self.pin.get(name)
        if buf is None or buf.nbytes < nbytes:
            if buf is not None:
                buf.close()
            buf = self.pin[name] = cuda.PinnedBuffer(max(nbytes, 256))
        v = self.views[name] = buf.array(shape, dt)
        return v, buf.ptr

    def bind(self, name: str, ptr: int) -> None:
        if self.bound.get(name) != ptr:
            mark = log_mark()
            if not self.ctx.set_tensor_address(name, ptr):
                raise TrtdslError(f"set_tensor_address({name!r}, {ptr:#x}) failed." + trt_errors(mark))
            self.bound[name] = ptr

    def close(self) -> None:
        if self.pending is not None:
            self.pending._finish()
        for buf in [*self.dev.values(), *self.pin.values()]:
            buf.close()
        self.dev.clear()
        self.pin.clear()
        self.views.clear()
        self.ctx = None


class RunHandle:
    """An enqueued request: ``wait()`` blocks until it finished, ``result()`` returns its outputs."""

    def __init__(self, lane: Lane, outputs: dict[str, Any], timing: bool):
        self._lane, self._outputs, self._timing = lane, outputs, timing
        self._result: dict[str, Any] | None = None
        self._times: dict[str, float] | None = None

    def done(self) -> bool:
        return self._result is not None or self._lane.done.query()

    def wait(self) -> None:
        if self._result is None:
            self._lane.done.synchronize()

    def result(self) -> dict[str, Any]:
        """Outputs by name: NumPy arrays, or DeviceArrays for ``outputs="device"``."""
        self._finish()
        assert self._result is not None
        return self._result

    @property
    def timings(self) -> dict[str, float]:
        """GPU milliseconds of the host-to-device copies, execution and device-to-host copies (``timing=True``)."""
        if not self._timing:
            raise TrtdslError("run_async(..., timing=True) records timings; this request did not")
        self._finish()
        assert self._times is not None
        return self._times

    def _finish(self) -> None:
        if self._result is not None:
            return
        lane = self._lane
        result: dict[str, Any] = {}
        # Chunked outputs first: their host copies overlap the rest of the transfer.
        for name, out in self._outputs.items():
            if isinstance(out, tuple) and out[1] is not None:  # (pinned view, chunks, dtype, out array)
                result[name] = staging.collect(*out)
        lane.done.synchronize()
        for name, out in self._outputs.items():
            if not isinstance(out, tuple):  # DeviceArray, or a pinned ``out`` array copied into directly
                result[name] = out
            elif name not in result:
                result[name] = staging.collect(*out)
        result = {n: result[n] for n in self._outputs}
        if self._timing:
            t = lane.timers
            assert t is not None
            self._times = {k: t[i + 1].elapsed_ms(t[i]) for i, k in enumerate(_TIMING)}
        self._result = result
        if lane.pending is self:
            lane.pending = None
