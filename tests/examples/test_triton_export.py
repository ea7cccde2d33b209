"""examples/triton_export.py: the digits plan as a Triton repository, parsed with Triton's own schema."""

from __future__ import annotations

import pytest

from ._load import example

mc = pytest.importorskip("tritonclient.grpc.model_config_pb2")
text_format = pytest.importorskip("google.protobuf.text_format")
pytestmark = pytest.mark.usefixtures("trt")


def test_triton_example_writes_a_config_triton_parses(tmp_path, capsys):
    config = example("triton_export")["main"](str(tmp_path / "repo"))
    cfg = text_format.Parse(config.read_text(), mc.ModelConfig())
    assert cfg.name == "digits" and cfg.platform == "tensorrt_plan" and cfg.max_batch_size == 256
    assert [(t.name, t.data_type, list(t.dims)) for t in cfg.input] == [("images", mc.TYPE_FP32, [1, 8, 8])]
    assert [(t.name, t.data_type, list(t.dims)) for t in cfg.output] == [("logits", mc.TYPE_FP32, [10])]
    assert cfg.instance_group[0].count == 2 and list(cfg.instance_group[0].profile) == ["0"]
    assert (tmp_path / "repo" / "digits" / "1" / "model.plan").stat().st_size > 0
    assert "rebuild" in capsys.readouterr().out.lower()  # the RTX warning, on this CPU machine
