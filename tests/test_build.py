"""trtdsl.build on the CPU with tensorrt_rtx: plans, profiles, options, save/load."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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


# ---------------------------------------------------------------- untrusted plans: the sidecar is checked
@pytest.fixture(scope="module")
def saved_plan(tmp_path_factory):
    net = _net()
    net.add_profile(batch=(16, 32, 64))
    plan = trtdsl.build(net, optimization_level=0, progress=False)
    return plan.save(tmp_path_factory.mktemp("plan") / "mlp.plan")


def _variant(src, tmp_path, *, edit=None, text=None, engine=None):
    import json

    meta = json.loads(Path(str(src) + ".json").read_text())
    if edit is not None:
        edit(meta)
    dst = tmp_path / "bad.plan"
    dst.write_bytes(src.read_bytes() if engine is None else engine(src.read_bytes()))
    Path(str(dst) + ".json").write_text(json.dumps(meta) if text is None else text)
    return dst


def _set(*path, value):
    def edit(meta):
        for key in path[:-1]:
            meta = meta[key]
        meta[path[-1]] = value

    return edit


def _random_engine(raw, n=None):
    return np.random.default_rng(0).integers(0, 256, n or len(raw), dtype=np.uint8).tobytes()


HOSTILE = {
    "deep nesting": ({"text": "[" * 100_000}, r"is malformed: it nests too deeply"),
    "not JSON": ({"text": "\x00garbage"}, r"is malformed: not JSON"),
    "a list": ({"text": "[]"}, r"is malformed: the document: expected a JSON object, got \[\]"),
    "profiles 'x'": ({"edit": _set("profiles", value="x")}, r"profiles: expected a non-empty list .* got 'x'"),
    "two-value range": ({"edit": _set("profiles", 0, "batch", value=[1, 8])}, r"profiles\[0\].batch: expected \[min, opt, max\], got \[1, 8\]"),
    "profile without the dim": ({"edit": _set("profiles", 1, value={})}, r"profiles\[1\] has no range for dim\(s\) \['batch'\] the inputs use"),
    "profile with an unknown dim": ({"edit": _set("profiles", 0, "seq", value=[1, 2, 3])}, r"profiles\[0\] has range\(s\) for dim\(s\) \['seq'\] no input uses"),
    "opt 10**12": ({"edit": _set("profiles", 0, "batch", value=[1, 10**12, 10**12])}, r"profiles\[0\].batch: expected values up to 2147483647"),
    "min > max": ({"edit": _set("profiles", 0, "batch", value=[8, 4, 1])}, r"profiles\[0\]: dim 'batch': range must satisfy min <= opt <= max"),
    "negative range": ({"edit": _set("profiles", 0, "batch", value=[-1, 1, 2])}, r"range values must be non-negative ints"),
    "float range": ({"edit": _set("profiles", 0, "batch", value=[1, 2.5, 4])}, r"range values must be non-negative ints"),
    "format 999": ({"edit": _set("format", value=999)}, r"format 999 is not one this trtdsl reads \(1, 2\); it was written by a newer trtdsl"),
    "format '2'": ({"edit": _set("format", value="2")}, r"format: expected a format version \(1, 2\), got '2'"),
    "unknown dtype": ({"edit": _set("inputs", 0, "dtype", value="float99")}, r"inputs\[0\].dtype: expected a trtdsl dtype name such as 'float32', got 'float99'"),
    "shape 'x'": ({"edit": _set("inputs", 0, "shape", value="x")}, r"inputs\[0\].shape: expected a list of at most 8 dims"),
    "rank 9": ({"edit": _set("outputs", 0, "shape", value=[1] * 9)}, r"outputs\[0\].shape: expected a list of at most 8 dims"),
    "negative dim": ({"edit": _set("inputs", 0, "shape", value=[-5, 16])}, r"inputs\[0\].shape\[0\]: expected an int in 0..2147483647 or a dim name, got -5"),
    "huge volume": ({"edit": _set("inputs", 0, "shape", value=["batch", 2**31 - 1, 2**31 - 1])}, r"input 'x' would hold \d+ elements at its largest shape"),
    "no inputs": ({"edit": lambda m: m.pop("inputs")}, r"inputs: expected a list of \{name, dtype, shape\} objects, got None"),
    "duplicate output": ({"edit": lambda m: m["outputs"].append(dict(m["outputs"][0]))}, r"outputs\[1\].name: expected a non-empty name used once"),
    "build_seconds NaN": ({"edit": _set("build_seconds", value=float("nan"))}, r"not JSON \(NaN is not a JSON number\)"),
    "a name with a terminal escape": ({"edit": _set("backend", value="x\u001b[31mRED")}, r"backend: expected a printable string"),
    "options a list": ({"edit": _set("options", value=[])}, r"options: expected a JSON object"),
    "hash tampered": ({"edit": _set("engine_sha256", value="0" * 64)}, r"the engine's SHA-256 does not match the metadata's"),
    "hash malformed": ({"edit": _set("engine_sha256", value="xyz")}, r"engine_sha256: expected 64 lower-case hex digits"),
    "random 4 KB engine": ({"engine": lambda raw: _random_engine(raw, 4096)}, r"the engine file holds 4096 bytes, the metadata says \d+"),
    "engine swapped, same size": ({"engine": _random_engine}, r"the engine's SHA-256 does not match the metadata's: the engine file was swapped"),
    "truncated engine": ({"engine": lambda raw: raw[:100]}, r"the engine file holds 100 bytes"),
    "17 MB sidecar": ({"text": " " * (17 << 20)}, r"is 17825792 bytes, more than the 16777216"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_plan_sidecars_are_trtdsl_errors(saved_plan, tmp_path, capsys, case):
    from trtdsl.cli import main

    kwargs, pattern = HOSTILE[case]
    path = _variant(saved_plan, tmp_path, **kwargs)
    with pytest.raises(TrtdslError, match=pattern):
        Plan.load(path)
    assert main(["info", str(path)]) == 2  # never shown as a valid plan
    assert re.search(pattern, capsys.readouterr().err)


def test_format_1_plans_load_but_say_they_are_unverified(saved_plan, tmp_path, capsys):
    from trtdsl.cli import main

    def legacy(meta):
        meta["format"] = 1
        del meta["engine_sha256"], meta["engine_bytes"]

    path = _variant(saved_plan, tmp_path, edit=legacy)
    plan = Plan.load(path)
    assert plan.verified is False and Plan.load(saved_plan).verified is True
    assert main(["info", str(path)]) == 0
    assert "engine NOT verified: format-1 metadata records no SHA-256" in capsys.readouterr().out


def test_plan_sidecar_fuzz(saved_plan, tmp_path):
    import json

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    meta = json.loads(Path(str(saved_plan) + ".json").read_text())
    paths = []

    def walk(obj, at):
        paths.append(at)
        items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
        for k, v in items:
            walk(v, (*at, k))

    walk(meta, ())
    leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=20))
    values = st.recursive(
        leaf,
        lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=8), c, max_size=4)),
        max_leaves=12,
    )
    engine = saved_plan.read_bytes()

    @settings(max_examples=150, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(where=st.sampled_from(paths[1:]), value=values, drop=st.booleans())
    def check(where, value, drop):
        import copy

        m = copy.deepcopy(meta)
        target = m
        for key in where[:-1]:
            target = target[key]
        if drop and isinstance(target, dict):
            del target[where[-1]]
        else:
            target[where[-1]] = value
        dst = tmp_path / "f.plan"
        dst.write_bytes(engine)
        Path(str(dst) + ".json").write_text(json.dumps(m))
        try:
            plan = Plan.load(dst)
        except TrtdslError:
            return
        assert plan.engine == engine  # what loads is consistent: every input dim has a range in every profile
        for p in plan.profiles:
            for spec in plan.inputs.values():
                p.shapes(spec.shape)

    check()


def test_unreadable_timing_cache_is_never_overwritten(tmp_path, caplog):
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"not a timing cache" * 10)
    with caplog.at_level("WARNING", logger="trtdsl.build"):
        trtdsl.build(_net(dynamic=False), timing_cache=cache, progress=False)
    assert cache.read_bytes() == b"not a timing cache" * 10
    assert "could not be read, so it was not used and is left as it was" in caplog.text


_TIMING_SWEEP = """
import sys
import trtdsl._trt as T
from trtdsl.build import _load_timing_cache
config = T.load().Builder(T.logger()).create_builder_config()
for path in sys.argv[1:]:
    print(path, "read" if _load_timing_cache(config, path)[1] else "ignored", flush=True)
"""


@pytest.mark.parametrize("n", [48, pytest.param(600, marks=pytest.mark.slow, id="slow")])
def test_mutated_timing_caches_are_used_or_ignored_never_a_crash(tmp_path, n):
    """TensorRT's C++ reader gets each mutated cache in a child process, so a crash names its input."""
    from ._mutations import mutations, scattered

    cache = tmp_path / "timing.cache"
    trtdsl.build(_net(dynamic=False), timing_cache=cache, progress=False)
    good = cache.read_bytes()
    paths = [cache]
    for label, data in [*mutations(good, n, seed=len(good)), *scattered(good, n // 4, seed=len(good))]:
        paths.append(tmp_path / f"case-{label}")
        paths[-1].write_bytes(data)
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-c", _TIMING_SWEEP, *map(str, paths)], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)}, cwd=root,
    )  # fmt: skip
    lines = run.stdout.splitlines()
    assert run.returncode == 0, f"exit {run.returncode} after {len(lines)} caches; next: {paths[len(lines)]}"
    assert len(lines) == len(paths) and lines[0].endswith(" read")  # the real cache itself is used


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
