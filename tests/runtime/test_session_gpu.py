"""Session on a real GPU. Engine-free tests use FakeEngine (see _runtime_fakes.py), whose execute_async_v3
does real device work, so staging, buffers, profiles, streams, device feeds, data-dependent outputs and CUDA
graphs are all exercised; tests that execute a real TensorRT engine skip where the installed flavour cannot."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import _trt
from trtdsl.errors import ProfileError, ShapeError
from trtdsl.runtime import DeviceArray, RunHandle, Session, cuda, session, staging

from ._gpu import gpu_marks
from ._runtime_fakes import FakeEngine, compress_plan, identity_plan

pytestmark = gpu_marks()


def make(plan=None, engine=None, **kw) -> tuple[Session, FakeEngine]:
    engine = engine or FakeEngine()
    return Session.from_engine(engine, plan or identity_plan(), **kw), engine


@pytest.mark.parametrize("batch", [1, 5, 8, 9, 64])
def test_identity_roundtrip(batch, rng):
    s, _ = make()
    x = rng.standard_normal((batch, 4)).astype(np.float32)
    np.testing.assert_array_equal(s.run({"x": x})["y"], x)


def test_outputs_are_fresh_arrays(rng):
    s, _ = make()
    a = s.run({"x": np.ones((2, 4), np.float32)})["y"]
    s.run({"x": np.zeros((2, 4), np.float32)})
    assert (a == 1).all()  # not a view of a reused staging buffer


def test_buffers_grow_only_and_profile_switches(rng):
    s, engine = make()
    for batch, profile in [(2, 0), (8, 0), (3, 0), (40, 1), (9, 1), (1, 0)]:
        x = rng.standard_normal((batch, 4)).astype(np.float32)
        np.testing.assert_array_equal(s.run({"x": x})["y"], x)
        (lane,) = s._lanes.values()
        assert lane.profile == profile
    assert lane.dev["x"].nbytes == 40 * 4 * 4  # grew once to the largest shape, never shrank
    ctx = engine.contexts[0]
    switches = [c[1] for c in ctx.calls if c[0] == "set_optimization_profile_async"]
    assert switches == [1, 0]


def test_same_shapes_skip_setup():
    s, engine = make()
    x = np.ones((3, 4), np.float32)
    s.run({"x": x})
    ctx = engine.contexts[0]
    n = len(ctx.calls)
    for _ in range(5):
        s.run({"x": x})
    assert ctx.calls[n:] == [("execute_async_v3",)] * 5  # no shape, profile or address calls


def test_shape_outside_profiles_never_reaches_tensorrt():
    s, engine = make()
    with pytest.raises(
        ProfileError, match=r"dim 'batch' = 65 is outside 1..8; profile 1: dim 'batch' = 65 is outside 9..64"
    ):
        s.run({"x": np.ones((65, 4), np.float32)})
    assert all(c[0] != "set_input_shape" for ctx in engine.contexts for c in ctx.calls)
    with pytest.raises(ShapeError, match="missing feed"):
        s.run({})


def test_overlapping_requests_on_two_streams(rng):
    s, engine = make(streams=2)
    xs = [rng.standard_normal((8, 4)).astype(np.float32) for _ in range(6)]
    handles = [s.run_async({"x": x}) for x in xs]  # lane reuse completes the earlier request first
    assert all(isinstance(h, RunHandle) for h in handles)
    for h, x in zip(handles, xs):
        h.wait()
        assert h.done()
        np.testing.assert_array_equal(h.result()["y"], x)
    assert len(engine.contexts) == 2  # one execution context per stream


def test_explicit_streams_and_raw_handles(rng):
    s, engine = make()
    a, b = cuda.Stream(), cuda.Stream()
    x1, x2 = (rng.standard_normal((4, 4)).astype(np.float32) for _ in range(2))
    h1 = s.run_async({"x": x1}, stream=a)
    h2 = s.run_async({"x": x2}, stream=b.handle)
    np.testing.assert_array_equal(h2.result()["y"], x2)
    np.testing.assert_array_equal(h1.result()["y"], x1)
    assert len(engine.contexts) == 2


@pytest.mark.parametrize("mib", [5, 48])
def test_large_tensors_use_chunked_staging(mib, rng):
    rows = (mib << 20) // 16
    s, _ = make(identity_plan(profiles=((1, rows, rows),)))
    x = rng.standard_normal((rows, 4)).astype(np.float32)
    assert x.nbytes > staging.CHUNK_BYTES
    np.testing.assert_array_equal(s.run({"x": x})["y"], x)
    xt = np.asfortranarray(x)  # non-contiguous source
    np.testing.assert_array_equal(s.run({"x": xt})["y"], x)


def test_casting_and_pinned_feeds(rng):
    s, _ = make()
    x32 = rng.standard_normal((3, 4)).astype(np.float32)
    # The feed rule: float64 values exact in float32 convert; any value that would change raises.
    np.testing.assert_array_equal(s.run({"x": x32.astype(np.float64)})["y"], x32)
    with pytest.raises(
        ShapeError, match=r"feed 'x': input has dtype float32, got an array of dtype float64.*not exact"
    ):
        s.run({"x": x32.astype(np.float64) + 1e-12})
    pin = cuda.PinnedBuffer(64)
    xp = pin.array((3, 4), np.float32)
    xp[...] = 7
    np.testing.assert_array_equal(s.run({"x": xp})["y"], np.full((3, 4), 7, np.float32))


@pytest.mark.parametrize("rows", [8, 3 << 20])
def test_out_arrays_are_filled_in_place(rows, rng):
    s, _ = make(identity_plan(profiles=((1, rows, rows),)))
    x = rng.standard_normal((rows, 4)).astype(np.float32)
    pinned = cuda.PinnedBuffer(x.nbytes).array(x.shape, np.float32)
    pageable = np.empty_like(x)
    for dest in (pinned, pageable):
        y = s.run({"x": x}, out={"y": dest})["y"]
        assert y is dest
        np.testing.assert_array_equal(dest, x)
    with pytest.raises(ShapeError, match=r"out 'y': expected a C-contiguous float32 array of shape"):
        s.run({"x": x}, out={"y": np.empty((rows, 5), np.float32)})
    with pytest.raises(ShapeError, match=r"out 'z' is not an output of the plan; outputs are \['y'\]"):
        s.run({"x": x}, out={"z": pageable})


def test_bfloat16_io_rounds_like_torch(rng):
    torch = pytest.importorskip("torch")
    s, _ = make(identity_plan("bfloat16"), FakeEngine(itemsize=2))
    x = rng.standard_normal((5, 4)).astype(np.float32)
    want = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(s.run({"x": x})["y"], want)


def test_device_feeds_in_place_and_device_outputs(rng):
    torch = pytest.importorskip("torch")
    s, engine = make()
    t = torch.randn(6, 4, device="cuda")
    out = s.run({"x": t}, outputs="device")["y"]
    assert isinstance(out, DeviceArray)
    assert engine.contexts[0].addresses["x"] == t.data_ptr()  # used in place, no copy
    assert torch.equal(torch.from_dlpack(out), t)
    out2 = s.run({"x": DeviceArray.from_object(t * 3)}, outputs="device")["y"]
    assert out2.ptr != out.ptr and torch.equal(torch.from_dlpack(out), t)  # earlier outputs stay valid
    with pytest.raises(ShapeError, match="expected dtype float32, got float16"):
        s.run({"x": t.half()})
    with pytest.raises(ShapeError, match="contiguous"):
        s.run({"x": torch.randn(4, 6, device="cuda").t()})


def test_torch_stream_order_is_respected():
    """A tensor still being written on torch's current stream is read only after that write."""
    torch = pytest.importorskip("torch")
    s, _ = make()
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        t = torch.ones(8, 4, device="cuda")
        torch.cuda._sleep(50_000_000)  # keeps the side stream busy for tens of milliseconds
        t.mul_(5)
        y = s.run({"x": t})["y"]
    np.testing.assert_array_equal(y, np.full((8, 4), 5, np.float32))


def test_data_dependent_output_through_the_allocator(rng):
    s, _ = make(compress_plan(), FakeEngine(sources={"pos": "x"}, compress=True))
    for n in (16, 1000, 7):
        x = rng.standard_normal(n).astype(np.float32)
        np.testing.assert_array_equal(s.run({"x": x})["pos"], x[x > 0])
    x = rng.standard_normal(50).astype(np.float32)
    dev = s.run({"x": x}, outputs="device")["pos"]
    np.testing.assert_array_equal(dev.numpy(), x[x > 0])


def test_timings_split(rng):
    s, _ = make()
    h = s.run_async({"x": rng.standard_normal((8, 4)).astype(np.float32)}, timing=True)
    t = h.timings
    assert set(t) == {"h2d_ms", "compute_ms", "d2h_ms"} and all(v >= 0 for v in t.values())


def test_cuda_graph_replays(rng):
    s, engine = make()
    g = s.graph({"x": (8, 4)})
    for _ in range(3):
        x = rng.standard_normal((8, 4)).astype(np.float32)
        np.testing.assert_array_equal(g.run({"x": x})["y"], x)
    g.inputs["x"][...] = 2.5
    np.testing.assert_array_equal(g.replay().result()["y"], np.full((8, 4), 2.5, np.float32))
    with pytest.raises(ShapeError, match=r"captured for input 'x' with shape \(8, 4\), got \(4, 4\)"):
        g.run({"x": np.ones((4, 4), np.float32)})
    with pytest.raises(ProfileError, match="outside every profile"):
        s.graph({"x": (100, 4)})
    ctx = engine.contexts[-1]
    assert sum(c == ("execute_async_v3",) for c in ctx.calls) == 2  # warm-up + capture, replays bypass Python
    g.close()


def test_session_close_frees_memory():
    cuda.synchronize()
    free0, _ = cuda.mem_info()
    for _ in range(20):
        s, _ = make(identity_plan(profiles=((1, 1 << 16, 1 << 16),)))
        s.run({"x": np.ones((1 << 16, 4), np.float32)})
        s.close()
    cuda.synchronize()
    assert free0 - cuda.mem_info()[0] <= 4 << 20


# ------------------------------------------------------------------ real TensorRT engines
def _engine_skip_reason() -> str | None:
    if not _trt.available():
        return "TensorRT is not installed on this machine: no engine can be built or run"
    if _trt.is_rtx():
        cc = cuda.compute_capability(0)
        if not session.rtx_supports(cc):
            return session.unsupported_gpu_message("tensorrt_rtx", 0, cuda.device_name(0), cc)
    return None


@pytest.fixture
def mlp_plan():
    reason = _engine_skip_reason()
    if reason:
        pytest.skip(reason)
    from trtdsl import ops

    net = trtdsl.Network("mlp")
    x = net.input("x", "float32", (trtdsl.Dim("batch", 1, 4, 16), 8))
    net.output(ops.maximum(ops.mul(x, 2.0), 0.0), "y")
    return net, trtdsl.build(net, progress=False, tf32=False)


def test_engine_matches_numpy_and_reference(mlp_plan, rng):
    net, plan = mlp_plan
    with Session(plan) as s:
        for batch in (1, 4, 16):
            x = rng.standard_normal((batch, 8)).astype(np.float32)
            y = s.run({"x": x})["y"]
            np.testing.assert_allclose(y, np.maximum(2 * x, 0), rtol=1e-6)
            np.testing.assert_allclose(y, trtdsl.ReferenceSession(net).run({"x": x})["y"], rtol=1e-6)


def test_engine_graph_and_async(mlp_plan, rng):
    _, plan = mlp_plan
    with Session(plan, streams=2) as s:
        xs = [rng.standard_normal((4, 8)).astype(np.float32) for _ in range(4)]
        for h, x in zip([s.run_async({"x": x}) for x in xs], xs):
            np.testing.assert_allclose(h.result()["y"], np.maximum(2 * x, 0), rtol=1e-6)
        g = s.graph({"x": (4, 8)})
        np.testing.assert_allclose(g.run({"x": xs[0]})["y"], np.maximum(2 * xs[0], 0), rtol=1e-6)


def test_unsupported_gpu_is_refused_with_reason(trt):
    if not _trt.is_rtx() or session.rtx_supports(cuda.compute_capability(0)):
        pytest.skip("the installed TensorRT supports this GPU")
    plan = identity_plan()
    plan.backend = f"tensorrt_rtx {trt.__version__}"
    with pytest.raises(
        trtdsl.BackendError, match=r"compute capability \d+\.\d+\): TensorRT-RTX supports .*ReferenceSession"
    ):
        Session(plan)
