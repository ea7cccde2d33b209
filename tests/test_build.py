"""trtdsl.build on the CPU with tensorrt_rtx: plans, profiles, options, save/load."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import BuildError, ProfileError, TrtdslError, ops
from trtdsl.build import Plan

pytestmark = pytest.mark.usefixtures("trt")


def _net(dynamic: bool = True) -> trtdsl.Network:
    net = trtdsl.Network("mlp")
    if dynamic:
        net.dim("batch", 1, 4, 8)
    x = net.input("x", "float32", ("batch" if dynamic else 2, 16))
    with net.scope("fc"):
        y = ops.exp(x) * np.float32(0.5)
    net.output(y, "y")
    return net


def test_build_dynamic_plan_with_two_profiles(tmp_path):
    net = _net()
    net.add_profile(batch=(16, 32, 64))
    plan = trtdsl.build(net, optimization_level=1, progress=False)
    assert len(plan.engine) > 1000
    assert plan.inputs["x"].shape == ("batch", 16) and plan.inputs["x"].dtype == "float32"
    assert plan.outputs["y"].shape == ("batch", 16)
    assert [p.ranges for p in plan.profiles] == [{"batch": (1, 4, 8)}, {"batch": (16, 32, 64)}]
    assert plan.backend.startswith("tensorrt_rtx")
    path = plan.save(tmp_path / "mlp.plan")
    loaded = Plan.load(path)
    assert loaded.engine == plan.engine and loaded.inputs == plan.inputs and loaded.profiles == plan.profiles
    assert loaded.select_profile({"x": (32, 16)}) == 1
    with pytest.raises(ProfileError, match=r"dim 'batch' = 9 is outside 1..8"):
        loaded.select_profile({"x": (9, 16)})
    text = loaded.summary()
    assert "x: float32 (batch, 16)" in text and "profile 1: batch 16..32..64" in text


def test_static_plan_and_options(tmp_path):
    cache = tmp_path / "timing.cache"
    plan = trtdsl.build(_net(dynamic=False), workspace=64 << 20, timing_cache=cache, tf32=False, progress=False)
    assert cache.stat().st_size > 0  # written back after the build
    assert plan.options["tf32"] is False and plan.options["memory_pools"] == {"WORKSPACE": 64 << 20}
    assert [p.ranges for p in plan.profiles] == [{}]
    again = trtdsl.build(_net(dynamic=False), timing_cache=cache, optimization_level=0, progress=False)
    assert again.options["optimization_level"] == 0


@pytest.mark.parametrize("opts", [{"refit": True}, {"refit": True, "strip_plan": True}])
def test_refit_builds_explain_they_need_a_gpu(opts):
    # tensorrt_rtx sets the REFIT/STRIP_PLAN flags but its CPU-only build then
    # fails in Myelin's JIT; the error must say why and what to do.
    from trtdsl import _trt

    if not _trt.is_rtx():
        pytest.skip("measured behaviour of tensorrt_rtx on a CPU-only machine")
    try:
        plan = trtdsl.build(_net(), progress=False, **opts)
    except BuildError as e:
        assert "refittable (refit/strip_plan) builds need a CUDA GPU" in str(e)
    else:  # a machine with a supported GPU builds it
        assert plan.options["refit"] is True


def test_progress_bar_reports_build_phases(capsys):
    trtdsl.build(_net(), progress=True)
    err = capsys.readouterr().err
    assert "Building engine" in err


def test_build_errors():
    net = trtdsl.Network("empty")
    net.input("x", "float32", (1,))
    with pytest.raises(BuildError, match="network 'empty' has no outputs; mark one with net.output"):
        trtdsl.build(net)
    with pytest.raises(BuildError, match="optimization_level must be 0..5, got 7"):
        trtdsl.build(_net(), optimization_level=7)
    with pytest.raises(BuildError, match="unknown memory pool 'WORKSPAC'"):
        trtdsl.build(_net(), memory_pools={"WORKSPAC": 1})
    net = trtdsl.Network("nodim")
    x = net.input("x", "float32", ("batch", 2))
    net.output(ops.exp(x), "y")
    with pytest.raises(ProfileError, match="dim 'batch' .* has no range"):
        trtdsl.build(net)


def test_plan_load_errors(tmp_path):
    with pytest.raises(TrtdslError, match="no plan file"):
        Plan.load(tmp_path / "missing.plan")
    (tmp_path / "raw.plan").write_bytes(b"engine")
    with pytest.raises(TrtdslError, match="has no metadata file 'raw.plan.json'"):
        Plan.load(tmp_path / "raw.plan")
    (tmp_path / "raw.plan.json").write_text("{}")
    with pytest.raises(TrtdslError, match="metadata .* is malformed"):
        Plan.load(tmp_path / "raw.plan")


def test_build_fails_on_weights_nothing_used(tmp_path):
    np.savez(tmp_path / "w.npz", used=np.ones((2, 16), np.float32), leftover=np.zeros(3, np.float32))
    w = trtdsl.weights.load(tmp_path / "w.npz")
    net = trtdsl.Network("w")
    x = net.input("x", "float32", (2, 16))
    net.output(x + w.take("used", shape=(2, 16)), "y")
    with pytest.raises(trtdsl.WeightError, match=r"leftover"):
        trtdsl.build(net, weights=w, progress=False)
    w2 = trtdsl.weights.load(tmp_path / "w.npz")
    net2 = trtdsl.Network("w2")
    x = net2.input("x", "float32", (2, 16))
    net2.output(x + w2.take("used") + w2.take("leftover")[:1], "y")
    assert trtdsl.build(net2, weights=w2, progress=False).outputs["y"].shape == (2, 16)


def test_builder_options_and_checked_values(tmp_path):
    net = _net()
    seen = {}
    plan = trtdsl.build(
        net, profiling_verbosity="DETAILED", max_aux_streams=0, sparsity=True, progress=False,
        configure=lambda config: seen.setdefault("verbosity", config.profiling_verbosity),
    )  # fmt: skip
    assert plan.options["profiling_verbosity"] == "detailed" and plan.options["sparsity"] is True
    assert plan.options["max_aux_streams"] == 0 and seen["verbosity"].name == "DETAILED"
    with pytest.raises(BuildError, match=r"profiling_verbosity must be one of .* got 'loud'"):
        trtdsl.build(_net(), profiling_verbosity="loud", progress=False)
    with pytest.raises(BuildError, match=r"max_aux_streams must be a non-negative int, got -1"):
        trtdsl.build(_net(), max_aux_streams=-1, progress=False)
    for bad in (-1, float("nan"), 1e30, 2.5):
        with pytest.raises(BuildError, match=r"memory pool WORKSPACE limit must be a whole number of bytes"):
            trtdsl.build(_net(), workspace=bad, progress=False)
    with pytest.raises(BuildError, match=r"timing cache .*: folder .*nodir' does not exist"):
        trtdsl.build(_net(), timing_cache=tmp_path / "nodir" / "c.bin", progress=False)


def test_a_profile_the_network_cannot_take_names_the_layer_and_dims():
    from trtdsl import ops
    from trtdsl.errors import ProfileError

    net = trtdsl.Network("unet")
    x = net.input("x", "float32", (1, 2, net.dim("H", 8, 16, 33), 16))
    down = ops.max_pool2d(ops.max_pool2d(x, 2, name="pool1"), 2, name="pool2")
    up = ops.interpolate(ops.interpolate(down, scale_factor=2, name="up1"), scale_factor=2, name="up2")
    net.output(ops.concat([x, up], 1, name="skip"), "y")
    with pytest.raises(ProfileError, match=r"network 'unet': the profile allows shapes the network cannot take: "
                       r"layer 'skip' fails at the profile's max \(H=33\): .*Dimensions are H and .*33 != 32.*"
                       r"Narrow the range \(H 8\.\.33\)"):  # fmt: skip
        trtdsl.build(net, progress=False)
    # The interpreter's failure at such a shape names the dims the feeds set.
    with pytest.raises(trtdsl.InterpreterError, match=r"layer \d+ 'skip' \(concatenation\) failed: .*; at H=17"):
        trtdsl.reference.run(net, {"x": np.zeros((1, 2, 17, 16), np.float32)})
