"""Runtime benchmark: staged copy bandwidth and host time per call of trtdsl.Session, against raw cuda-python.

No TensorRT engine can run on this project's GPUs (TensorRT-RTX refuses sm_90 and full
TensorRT is not installable here), so the Session wraps a stub engine whose
execute_async_v3 is a no-op. Everything the Session does around that call is real:
feed checks, pinned staging, cudaMemcpyAsync, events, output collection.

1. Bandwidth. A NumPy feed in pageable memory goes through the Session's pinned staging
   (chunked host copy overlapped with the DMA); compared with a raw cudaMemcpyAsync loop
   from/to pinned memory on the same GPU in the same run (goal >= 90%).
2. Host time per call with tiny tensors: Session.run minus the raw floor of the same CUDA
   calls it cannot avoid (H2D copy, D2H copy, event record + synchronize) (goal <= 20 us).

Run: PYTHONPATH=. python3 bench/runtime.py
"""

from __future__ import annotations

import time

import numpy as np

from trtdsl.build import IOSpec, Plan
from trtdsl.profile import Profile
from trtdsl.runtime import Session, bench, cuda

MIB = 1 << 20


class StubContext:
    """The IExecutionContext calls a Session makes, with execute_async_v3 a no-op."""

    def __init__(self, out_shapes):
        self.out_shapes = out_shapes

    def set_optimization_profile_async(self, index, stream):
        return True

    def set_input_shape(self, name, shape):
        return True

    def get_tensor_shape(self, name):
        return self.out_shapes[name]

    def set_tensor_address(self, name, ptr):
        return True

    def execute_async_v3(self, stream):
        return True


class StubEngine:
    def __init__(self, out_shapes):
        self.out_shapes = out_shapes

    def create_execution_context(self):
        return StubContext(self.out_shapes)


def stub_session(x_shape, y_shape, **kw) -> Session:
    plan = Plan(
        engine=b"",
        inputs={"x": IOSpec("x", "float32", tuple(x_shape))},
        outputs={"y": IOSpec("y", "float32", tuple(y_shape))},
        profiles=[Profile({})],
        network="stub",
    )
    return Session.from_engine(StubEngine({"y": tuple(y_shape)}), plan, **kw)


def timeit(fn, n: int, warmup: int = 3) -> float:
    """Mean seconds per call."""
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def bandwidth(nbytes: int, reps: int) -> dict[str, float]:
    rt = cuda.runtime()
    n = nbytes // 4
    stream = cuda.Stream()
    pin = cuda.PinnedBuffer(nbytes)
    dev = cuda.DeviceBuffer(nbytes)
    h2d, d2h = rt.cudaMemcpyKind.cudaMemcpyHostToDevice, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost

    def raw(kind, dst, src):
        def f():
            cuda.check(rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream.handle), "cudaMemcpyAsync")
            stream.synchronize()

        return f

    gbs = lambda sec: nbytes / sec / 1e9  # noqa: E731
    out = {
        "raw_h2d": gbs(timeit(raw(h2d, dev.ptr, pin.ptr), reps)),
        "raw_d2h": gbs(timeit(raw(d2h, pin.ptr, dev.ptr), reps)),
    }
    x = np.random.default_rng(0).standard_normal(n, dtype=np.float32)  # pageable, as users hold data
    s_in = stub_session((n,), (1,))
    out["session_h2d"] = gbs(timeit(lambda: s_in.run({"x": x}), reps))
    xp = pin.array(n, np.float32)
    xp[...] = x
    out["session_h2d_pinned_feed"] = gbs(timeit(lambda: s_in.run({"x": xp}), reps))
    s_out = stub_session((1,), (n,))
    one = np.ones(1, np.float32)
    out["session_d2h"] = gbs(timeit(lambda: s_out.run({"x": one}), reps))
    page = np.zeros(n, np.float32)  # touched once, as a reused output array is
    out["session_d2h_out_pageable"] = gbs(timeit(lambda: s_out.run({"x": one}, out={"y": page}), reps))
    out["session_d2h_out_pinned"] = gbs(timeit(lambda: s_out.run({"x": one}, out={"y": xp}), reps))
    out["host_copy_pageable_to_pinned"] = gbs(timeit(lambda: np.copyto(xp, x), reps))
    out["host_copy_pinned_to_fresh"] = gbs(timeit(lambda: np.copyto(np.empty_like(xp), xp), reps))
    s_in.close()
    s_out.close()
    return out


def host_overhead(iters: int) -> dict[str, float]:
    rt = cuda.runtime()
    kind = rt.cudaMemcpyKind.cudaMemcpyDefault
    stream, done = cuda.Stream(), cuda.Event()
    pin_in, pin_out, d_in, d_out = (
        cuda.PinnedBuffer(64),
        cuda.PinnedBuffer(64),
        cuda.DeviceBuffer(64),
        cuda.DeviceBuffer(64),
    )
    x = np.ones((1, 16), np.float32)
    view_in, view_out = pin_in.array((1, 16), np.float32), pin_out.array((1, 16), np.float32)

    def raw():  # the unavoidable part, hand-written: stage, copy in, copy out, wait, copy result
        np.copyto(view_in, x)
        rt.cudaMemcpyAsync(d_in.ptr, pin_in.ptr, 64, kind, stream.handle)
        rt.cudaMemcpyAsync(pin_out.ptr, d_out.ptr, 64, kind, stream.handle)
        rt.cudaEventRecord(done.handle, stream.handle)
        rt.cudaEventSynchronize(done.handle)
        return view_out.copy()

    s = stub_session((1, 16), (1, 16))
    feeds = {"x": x}
    out = {
        "raw_floor_us": timeit(raw, iters, 100) * 1e6,
        "session_run_us": timeit(lambda: s.run(feeds), iters, 100) * 1e6,
    }
    submit = []
    for _ in range(iters):
        t0 = time.perf_counter()
        h = s.run_async(feeds)
        submit.append(time.perf_counter() - t0)
        h.result()
    out["session_submit_us"] = float(np.median(submit)) * 1e6
    g = s.graph({"x": (1, 16)})
    out["graph_run_us"] = timeit(lambda: g.run(feeds), iters, 100) * 1e6
    out["overhead_us"] = out["session_run_us"] - out["raw_floor_us"]
    return out


def main() -> None:
    cuda.set_device(0)
    name, cc = cuda.device_name(0), cuda.compute_capability(0)
    print(f"GPU: {name} (compute capability {cc[0]}.{cc[1]}); cuda-python module {cuda.runtime().__name__}")
    print("execute_async_v3 is a no-op stub: no TensorRT engine can run on this GPU/machine\n")
    for size in (64 * MIB, 256 * MIB):
        bw = bandwidth(size, reps=20)
        print(f"bandwidth, {size // MIB} MiB float32 tensor (GB/s; % of the raw pinned copy in the same run):")
        rows = [
            ("H2D raw cudaMemcpyAsync from pinned", "raw_h2d", "raw_h2d"),
            ("H2D Session, pageable NumPy feed (staged)", "session_h2d", "raw_h2d"),
            ("H2D Session, feed is a PinnedBuffer view", "session_h2d_pinned_feed", "raw_h2d"),
            ("D2H raw cudaMemcpyAsync to pinned", "raw_d2h", "raw_d2h"),
            ("D2H Session, fresh NumPy output (staged)", "session_d2h", "raw_d2h"),
            ("D2H Session, out= reused NumPy array (staged)", "session_d2h_out_pageable", "raw_d2h"),
            ("D2H Session, out= PinnedBuffer view", "session_d2h_out_pinned", "raw_d2h"),
            ("host only: 1-thread np.copyto pageable -> pinned", "host_copy_pageable_to_pinned", "raw_h2d"),
            ("host only: 1-thread copy pinned -> fresh array", "host_copy_pinned_to_fresh", "raw_d2h"),
        ]
        for label, key, ref in rows:
            print(f"  {label:<50} {bw[key]:7.2f}  ({100 * bw[key] / bw[ref]:5.1f}%)")
    oh = host_overhead(20_000)
    print("\nhost time per call, (1, 16) float32 in and out (us, mean of 20,000 calls):")
    print(f"  raw floor (copyto + H2D + D2H + event sync + copy): {oh['raw_floor_us']:.2f}")
    print(f"  Session.run:                                        {oh['session_run_us']:.2f}")
    print(f"  Session overhead around execute_async_v3:           {oh['overhead_us']:.2f}  (goal <= 20)")
    print(f"  Session.run_async submit only (median):             {oh['session_submit_us']:.2f}")
    print(f"  SessionGraph.run (CUDA graph replay):               {oh['graph_run_us']:.2f}")
    print("\ntrtdsl bench summary with the stub engine (x: 1x3x224x224):")
    s = stub_session((1, 3, 224, 224), (1, 1000))
    print(bench.bench(s.plan, iterations=200, session=s))


if __name__ == "__main__":
    main()
