"""``SessionGraph``: one fixed set of shapes captured into a CUDA graph and replayed.

A replay launches the host-to-device copies, ``execute_async_v3`` and the
device-to-host copies with one ``cudaGraphLaunch``, which removes TensorRT's
per-kernel launch cost for small networks. Addresses are baked into the graph,
so inputs and outputs live in the graph's own pinned buffers: ``run(feeds)``
copies NumPy feeds into them, or write ``graph.inputs[name]`` in place and call
``replay()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import ShapeError, TrtdslError
from . import cuda, staging
from .lane import Lane, RunHandle, log_mark, trt_errors


class SessionGraph:
    """Created by ``session.graph(shapes)``.

    Example::

        g = session.graph({"x": (8, 784)})
        for batch in batches:
            logits = g.run({"x": batch})["logits"]
    """

    def __init__(self, session: Any, shapes: Mapping[str, Any], *, stream: cuda.Stream | None = None):
        self.session = session
        self.shapes = {n: tuple(int(d) for d in s) for n, s in shapes.items()}
        self.stream = stream or cuda.Stream()
        session.plan.select_profile(self.shapes)  # names every missing or unknown input before any setup
        lane = self._lane = Lane(session, self.stream)  # its own context: session lanes keep running
        key = tuple(self.shapes.get(n, ()) for n in session.input_names)
        lane.reshape(self.shapes, key)  # ProfileError names input, dim and range
        if lane.dds:
            raise TrtdslError(
                f"output(s) {sorted(lane.dds)} have data-dependent shapes, which a CUDA graph cannot capture; "
                "use session.run for this plan"
            )
        self.inputs: dict[str, np.ndarray] = {}
        self.outputs: dict[str, np.ndarray] = {}
        self._copies_in: list[tuple[int, int, int]] = []
        self._copies_out: list[tuple[int, int, int]] = []
        for name in session.input_names:
            dev = lane.device(name)
            lane.bind(name, dev.ptr)
            view, ptr = lane.view(name, self.shapes[name])
            self.inputs[name] = view
            self._copies_in.append((dev.ptr, ptr, view.nbytes))
        for name in session.output_names:
            dev = lane.device(name)
            lane.bind(name, dev.ptr)
            view, ptr = lane.view(name, lane.out_shapes[name])
            self.outputs[name] = view
            self._copies_out.append((ptr, dev.ptr, view.nbytes))
        # TensorRT may finish shape-dependent setup on the first enqueue after a shape
        # change, and that work must not be captured: run once plainly first.
        self._enqueue()
        self.stream.synchronize()
        with cuda.capture(self.stream) as graph:
            self._enqueue()
        self._graph = graph

    def _enqueue(self) -> None:
        for dst, src, n in self._copies_in:
            cuda.memcpy_async(dst, src, n, self.stream)
        mark = log_mark()
        if not self._lane.ctx.execute_async_v3(self.stream.handle):
            raise TrtdslError("execute_async_v3 failed while preparing the CUDA graph." + trt_errors(mark))
        for dst, src, n in self._copies_out:
            cuda.memcpy_async(dst, src, n, self.stream)

    def replay(self) -> RunHandle:
        """Launch the graph on the current contents of ``self.inputs``."""
        lane = self._lane
        if lane.pending is not None:
            lane.pending._finish()
        self._graph.launch(self.stream)
        lane.done.record(self.stream)
        dt = self.session.dtype
        lane.pending = RunHandle(lane, {n: (v, None, dt[n]) for n, v in self.outputs.items()}, False)
        return lane.pending

    def run_async(self, feeds: Mapping[str, Any]) -> RunHandle:
        """Copy NumPy ``feeds`` (exactly the captured shapes) into the graph's inputs and launch it."""
        lane = self._lane
        if lane.pending is not None:
            lane.pending._finish()  # its outputs are copied out before the buffers are reused
        for name in feeds:
            if name not in self.inputs:
                raise ShapeError(f"feed {name!r} is not an input of the plan; inputs are {list(self.inputs)}")
        for name, view in self.inputs.items():
            if name not in feeds:
                raise ShapeError(f"missing feed for input {name!r}")
            value = dtypes.convert(feeds[name], self.session.dtype[name], name=f"feed {name!r}")  # the feed rule
            if value.shape != view.shape:
                raise ShapeError(
                    f"graph was captured for input {name!r} with shape {view.shape}, got {value.shape}; "
                    "capture another with session.graph(...)"
                )
            staging.fill(view, value, self.session.dtype[name])
        return self.replay()

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return self.run_async(feeds).result()

    def close(self) -> None:
        self._graph.close()
        self._lane.close()
