"""Stand-ins for a deserialized TensorRT engine, so every Session code path runs on a GPU without TensorRT.

FakeEngine's context implements the part of IExecutionContext a Session calls.
Its ``execute_async_v3`` does real device work on the given stream: each output
is a device-to-device copy of the input named in ``sources`` (an identity
network), or, for ``compress=True``, the positive elements of the input, handed
out through the Session's IOutputAllocator the way TensorRT does for
data-dependent shapes. The context records every call, so tests can check what
reached "TensorRT".
"""

from __future__ import annotations

import numpy as np

from trtdsl.build import IOSpec, Plan
from trtdsl.profile import Profile
from trtdsl.runtime import cuda


def identity_plan(dtype="float32", *, profiles=((1, 4, 8), (9, 32, 64)), width=4, names=("x", "y")) -> Plan:
    """Input x ("batch", width) -> output y of the same shape and dtype; one profile per batch range."""
    x, y = names
    return Plan(
        engine=b"",
        inputs={x: IOSpec(x, dtype, ("batch", width))},
        outputs={y: IOSpec(y, dtype, ("batch", width))},
        profiles=[Profile({"batch": r}) for r in profiles],
        network="identity",
    )


def compress_plan() -> Plan:
    return Plan(
        engine=b"",
        inputs={"x": IOSpec("x", "float32", ("n",))},
        outputs={"pos": IOSpec("pos", "float32", (-1,))},
        profiles=[Profile({"n": (1, 16, 1024)})],
        network="compress",
    )


class FakeContext:
    def __init__(self, engine):
        self.engine = engine
        self.shapes, self.addresses, self.allocators = {}, {}, {}
        self.calls = []  # (method, args) in order
        self.profile = 0

    def set_optimization_profile_async(self, index, stream):
        self.calls.append(("set_optimization_profile_async", index))
        self.profile = index
        return True

    def set_input_shape(self, name, shape):
        self.calls.append(("set_input_shape", name, tuple(shape)))
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        if self.engine.compress:
            return (-1,)
        return self.shapes[self.engine.sources[name]]

    def set_tensor_address(self, name, ptr):
        self.calls.append(("set_tensor_address", name))
        self.addresses[name] = ptr
        return True

    def set_output_allocator(self, name, allocator):
        self.allocators[name] = allocator
        return True

    def execute_async_v3(self, stream):
        self.calls.append(("execute_async_v3",))
        rt = cuda.runtime()
        kind = rt.cudaMemcpyKind.cudaMemcpyDefault
        for out, src in self.engine.sources.items():
            n = int(np.prod(self.shapes[src])) * self.engine.itemsize
            if not self.engine.compress:
                cuda.check(rt.cudaMemcpyAsync(self.addresses[out], self.addresses[src], n, kind, stream), "copy")
                continue
            # Like TensorRT with a data-dependent output: learn the size, then ask the allocator.
            host = np.empty(self.shapes[src], np.float32)
            cuda.check(rt.cudaMemcpyAsync(host.ctypes.data, self.addresses[src], n, kind, stream), "copy")
            cuda.check(rt.cudaStreamSynchronize(stream), "sync")
            pos = np.ascontiguousarray(host[host > 0])
            alloc = self.allocators[out]
            ptr = alloc.reallocate_output_async(out, 0, pos.nbytes, 256, stream)
            if not ptr:
                return False
            cuda.check(rt.cudaMemcpy(ptr, pos.ctypes.data, pos.nbytes, kind), "copy")
            alloc.notify_shape(out, pos.shape)
        return True


class FakeEngine:
    def __init__(self, sources=None, itemsize=4, compress=False):
        self.sources = sources or {"y": "x"}
        self.itemsize = itemsize
        self.compress = compress
        self.contexts = []

    def create_execution_context(self):
        ctx = FakeContext(self)
        self.contexts.append(ctx)
        return ctx
