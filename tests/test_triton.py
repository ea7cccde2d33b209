"""trtdsl export triton: config.pbtxt checked against Triton's own ModelConfig schema (tritonclient, test-only)."""

from __future__ import annotations

import warnings

import pytest

import trtdsl
from trtdsl import ops
from trtdsl.build import IOSpec, Plan
from trtdsl.cli import main
from trtdsl.profile import Profile
from trtdsl.triton import TritonCompatibilityWarning, TritonExportError, export_triton

mc = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient[grpc] (dev extra) not installed")
text_format = pytest.importorskip("google.protobuf.text_format")

TYPES = {"float32": mc.TYPE_FP32, "float16": mc.TYPE_FP16, "bfloat16": mc.TYPE_BF16, "int8": mc.TYPE_INT8,
         "uint8": mc.TYPE_UINT8, "int32": mc.TYPE_INT32, "int64": mc.TYPE_INT64, "bool": mc.TYPE_BOOL}  # fmt: skip


def _parse(path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def _plan(inputs, outputs, profiles, backend="tensorrt 11.4.0"):
    return Plan(b"engine-bytes", {s.name: s for s in inputs}, {s.name: s for s in outputs}, profiles, backend, "m")


def _check_against_metadata(cfg: mc.ModelConfig, plan: Plan) -> None:
    """Every field the config carries, restated from the plan's metadata."""
    assert cfg.platform == "tensorrt_plan"
    for got, specs in ((cfg.input, plan.inputs), (cfg.output, plan.outputs)):
        assert [t.name for t in got] == list(specs)
        for t in got:
            spec = specs[t.name]
            assert t.data_type == TYPES[spec.dtype]
            shape = spec.shape[1:] if cfg.max_batch_size > 0 else spec.shape
            assert list(t.dims) == [-1 if isinstance(d, str) or d < 0 else d for d in shape]
    (group,) = cfg.instance_group
    assert group.kind == mc.ModelInstanceGroup.KIND_GPU
    assert list(group.profile) == [str(i) for i in range(len(plan.profiles))]


@pytest.mark.usefixtures("trt")
def test_built_plan_exports_a_repository_triton_can_parse(tmp_path):
    net = trtdsl.Network("digits")
    batch = net.dim("batch", 1, 8, 32)
    x = net.input("images", "float32", (batch, 1, 8, 8))
    net.output(ops.relu(x), "probs", dtype="float16")
    net.add_profile(batch=(1, 64, 128))
    plan = trtdsl.build(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TritonCompatibilityWarning)  # tensorrt_rtx here; tested below
        model = plan.export_triton(tmp_path / "repo", instances=2)
    assert model.config == tmp_path / "repo" / "digits" / "config.pbtxt"
    assert (tmp_path / "repo" / "digits" / "1" / "model.plan").read_bytes() == plan.engine
    cfg = _parse(model.config)
    assert cfg.name == "digits" and cfg.max_batch_size == 128  # the largest batch of any profile
    _check_against_metadata(cfg, plan)
    assert [list(t.dims) for t in cfg.input] == [[1, 8, 8]] and cfg.output[0].data_type == mc.TYPE_FP16
    assert cfg.instance_group[0].count == 2 and list(cfg.instance_group[0].profile) == ["0", "1"]
    assert cfg.HasField("dynamic_batching")


@pytest.mark.parametrize("dtype", sorted(TYPES))
def test_every_triton_type_and_names_needing_escapes(tmp_path, dtype):
    name = 'in "quoted"\\path, entrée'
    plan = _plan([IOSpec(name, dtype, ("batch", 3, "seq"))], [IOSpec("out:0", dtype, (-1, 4))],
                 [Profile({"batch": (1, 2, 4), "seq": (1, 8, 16)})])  # fmt: skip
    cfg = _parse(export_triton(plan, tmp_path, name="m").config)
    assert cfg.input[0].name == name and list(cfg.input[0].dims) == [3, -1]
    _check_against_metadata(cfg, plan)


def test_static_plan_has_no_batching_and_full_dims(tmp_path):
    plan = _plan([IOSpec("x", "float32", (2, 3))], [IOSpec("y", "int32", (2,))], [Profile({})])
    cfg = _parse(export_triton(plan, tmp_path, name="static").config)
    assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching")
    assert list(cfg.input[0].dims) == [2, 3] and list(cfg.output[0].dims) == [2]
    _check_against_metadata(cfg, plan)
    with pytest.raises(TritonExportError, match="needs a dynamic batch dim"):
        export_triton(plan, tmp_path, name="static2", max_batch=4)


def test_max_batch_zero_keeps_the_batch_dim_and_too_large_is_refused(tmp_path):
    plan = _plan([IOSpec("x", "float32", ("batch", 3))], [IOSpec("y", "float32", ("batch", 3))],
                 [Profile({"batch": (1, 4, 8)})])  # fmt: skip
    cfg = _parse(export_triton(plan, tmp_path, name="nobatch", max_batch=0).config)
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims) == [-1, 3] and not cfg.HasField("dynamic_batching")
    with pytest.raises(TritonExportError, match=r"larger than the plan allows: dim 'batch' goes up to 8"):
        export_triton(plan, tmp_path, name="big", max_batch=16)


@pytest.mark.parametrize(("dtype", "label"), [("fp8", "FP8"), ("fp4", "FP4"), ("int4", "INT4"), ("e8m0", "E8M0")])
@pytest.mark.parametrize("where", ["input", "output"])
def test_narrow_io_types_are_refused_with_the_reason(tmp_path, dtype, label, where):
    io = [IOSpec("x", "float32", (1, 4))]
    bad = [IOSpec("q", dtype, (1, 4))]
    plan = _plan(bad, io, [Profile({})]) if where == "input" else _plan(io, bad, [Profile({})])
    with pytest.raises(
        TritonExportError, match=rf"{where} 'q' has dtype {dtype}: Triton's model configuration has no {label}"
    ):
        export_triton(plan, tmp_path, name="narrow")
    assert not (tmp_path / "narrow").exists()  # nothing half-written


def test_rtx_plan_warns_and_strict_refuses(tmp_path):
    plan = _plan([IOSpec("x", "float32", (1, 4))], [IOSpec("y", "float32", (1, 4))], [Profile({})],
                 backend="tensorrt_rtx 1.7.1.116")  # fmt: skip
    with pytest.warns(TritonCompatibilityWarning, match="cannot load a TensorRT-RTX plan. Rebuild"):
        export_triton(plan, tmp_path, name="rtx")
    with pytest.raises(TritonExportError, match="TensorRT-RTX.*refused: strict"):
        export_triton(plan, tmp_path, name="rtx2", strict=True)
    assert not (tmp_path / "rtx2").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a full-TensorRT plan gives no warning
        export_triton(_plan([IOSpec("x", "float32", (1, 4))], [IOSpec("y", "float32", (1, 4))], [Profile({})]),
                      tmp_path, name="full")  # fmt: skip


def test_existing_model_is_kept_and_bad_names_refused(tmp_path):
    plan = _plan([IOSpec("x", "float32", (1, 4))], [IOSpec("y", "float32", (1, 4))], [Profile({})])
    export_triton(plan, tmp_path, name="m")
    with pytest.raises(TritonExportError, match="already exists; pass overwrite=True"):
        export_triton(plan, tmp_path, name="m")
    export_triton(plan, tmp_path, name="m", overwrite=True)
    with pytest.raises(TritonExportError, match="model name '../evil'"):
        export_triton(plan, tmp_path, name="../evil")
    with pytest.raises(TritonExportError, match="instances must be at least 1"):
        export_triton(plan, tmp_path, name="n", instances=0)


@pytest.mark.usefixtures("trt")
def test_cli_export_triton(tmp_path, capsys):
    net = trtdsl.Network("cli")
    x = net.input("x", "float32", (net.dim("batch", 1, 2, 4), 3))
    net.output(ops.sigmoid(x), "y")
    trtdsl.build(net).save(tmp_path / "model.plan")
    repo = tmp_path / "repo"
    assert main(["export", "triton", str(tmp_path / "model.plan"), "--repository", str(repo), "--instances", "3"]) == 0
    out = capsys.readouterr().out
    assert "warning: plan was built with tensorrt_rtx" in out and "max_batch_size 4" in out
    cfg = _parse(repo / "model" / "config.pbtxt")
    assert cfg.instance_group[0].count == 3 and cfg.max_batch_size == 4
    assert (
        main(["export", "triton", str(tmp_path / "model.plan"), "--repository", str(repo), "--strict", "--name", "s"])
        == 2
    )
    assert "refused: strict" in capsys.readouterr().err
    assert main(["export", "triton", str(tmp_path / "missing.plan"), "--repository", str(repo)]) == 2
    assert "no plan file" in capsys.readouterr().err
    assert main(["export", "triton", str(tmp_path / "model.plan")]) == 2  # --repository is required
    assert "--repository" in capsys.readouterr().err
    assert main(["export", "triton", str(tmp_path / "model.plan"), "--repository", str(repo), "--instances", "x"]) == 2
    assert "'x' is not an int" in capsys.readouterr().err
