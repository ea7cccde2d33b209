"""trtdsl.onnxwire: bytes that are not an ONNX protobuf, and the field budget of the walk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import trtdsl.onnx
from trtdsl import onnxcheck, onnxwire

pytest.importorskip("onnx")
from ._onnx_hostile import matmul

pytestmark = pytest.mark.usefixtures("trt")


def _write(folder: Path, name: str, m) -> Path:
    path = folder / f"{name}.onnx"
    path.write_bytes(m if isinstance(m, bytes) else m.SerializeToString())
    return path


def test_files_that_are_not_models_are_refused_with_what_is_wrong(tmp_path):
    data = matmul().SerializeToString()
    cut = _write(tmp_path, "cut", data[: len(data) // 2])
    with pytest.raises(
        trtdsl.onnx.OnnxParseError, match=r"not an ONNX model \(a malformed protobuf\): field \d+ at byte"
    ):
        trtdsl.onnx.parse(cut)
    with pytest.raises(trtdsl.onnx.OnnxParseError, match="is empty"):
        trtdsl.onnx.parse(_write(tmp_path, "empty", b""))
    os.mkfifo(tmp_path / "fifo.onnx")
    with pytest.raises(trtdsl.onnx.OnnxParseError, match="is not a regular file"):
        trtdsl.onnx.parse(tmp_path / "fifo.onnx")


def test_a_file_of_tiny_fields_is_refused_within_the_field_budget(tmp_path, monkeypatch):
    # The walk stores only the fields it reads and stops at MAX_FIELDS: a 2 GiB file of 2-byte
    # fields would otherwise cost it minutes and gigabytes (ResNet-50 has 2,885 fields).
    monkeypatch.setattr(onnxwire, "MAX_FIELDS", 1000)
    path = _write(tmp_path, "tiny", b"\x08\x07" * 5000)
    with pytest.raises(trtdsl.onnx.OnnxParseError, match=r"it holds more than 1,000 protobuf fields outside"):
        trtdsl.onnx.parse(path)
    assert onnxcheck.check(_write(tmp_path, "mm", matmul())) == []  # a model within the budget
