"""trtdsl.onnxops: the ONNX operator names onnxcheck knows, against the installed onnx package."""

from __future__ import annotations

import pytest

from trtdsl.onnxops import SAME_AS_ONNX, STANDARD_OPS

onnx = pytest.importorskip("onnx")


def test_standard_ops_are_those_of_onnx():
    schemas = onnx.defs.get_all_schemas_with_history()
    assert {s.name for s in schemas if s.domain == ""} == STANDARD_OPS, "regenerate trtdsl/onnxops.py"
    # No op of ONNX's other domains (ai.onnx.ml, ai.onnx.preview.training) shares a name with them.
    assert not {s.name for s in schemas if s.domain} & STANDARD_OPS


def test_the_ops_that_mean_the_onnx_op_are_onnx_op_names():
    assert {op for _, op in SAME_AS_ONNX} <= STANDARD_OPS
