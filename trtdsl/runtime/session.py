"""``Session``: run a Plan with cuda-python and TensorRT's ``execute_async_v3``.

Each stream gets a *lane*: one ``IExecutionContext``, grow-only device and pinned
buffers per I/O tensor, and the shapes it was last set up for. A call whose
shapes equal the lane's last ones skips profile selection, ``set_input_shape``
and ``set_tensor_address`` entirely, which is what keeps the host time per call
small. A lane runs one request at a time: submitting to a busy lane first
completes its previous request (its outputs are copied out for its handle), so
staging buffers are never overwritten while in flight.

Example::

    with trtdsl.Session("model.plan", streams=2) as session:
        h1 = session.run_async({"images": batch1})
        h2 = session.run_async({"images": batch2})   # second stream: overlaps h1
        logits = h1.result()["logits"]
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _trt
from ..errors import BackendError, ShapeError, TrtdslError
from ..plan import Plan
from . import cuda, staging
from .array import DeviceArray
from .feeds import FeedChecker
from .lane import Lane, RunHandle, log_mark, trt_errors

# Compute capabilities whose engines TensorRT-RTX can deserialize and run.
RTX_COMPUTE_CAPABILITIES = ("8.0", "8.6", "8.9", "12.x")


def rtx_supports(cc: tuple[int, int]) -> bool:
    return cc in ((8, 0), (8, 6), (8, 9)) or cc[0] == 12


def unsupported_gpu_message(flavour: str, device: int, name: str, cc: tuple[int, int]) -> str:
    return (
        f"{flavour} cannot run engines on GPU {device} '{name}' (compute capability {cc[0]}.{cc[1]}): "
        f"TensorRT-RTX supports compute capability {', '.join(RTX_COMPUTE_CAPABILITIES)} only. "
        "Run the plan with full TensorRT on this GPU (pip install 'trtdsl[trt]' from NVIDIA's index), "
        "or run the network on the CPU with trtdsl.ReferenceSession(network)."
    )


def check_device(device: int) -> int:
    """Raise BackendError unless cuda-python works and ``device`` exists; returns the device count."""
    cuda.runtime()
    try:
        n = cuda.device_count()
    except cuda.CudaError as e:
        raise BackendError(
            f"no usable CUDA device ({e}). Use trtdsl.ReferenceSession(network) to run the network on the CPU."
        ) from e
    if n == 0:
        raise BackendError("no CUDA device found. Use trtdsl.ReferenceSession(network) to run the network on the CPU.")
    if not 0 <= device < n:
        raise BackendError(f"device {device} does not exist: this machine has {n} CUDA device(s), 0..{n - 1}")
    return n


class Session:
    """Run a ``Plan`` on GPU ``device`` with ``streams`` streams used round-robin by ``run_async``.

    Feeds are NumPy arrays (staged through pinned buffers) or device arrays
    (DeviceArray, torch/CuPy CUDA tensors: used in place). Shapes are checked
    against the plan's profiles before TensorRT sees them and the profile is
    picked automatically. Not thread-safe per stream: give each thread its own stream.

    Example::

        session = trtdsl.Session(plan)
        out = session.run({"x": np.ones((4, 784), np.float32)})["logits"]
    """

    def __init__(self, plan: Plan | str | os.PathLike, *, device: int = 0, streams: int = 1):
        plan = plan if isinstance(plan, Plan) else Plan.load(plan)
        trt = _trt.load()
        flavour = f"{_trt.name()} {trt.__version__}"
        built_with = plan.backend.split(" ")[0] if plan.backend else ""
        if built_with and built_with != _trt.name():
            raise BackendError(
                f"plan {plan.network!r} was built with {plan.backend}, but this process uses {flavour}: an engine "
                f"only loads in the TensorRT flavour and version that built it (set TRTDSL_TENSORRT={built_with})"
            )
        check_device(device)
        cuda.set_device(device)
        if _trt.is_rtx():
            cc = cuda.compute_capability(device)
            if not rtx_supports(cc):
                raise BackendError(unsupported_gpu_message(flavour, device, cuda.device_name(device), cc))
        mark = log_mark()
        self._runtime = trt.Runtime(_trt.logger())
        engine = self._runtime.deserialize_cuda_engine(plan.engine)
        if engine is None:
            raise BackendError(
                f"{flavour} could not deserialize plan {plan.network!r} (built with {plan.backend or 'unknown'})."
                + trt_errors(mark)
            )
        self._setup(plan, engine, device, streams)

    @classmethod
    def from_engine(cls, engine: Any, plan: Plan, *, device: int = 0, streams: int = 1) -> Session:
        """A Session over an already deserialized ``ICudaEngine`` (or an object with its API) and its Plan metadata."""
        check_device(device)
        self = cls.__new__(cls)
        self._runtime = None
        self._setup(plan, engine, device, streams)
        return self

    def _setup(self, plan: Plan, engine: Any, device: int, streams: int) -> None:
        if streams < 1:
            raise TrtdslError(f"streams must be >= 1, got {streams}")
        self.plan, self.engine, self.device = plan, engine, device
        self.input_names = list(plan.inputs)
        self.output_names = list(plan.outputs)
        self.feeds = FeedChecker(plan)
        self.dtype, self.itemsize, self.host_dtype = self.feeds.dtype, self.feeds.itemsize, self.feeds.host_dtype
        self._switch_device = cuda.device_count() > 1
        cuda.set_device(device)
        self._own = [cuda.Stream() for _ in range(streams)]
        self._lanes: dict[int, Lane] = {}
        self._next = itertools.cycle(self._own)
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ run
    def run(
        self, feeds: Mapping[str, Any], *, outputs: str = "host", out: Mapping[str, np.ndarray] | None = None
    ) -> dict[str, Any]:
        """Run synchronously; outputs by name as NumPy arrays (or DeviceArrays with ``outputs="device"``)."""
        return self.run_async(feeds, outputs=outputs, out=out).result()

    def run_async(
        self, feeds: Mapping[str, Any], *, stream: cuda.Stream | int | None = None, outputs: str = "host",
        out: Mapping[str, np.ndarray] | None = None, timing: bool = False,
    ) -> RunHandle:  # fmt: skip
        """Enqueue copy-in, execution and copy-out on ``stream`` (default: the session's streams in turn).

        ``stream`` may be a ``cuda.Stream`` or a raw handle (``torch.cuda.current_stream().cuda_stream``).
        ``out`` gives C-contiguous host arrays to fill instead of fresh ones: a view of a
        ``cuda.PinnedBuffer`` is written by the DMA directly, skipping staging entirely.
        ``timing=True`` records events so ``handle.timings`` splits the GPU time.
        """
        if outputs not in ("host", "device"):
            raise TrtdslError(f"outputs must be 'host' or 'device', got {outputs!r}")
        if self._closed:
            raise TrtdslError("Session is closed")
        if out:
            unknown = [n for n in out if n not in self.plan.outputs]
            if unknown or outputs == "device":
                raise ShapeError(
                    f"out {unknown[0]!r} is not an output of the plan; outputs are {self.output_names}"
                    if unknown
                    else "out= fills host arrays; it cannot be combined with outputs='device'"
                )
        if self._switch_device:
            cuda.set_device(self.device)
        lane = self._lane(stream)
        if lane.pending is not None:
            lane.pending._finish()
        values, key = self.feeds.check(feeds, lambda name, v: self._device_feed(name, v, lane))
        if key != lane.key:
            lane.reshape(dict(zip(self.input_names, key, strict=True)), key)
        s = lane.stream
        if timing:
            if lane.timers is None:
                lane.timers = [cuda.Event(timing=True) for _ in range(4)]
            lane.timers[0].record(s)
        for name, value, shape in zip(self.input_names, values, key, strict=True):
            if isinstance(value, DeviceArray):
                lane.bind(name, value.ptr)
                continue
            dst = lane.device(name).ptr
            lane.bind(name, dst)
            pinned = _pinned_address(value, self.host_dtype[name])
            if pinned:
                cuda.memcpy_async(dst, pinned, value.nbytes, s)
            else:
                view, ptr = lane.view(name, shape)
                staging.stage_in(value, view, ptr, dst, dtype=self.dtype[name], stream=s)
        fresh = outputs == "device"
        taken: dict[str, cuda.DeviceBuffer] = {}
        for name in self.output_names:
            if name in lane.dds:
                continue
            if fresh:
                buf = taken[name] = cuda.DeviceBuffer(max(lane.nbytes[name], 256), stream=s)
                lane.bind(name, buf.ptr)
            else:
                lane.bind(name, lane.dev[name].ptr)
        if lane.allocator is not None:
            lane.allocator.fresh = fresh
            lane.allocator.taken = {}
        if timing:
            lane.timers[1].record(s)
        mark = log_mark()
        if not lane.ctx.execute_async_v3(s.handle):
            raise TrtdslError(f"execute_async_v3 failed for plan {self.plan.network!r}." + trt_errors(mark))
        if lane.allocator is not None and lane.allocator.error is not None:
            err, lane.allocator.error = lane.allocator.error, None
            raise TrtdslError(f"output allocation failed: {err}") from err
        if timing:
            lane.timers[2].record(s)
        results = self._outputs(lane, fresh, taken, out)
        if timing:
            lane.timers[3].record(s)
        lane.done.record(s)
        lane.pending = RunHandle(lane, results, timing)
        return lane.pending

    def _outputs(self, lane: Lane, fresh: bool, taken: dict[str, cuda.DeviceBuffer], out: Any) -> dict[str, Any]:
        results: dict[str, Any] = {}
        alloc = lane.allocator
        nchunk = 0
        for name in self.output_names:
            if name in lane.dds:
                shape = alloc.shapes.get(name)
                if shape is None:
                    raise TrtdslError(f"TensorRT did not report the shape of data-dependent output {name!r}")
                src = (alloc.taken if fresh else alloc.buffers)[name]
            else:
                shape, src = lane.out_shapes[name], taken.get(name) or lane.dev[name]
            if fresh:
                results[name] = DeviceArray(src.ptr, shape, self.dtype[name], device=self.device, owner=src)
                continue
            dest = out.get(name) if out else None
            if dest is not None:
                self._check_out(name, dest, shape)
                direct = _pinned_address(dest, self.host_dtype[name])
                if direct:
                    cuda.memcpy_async(direct, src.ptr, dest.nbytes, lane.stream)
                    results[name] = dest
                    continue
            view, ptr = lane.view(name, shape)
            events = lambda i, base=nchunk: lane.chunk_event(base + i)  # noqa: E731
            chunks = staging.stage_out(src.ptr, ptr, view.nbytes, item=view.itemsize, stream=lane.stream, events=events)
            nchunk += len(chunks.parts) if chunks else 0
            results[name] = (view, chunks, self.dtype[name], dest)
        return results

    def _check_out(self, name: str, dest: Any, shape: tuple[int, ...]) -> None:
        want = self.host_dtype[name]
        if not isinstance(dest, np.ndarray) or dest.shape != shape or dest.dtype != want or not dest.flags.c_contiguous:
            got = f"{dest.dtype} {dest.shape}" if isinstance(dest, np.ndarray) else type(dest).__name__
            raise ShapeError(f"out {name!r}: expected a C-contiguous {want} array of shape {shape}, got {got}")

    def _device_feed(self, name: str, v: Any, lane: Lane) -> DeviceArray:
        arr = DeviceArray.from_object(v, stream=lane.stream.handle)
        if arr.dtype != self.dtype[name]:
            raise ShapeError(f"device feed {name!r}: expected dtype {self.dtype[name]}, got {arr.dtype}")
        if not arr.is_contiguous:
            raise ShapeError(f"device feed {name!r} has strides {arr.strides}; TensorRT needs a contiguous tensor")
        if arr.device != self.device:
            raise ShapeError(f"device feed {name!r} is on GPU {arr.device}, the session runs on GPU {self.device}")
        if arr.stream is not None:
            lane.stream.wait_stream(int(arr.stream), lane.sync)
        return arr

    def _lane(self, stream: cuda.Stream | int | None) -> Lane:
        if stream is None:
            stream = next(self._next)
        handle = stream if isinstance(stream, int) else stream.handle
        lane = self._lanes.get(handle)
        if lane is None:
            with self._lock:
                lane = self._lanes.get(handle)
                if lane is None:
                    lane = self._lanes[handle] = Lane(
                        self, stream if isinstance(stream, cuda.Stream) else cuda.Stream.wrap(handle)
                    )
        return lane

    # ---------------------------------------------------------------- graphs
    def graph(self, shapes: Mapping[str, Any], *, stream: cuda.Stream | None = None) -> Any:
        """Capture copy-in, execution and copy-out for fixed ``shapes`` into a CUDA graph (see SessionGraph)."""
        from .graph import SessionGraph

        return SessionGraph(self, shapes, stream=stream)

    def close(self) -> None:
        """Finish pending requests and free every buffer and context now."""
        if self._closed:
            return
        for lane in self._lanes.values():
            lane.close()
        self._lanes.clear()
        self._closed = True

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pinned_address(a: np.ndarray, want: np.dtype) -> int:
    """Address of ``a`` when it is a contiguous view of a PinnedBuffer of the right dtype, else 0."""
    base = a.base
    for _ in range(3):
        if base is None or isinstance(base, cuda.PinnedBuffer):
            break
        base = getattr(base, "base", None)
    if isinstance(base, cuda.PinnedBuffer) and a.dtype == want and a.flags.c_contiguous:
        return a.ctypes.data
    return 0
