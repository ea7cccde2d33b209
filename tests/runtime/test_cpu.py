"""Runtime pieces that need no GPU: import shims, errors, validation, profile selection, bench parsing."""

from __future__ import annotations

import ctypes
import gc
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import trtdsl
from trtdsl.build import IOSpec, Plan
from trtdsl.errors import BackendError, ProfileError, ShapeError, TrtdslError
from trtdsl.profile import Profile
from trtdsl.runtime import ReferenceSession, Session, bench, cuda, dlpack, session
from trtdsl.runtime.feeds import FeedChecker

from ._runtime_fakes import identity_plan

requires_cuda_python = pytest.mark.skipif(not cuda.available(), reason="cuda-python is not installed")


def test_import_does_not_load_cuda_python():
    code = "import sys, trtdsl, trtdsl.runtime, trtdsl.runtime.cuda; print('cuda.bindings' in sys.modules, 'cuda.cudart' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_missing_cuda_python_names_the_extra(monkeypatch):
    monkeypatch.setattr(cuda, "_rt", None)
    monkeypatch.setattr(cuda, "_MODULES", ("trtdsl_no_such_module.runtime",))
    with pytest.raises(BackendError, match=r"pip install 'trtdsl\[cuda\]'.*ReferenceSession"):
        cuda.DeviceBuffer(16)
    assert not cuda.available()


@requires_cuda_python
def test_runtime_module_layout():
    rt = cuda.runtime()
    assert rt.__name__ in ("cuda.bindings.runtime", "cuda.cudart")
    for name in ("cudaMalloc", "cudaMemcpyAsync", "cudaStreamBeginCapture", "cudaGraphInstantiate", "cudaHostAlloc"):
        assert hasattr(rt, name)


@requires_cuda_python
def test_check_raises_cuda_error_naming_call_and_error():
    rt = cuda.runtime()
    with pytest.raises(cuda.CudaError, match=r"cudaMalloc\(64\) failed: cudaErrorMemoryAllocation \(2\)") as e:
        cuda.check((rt.cudaError_t.cudaErrorMemoryAllocation, None), "cudaMalloc(64)")
    assert e.value.call == "cudaMalloc(64)" and e.value.code == 2 and e.value.error == "cudaErrorMemoryAllocation"
    assert isinstance(e.value, TrtdslError)
    assert cuda.check((rt.cudaError_t.cudaSuccess, 7), "x") == 7
    assert cuda.check((rt.cudaError_t.cudaSuccess,), "x") is None


@requires_cuda_python
def test_real_call_without_device_becomes_cuda_error():
    from ._gpu import gpu_skip_reason

    if gpu_skip_reason() is None:
        pytest.skip("a CUDA device is present: the failure path cannot be provoked")
    with pytest.raises(cuda.CudaError, match=r"cudaMalloc\(1024\) failed: cudaError\w+"):
        cuda.DeviceBuffer(1024)
    with pytest.raises(BackendError, match=r"no usable CUDA device .*cudaGetDeviceCount.*ReferenceSession"):
        session.check_device(0)


@pytest.mark.parametrize(
    ("cc", "ok"), [((8, 0), True), ((8, 6), True), ((8, 9), True), ((12, 0), True), ((12, 1), True),
                   ((9, 0), False), ((7, 5), False), ((10, 0), False), ((8, 7), False)],
)  # fmt: skip
def test_rtx_compute_capabilities(cc, ok):
    assert session.rtx_supports(cc) is ok


def test_unsupported_gpu_message_says_why_and_names_the_alternative():
    msg = session.unsupported_gpu_message("tensorrt_rtx 1.7.1", 0, "NVIDIA H100 80GB HBM3", (9, 0))
    assert "GPU 0 'NVIDIA H100 80GB HBM3' (compute capability 9.0)" in msg
    assert "8.0, 8.6, 8.9, 12.x" in msg
    assert "trtdsl.ReferenceSession(network)" in msg and "trtdsl[trt]" in msg


def test_plan_from_another_flavour_is_refused(trt):
    plan = identity_plan()
    plan.backend = "some_other_tensorrt 9.9"
    with pytest.raises(BackendError, match=r"built with some_other_tensorrt 9.9.*TRTDSL_TENSORRT=some_other_tensorrt"):
        Session(plan)


# ------------------------------------------------------------------ feeds
def test_feed_checker_accepts_and_keys_by_shape():
    fc = FeedChecker(identity_plan())
    x = np.ones((3, 4), np.float32)
    values, key = fc.check({"x": x})
    assert values[0] is x and key == ((3, 4),)
    values, key = fc.check({"x": [[1.0, 2.0, 3.0, 4.0]]})  # lists become arrays; float64 exact in float32
    assert key == ((1, 4),) and values[0].dtype == np.float32
    with pytest.raises(ShapeError, match=r"feed 'x': input has dtype float32, got an array of dtype int64"):
        fc.check({"x": [[1, 2, 3, 4]]})  # the feed rule: no int -> float conversion


@pytest.mark.parametrize(
    ("feeds", "match"),
    [
        ({}, r"missing feed for input\(s\) \['x'\]; the plan's inputs are \['x'\]"),
        ({"x": np.ones((1, 4), np.float32), "z": 1}, r"feed 'z' is not an input of plan 'identity'"),
        ({"xx": np.ones((1, 4), np.float32)}, r"feed 'xx' is not an input.*Did you mean 'x'\?"),
        ({"x": np.ones((1, 4), np.complex64)}, r"feed 'x': input has dtype float32, got an array of dtype complex64"),
    ],
)
def test_feed_checker_errors(feeds, match):
    with pytest.raises(ShapeError, match=match):
        FeedChecker(identity_plan()).check(feeds)


def test_float_feed_for_int_input_is_refused():
    with pytest.raises(ShapeError, match="feed 'x': input has dtype int32, got an array of dtype float32"):
        FeedChecker(identity_plan("int32")).check({"x": np.ones((1, 4), np.float32)})


def test_device_feed_without_handler_is_refused():
    class FakeCuda:
        __cuda_array_interface__ = {}

    with pytest.raises(ShapeError, match="feed 'x' is a device tensor"):
        FeedChecker(identity_plan()).check({"x": FakeCuda()})


@pytest.mark.parametrize(("batch", "profile"), [(1, 0), (8, 0), (9, 1), (64, 1)])
def test_profile_selection(batch, profile):
    assert FeedChecker(identity_plan()).profile(((batch, 4),)) == profile


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (((65, 4),), r"shapes x \(65, 4\) are outside every profile: profile 0: dim 'batch' = 65 is outside 1..8; "
                     r"profile 1: dim 'batch' = 65 is outside 9..64"),
        (((2, 5),), r"input 'x': axis 1 is fixed at 4, got 5"),
        (((2, 4, 1),), r"input 'x': expected rank 2"),
    ],
)  # fmt: skip
def test_profile_errors_name_input_dim_and_range(key, match):
    with pytest.raises(ProfileError, match=match):
        FeedChecker(identity_plan()).profile(key)


def test_bfloat16_plan_accepts_floats_and_bfloat16_arrays():
    torch = pytest.importorskip("torch")
    fc = FeedChecker(identity_plan("bfloat16"))
    assert fc.host_dtype["x"] == np.dtype(ml_dtypes.bfloat16)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32) * 1e3
    (got,), _ = fc.check({"x": x})  # rounded as a cast rounds: torch's bfloat16 conversion
    want = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(got.view(np.uint16), want)
    b = x.astype(ml_dtypes.bfloat16)
    assert fc.check({"x": b})[0][0] is b
    with pytest.raises(ShapeError, match="input has dtype bfloat16, got an array of dtype complex64"):
        fc.check({"x": np.ones((2, 4), np.complex64)})


def test_fp8_io_is_whole_bytes_and_fp4_io_is_refused_with_reason():
    plan = Plan(b"", {"x": IOSpec("x", "fp8", (2,))}, {"y": IOSpec("y", "fp8", (2,))}, [Profile({})])
    fc = FeedChecker(plan)
    assert fc.itemsize["x"] == 1 and fc.host_dtype["y"] == np.dtype(ml_dtypes.float8_e4m3fn)
    (got,), _ = fc.check({"x": np.array([500.0, 0.3], np.float32)})
    assert got.astype(np.float32).tolist() == [448.0, 0.3125]  # saturated, not NaN
    plan = Plan(b"", {"x": IOSpec("x", "fp4", (2,))}, {"y": IOSpec("y", "fp4", (2,))}, [Profile({})])
    with pytest.raises(ShapeError, match="dtype fp4 has no whole-byte element size"):
        FeedChecker(plan)


def test_dlpack_struct_layout_matches_dlpack_h():
    assert ctypes.sizeof(dlpack.DLDevice) == 8 and ctypes.sizeof(dlpack.DLDataType) == 4
    assert ctypes.sizeof(dlpack.DLTensor) == 48 and ctypes.sizeof(dlpack.DLManagedTensor) == 64
    assert dlpack.DLTensor.byte_offset.offset == 40


def test_dlpack_capsule_roundtrip_and_release():
    class Owner:
        pass

    before = dlpack.live_exports()
    owner = Owner()
    cap = dlpack.export(0x1000, (2, 3), None, "float16", 0, owner=owner)
    assert dlpack.live_exports() == before + 1
    ptr, shape, strides, dtype, dev_type, dev_id, imported = dlpack.consume(cap, owner)
    assert (ptr, shape, strides, dtype, dev_type, dev_id) == (0x1000, (2, 3), None, "float16", 2, 0)
    with pytest.raises(TrtdslError, match="not an unconsumed 'dltensor' capsule"):
        dlpack.consume(cap, owner)  # renamed to used_dltensor
    del cap
    gc.collect()
    assert dlpack.live_exports() == before + 1  # the consumer still holds it
    del imported
    gc.collect()
    assert dlpack.live_exports() == before  # deleter ran exactly when the consumer let go


def test_unconsumed_capsule_frees_itself():
    before = dlpack.live_exports()
    cap = dlpack.export(0x2000, (4,), (8,), "float32", 1, owner=object())
    assert dlpack.live_exports() == before + 1
    del cap
    gc.collect()
    assert dlpack.live_exports() == before


def test_dlpack_strides_in_elements():
    cap = dlpack.export(0x3000, (2, 3), (4, 8), "float32", 0, owner=None)  # a transposed float32 view
    _, _, strides, *_ = dlpack.consume(cap, None)
    assert strides == (4, 8)


# ------------------------------------------------------------------ ReferenceSession
@pytest.fixture
def net(trt):
    from trtdsl import ops

    net = trtdsl.Network("ref")
    x = net.input("x", "float32", (trtdsl.Dim("batch", 1, 2, 8), 3))
    net.output(ops.add(ops.mul(x, x), x), "y")
    return net


def test_reference_session_runs_like_a_session(net):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    with ReferenceSession(net) as s:
        assert s.input_names == ["x"] and s.output_names == ["y"]
        np.testing.assert_allclose(s.run({"x": x})["y"], x * x + x)
        h = s.run_async({"x": x + 1}, stream=None)
        assert h.done()
        h.wait()
        np.testing.assert_allclose(h.result()["y"], (x + 1) * (x + 1) + (x + 1))
        assert s.graph({"x": (2, 3)}) is s


def test_reference_session_checks_profiles(net):
    with pytest.raises(ProfileError, match=r"dim 'batch' = 9 is outside 1..8"):
        ReferenceSession(net).run({"x": np.zeros((9, 3), np.float32)})


def test_reference_session_accepts_torch_cpu_tensors(net):
    torch = pytest.importorskip("torch")
    t = torch.arange(3, dtype=torch.float32).reshape(1, 3)
    np.testing.assert_allclose(ReferenceSession(net).run({"x": t})["y"], (t * t + t).numpy())


def test_reference_session_refuses_timing(net):
    with pytest.raises(TrtdslError, match="records no GPU timings"):
        ReferenceSession(net).run_async({"x": np.zeros((1, 3), np.float32)}, timing=True)


def test_session_on_this_machine_names_the_alternative(net):
    """Session(plan) on a machine whose GPU the installed TensorRT cannot run says why and names ReferenceSession."""
    from ._gpu import gpu_skip_reason

    if gpu_skip_reason() is None and session.rtx_supports(cuda.compute_capability(0)):
        pytest.skip("this machine's GPU is supported: nothing to refuse")
    plan = trtdsl.build(net, progress=False)
    with pytest.raises(BackendError, match=r"ReferenceSession"):
        Session(plan)


# ------------------------------------------------------------------ bench
def test_parse_shapes():
    assert bench.parse_shapes("images:1x3x224x224,mask:4") == {"images": (1, 3, 224, 224), "mask": (4,)}
    assert bench.parse_shapes(["a:1x2", "b:3"]) == {"a": (1, 2), "b": (3,)}
    assert bench.parse_shapes("ns:x:2X3") == {"ns:x": (2, 3)}  # names may hold ':'
    assert bench.parse_shapes(None) == {}
    for bad in ("images", "images:1xa", ":1x2", "x:-1"):
        with pytest.raises(TrtdslError, match="must look like name:1x3x224x224"):
            bench.parse_shapes(bad)


def test_stats_percentiles():
    s = bench.stats(list(range(1, 101)))
    assert (s["min"], s["max"], s["mean"], s["median"]) == (1, 100, 50.5, 50.5)
    assert s["p90"] == pytest.approx(90.1) and s["p99"] == pytest.approx(99.01)


def test_report_format_is_trtexec_like():
    s = bench.stats([1.0, 2.0])
    r = bench.BenchReport(
        "m", {"x": (1, 3)}, 2, False, "GPU", 500.0, 0.004, s, {"h2d_ms": s, "compute_ms": s, "d2h_ms": s}
    )
    text = str(r)
    assert "Throughput: 500.000 qps" in text
    assert (
        "Latency: min = 1.00000 ms, max = 2.00000 ms, mean = 1.50000 ms, median = 1.50000 ms, percentile(90%)" in text
    )
    for title in ("H2D Latency", "GPU Compute Time", "D2H Latency", "Total Host Walltime"):
        assert title in text


def test_default_shapes_are_profile_opt():
    assert bench.default_shapes(identity_plan()) == {"x": (4, 4)}


def test_bench_main_rejects_missing_plan(capsys):
    with pytest.raises(SystemExit):
        bench.bench_main(["/nonexistent.plan"])
    assert "no plan file" in capsys.readouterr().err
