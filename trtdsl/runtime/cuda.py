"""Thin, typed helpers over the CUDA runtime bindings of cuda-python.

cuda-python moved its runtime module: 11.x and 12.0-12.5 have ``cuda.cudart``,
12.6+ and 13.x have ``cuda.bindings.runtime`` (13.x only that). ``runtime()``
finds either, lazily, so ``import trtdsl.runtime`` works without cuda-python and
the first GPU object raises :class:`~trtdsl.errors.BackendError` naming the
extra. Every call goes through :func:`check`, which turns a non-zero
``cudaError_t`` into :class:`CudaError` naming the call and the error.

Owning objects (``DeviceBuffer``, ``PinnedBuffer``, ``Stream``, ``Event``,
``Graph``) free their handle in ``close()`` (idempotent, also via ``with``) and
on garbage collection through ``weakref.finalize`` -- never at interpreter exit,
where the CUDA runtime may already be torn down.

Example::

    from trtdsl.runtime import cuda
    with cuda.Stream() as s, cuda.DeviceBuffer(1 << 20) as d, cuda.PinnedBuffer(1 << 20) as h:
        cuda.memcpy_async(d.ptr, h.ptr, 1 << 20, s)
        s.synchronize()
"""

from __future__ import annotations

import contextlib
import importlib
import weakref
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import BackendError, CudaError, TrtdslError

INSTALL_HINT = "pip install 'trtdsl[cuda]'"
_MODULES = ("cuda.bindings.runtime", "cuda.cudart")
_rt: ModuleType | None = None


def runtime() -> ModuleType:
    """The cuda-python runtime module (``cudart``), imported on first use."""
    global _rt
    if _rt is None:
        errors = []
        for name in _MODULES:
            try:
                _rt = importlib.import_module(name)
                break
            except ImportError as e:
                errors.append(f"{name}: {e}")
        else:
            raise BackendError(
                f"cuda-python is not installed, and trtdsl's GPU runtime needs it. Install it with {INSTALL_HINT}, "
                f"or use trtdsl.ReferenceSession(network) to run on the CPU. Tried: {'; '.join(errors)}"
            )
    return _rt


def available() -> bool:
    """True when cuda-python imports (a GPU may still be absent)."""
    try:
        runtime()
    except BackendError:
        return False
    return True


def error_name(code: Any) -> tuple[str, str]:
    """(name, description) of a ``cudaError_t``."""
    rt = runtime()
    try:
        name = rt.cudaGetErrorName(code)[1].decode()
        text = rt.cudaGetErrorString(code)[1].decode()
    except Exception:  # an unknown code must not hide the original failure
        return f"cudaError {int(code)}", ""
    return name, text


def check(result: Any, call: str) -> Any:
    """Unwrap a cuda-python result tuple ``(err, *values)``; raise CudaError when err != 0."""
    err = result[0]
    if err:
        name, text = error_name(err)
        raise CudaError(call, err, name, text)
    if len(result) == 1:
        return None
    return result[1] if len(result) == 2 else result[1:]


# ------------------------------------------------------------------ devices
def device_count() -> int:
    """Number of CUDA devices; 0 when the driver reports none."""
    rt = runtime()
    err, n = rt.cudaGetDeviceCount()
    if err == rt.cudaError_t.cudaErrorNoDevice:
        return 0
    return int(check((err, n), "cudaGetDeviceCount"))


def set_device(device: int) -> None:
    check(runtime().cudaSetDevice(int(device)), f"cudaSetDevice({device})")


def current_device() -> int:
    return int(check(runtime().cudaGetDevice(), "cudaGetDevice"))


@contextlib.contextmanager
def use_device(device: int) -> Iterator[None]:
    """Make ``device`` current for this thread inside the block."""
    previous = current_device()
    set_device(device)
    try:
        yield
    finally:
        set_device(previous)


def compute_capability(device: int = 0) -> tuple[int, int]:
    rt = runtime()
    attr = rt.cudaDeviceAttr
    major = check(rt.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute")
    minor = check(rt.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMinor, device), "cudaDeviceGetAttribute")
    return int(major), int(minor)


def device_name(device: int = 0) -> str:
    prop = check(runtime().cudaGetDeviceProperties(device), f"cudaGetDeviceProperties({device})")
    name = prop.name
    return (name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)).strip()


def mem_info() -> tuple[int, int]:
    """(free, total) bytes of the current device."""
    free, total = check(runtime().cudaMemGetInfo(), "cudaMemGetInfo")
    return int(free), int(total)


def synchronize() -> None:
    check(runtime().cudaDeviceSynchronize(), "cudaDeviceSynchronize")


def memcpy_async(dst: int, src: int, nbytes: int, stream: Stream | int) -> None:
    """Stream-ordered copy between any two of host/pinned/device (direction from unified addressing)."""
    rt = runtime()
    handle = stream if isinstance(stream, int) else stream.handle
    err = rt.cudaMemcpyAsync(dst, src, nbytes, rt.cudaMemcpyKind.cudaMemcpyDefault, handle)[0]
    if err:
        check((err,), f"cudaMemcpyAsync({nbytes} bytes)")


def _quiet(fn: Any, *args: Any) -> None:
    """Release a handle from a finalizer: errors cannot be raised there, and a dying context is fine."""
    with contextlib.suppress(Exception):
        fn(*args)


def _finalizer(owner: object, fn: Any, *args: Any) -> weakref.finalize:
    f = weakref.finalize(owner, _quiet, fn, *args)
    f.atexit = False
    return f


# ------------------------------------------------------------------ memory
class DeviceBuffer:
    """Owning device allocation of ``nbytes`` bytes.

    With ``stream`` the memory comes from the stream-ordered pool (cudaMallocAsync)
    and is returned to it on that stream, so freeing never waits for the device.
    """

    def __init__(self, nbytes: int, *, stream: Stream | None = None):
        rt = runtime()
        self.nbytes = int(nbytes)
        self.stream = stream
        if self.nbytes <= 0:
            self.ptr = 0
            self._free = None
        elif stream is None:
            self.ptr = int(check(rt.cudaMalloc(self.nbytes), f"cudaMalloc({self.nbytes})"))
            self._free = _finalizer(self, rt.cudaFree, self.ptr)
        else:
            # The finalizer holds the Stream, so the stream outlives the free it is ordered on.
            self.ptr = int(check(rt.cudaMallocAsync(self.nbytes, stream.handle), f"cudaMallocAsync({self.nbytes})"))
            self._free = _finalizer(self, lambda p, s: rt.cudaFreeAsync(p, s.handle), self.ptr, stream)

    def close(self) -> None:
        if self._free is not None:
            self._free()
        self.ptr = 0

    def __enter__(self) -> DeviceBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DeviceBuffer({self.nbytes} bytes at {self.ptr:#x})"


class PinnedBuffer:
    """Owning page-locked host allocation; ``np.asarray(buf)`` or ``buf.array(...)`` views it.

    Views keep the buffer alive (NumPy holds it as the array's base), and a Session
    copies straight from a feed that is such a view, with no staging copy.
    """

    def __init__(self, nbytes: int):
        rt = runtime()
        self.nbytes = int(nbytes)
        n = max(self.nbytes, 1)
        self.ptr = int(check(rt.cudaHostAlloc(n, rt.cudaHostAllocDefault), f"cudaHostAlloc({n})"))
        self._free = _finalizer(self, rt.cudaFreeHost, self.ptr)

    @property
    def __array_interface__(self) -> dict[str, Any]:
        if not self.ptr:
            raise TrtdslError("PinnedBuffer is closed")
        return {"data": (self.ptr, False), "shape": (self.nbytes,), "typestr": "|u1", "version": 3}

    def array(self, shape: tuple[int, ...] | int, dtype: Any = np.uint8) -> np.ndarray:
        """A NumPy view of the first bytes of the buffer."""
        dtype = np.dtype(dtype)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if need > self.nbytes:
            raise TrtdslError(f"PinnedBuffer of {self.nbytes} bytes cannot hold {shape} {dtype} ({need} bytes)")
        return np.asarray(self)[:need].view(dtype).reshape(shape)

    def close(self) -> None:
        self._free()
        self.ptr = 0

    def __enter__(self) -> PinnedBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------ streams
class Stream:
    """A CUDA stream (non-blocking by default, so it never syncs with the legacy default stream).

    ``Stream.wrap(handle)`` wraps a stream owned by someone else (torch, CuPy) without owning it.
    """

    def __init__(self, *, non_blocking: bool = True, _handle: int | None = None):
        rt = runtime()
        if _handle is not None:
            self.handle = int(_handle)
            self._free = None
            return
        flags = rt.cudaStreamNonBlocking if non_blocking else rt.cudaStreamDefault
        self.handle = int(check(rt.cudaStreamCreateWithFlags(flags), "cudaStreamCreateWithFlags"))
        self._free = _finalizer(self, rt.cudaStreamDestroy, self.handle)

    @classmethod
    def wrap(cls, handle: int) -> Stream:
        return cls(_handle=handle)

    def synchronize(self) -> None:
        err = runtime().cudaStreamSynchronize(self.handle)[0]
        if err:
            check((err,), "cudaStreamSynchronize")

    def wait(self, event: Event) -> None:
        """Make later work on this stream wait for ``event``."""
        check(runtime().cudaStreamWaitEvent(self.handle, event.handle, 0), "cudaStreamWaitEvent")

    def wait_stream(self, other: int, event: Event) -> None:
        """Order this stream after everything enqueued so far on stream handle ``other``."""
        if other != self.handle:
            event.record(other)
            self.wait(event)

    def query(self) -> bool:
        """True when all work on the stream has finished."""
        rt = runtime()
        err = rt.cudaStreamQuery(self.handle)[0]
        if err == rt.cudaError_t.cudaErrorNotReady:
            return False
        check((err,), "cudaStreamQuery")
        return True

    def close(self) -> None:
        if self._free is not None:
            self._free()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __int__(self) -> int:
        return self.handle

    def __repr__(self) -> str:
        return f"Stream({self.handle:#x})"


class Event:
    """A CUDA event; ``timing=True`` lets ``elapsed_ms`` measure between two of them."""

    def __init__(self, *, timing: bool = False):
        rt = runtime()
        flags = rt.cudaEventDefault if timing else rt.cudaEventDisableTiming
        self.handle = int(check(rt.cudaEventCreateWithFlags(flags), "cudaEventCreateWithFlags"))
        self._free = _finalizer(self, rt.cudaEventDestroy, self.handle)

    def record(self, stream: Stream | int) -> None:
        handle = stream if isinstance(stream, int) else stream.handle
        err = runtime().cudaEventRecord(self.handle, handle)[0]
        if err:
            check((err,), "cudaEventRecord")

    def synchronize(self) -> None:
        err = runtime().cudaEventSynchronize(self.handle)[0]
        if err:
            check((err,), "cudaEventSynchronize")

    def query(self) -> bool:
        rt = runtime()
        err = rt.cudaEventQuery(self.handle)[0]
        if err == rt.cudaError_t.cudaErrorNotReady:
            return False
        check((err,), "cudaEventQuery")
        return True

    def elapsed_ms(self, start: Event) -> float:
        """Milliseconds from ``start`` to this event (both recorded, both with timing)."""
        return float(check(runtime().cudaEventElapsedTime(start.handle, self.handle), "cudaEventElapsedTime"))

    def close(self) -> None:
        self._free()


class Graph:
    """An instantiated CUDA graph captured from a stream; ``launch(stream)`` replays it."""

    def __init__(self) -> None:
        self.graph = self.exec = None
        self._free: weakref.finalize | None = None

    def launch(self, stream: Stream) -> None:
        if self.exec is None:
            raise TrtdslError("graph was not captured (capture failed or it is closed)")
        err = runtime().cudaGraphLaunch(self.exec, stream.handle)[0]
        if err:
            check((err,), "cudaGraphLaunch")

    def close(self) -> None:
        if self._free is not None:
            self._free()
        self.graph = self.exec = None


def _destroy_graph(graph: Any, exec_: Any) -> None:
    rt = runtime()
    _quiet(rt.cudaGraphExecDestroy, exec_)
    _quiet(rt.cudaGraphDestroy, graph)


@contextlib.contextmanager
def capture(stream: Stream) -> Iterator[Graph]:
    """Capture the work enqueued on ``stream`` inside the block into a ``Graph``.

    Example::

        with cuda.capture(stream) as graph:
            cuda.memcpy_async(dst, src, n, stream)
        graph.launch(stream)
    """
    rt = runtime()
    mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
    check(rt.cudaStreamBeginCapture(stream.handle, mode), "cudaStreamBeginCapture")
    result = Graph()
    try:
        yield result
    except BaseException:
        err, g = rt.cudaStreamEndCapture(stream.handle)
        if not err and g is not None:
            _quiet(rt.cudaGraphDestroy, g)
        raise
    graph = check(rt.cudaStreamEndCapture(stream.handle), "cudaStreamEndCapture")
    try:
        exec_ = check(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
    except CudaError:
        _quiet(rt.cudaGraphDestroy, graph)
        raise
    result.graph, result.exec = graph, exec_
    result._free = _finalizer(result, _destroy_graph, graph, exec_)


__all__ = [
    "CudaError", "DeviceBuffer", "Event", "Graph", "PinnedBuffer", "Stream", "available", "capture", "check",
    "compute_capability", "current_device", "device_count", "device_name", "error_name", "mem_info", "memcpy_async",
    "runtime", "set_device", "synchronize", "use_device",
]  # fmt: skip
