"""ONNX files TensorRT's parser silently misreads, refused by trtdsl/onnxcheck.py: each test shows what the raw
parser makes of the file first (the ONNX node tests' misreads: EXPECTED_REFUSALS in
tests/reference/test_onnx_conformance.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import trtdsl
import trtdsl.onnx
from trtdsl import reference

onnx = pytest.importorskip("onnx")
from onnx import helper  # noqa: E402

from ._onnx_parseserver import ParseServer  # noqa: E402
from .test_onnxcheck import _one_node, _raw_parse, _refused, _write  # noqa: E402

pytestmark = pytest.mark.usefixtures("trt")


@pytest.fixture(scope="module")
def server():
    s = ParseServer()
    yield s
    s.close()


def _norm_model(op: str, opset: int, channels: int, **attrs):
    rng = np.random.default_rng(3)
    inits = {
        "s": rng.standard_normal(channels).astype(np.float32),
        "b": rng.standard_normal(channels).astype(np.float32),
    }
    m = _one_node(helper.make_node(op, ["x", "s", "b"], ["y"], **attrs), inits, inputs=(("x", [2, channels, 5, 3]),))
    m.opset_import[0].version = opset
    return m


def _raw_run(trt, path: Path, x: np.ndarray) -> np.ndarray:
    """The interpreter on TensorRT's own parse of ``path`` (no trtdsl check)."""
    logger = trt.Logger(trt.Logger.INTERNAL_ERROR)
    net = trt.Builder(logger).create_network(0)
    parser = trt.OnnxParser(net, logger)
    assert parser.parse_from_file(str(path))
    return reference.run(net, {"x": x})["y"]


def test_group_normalization_of_one_group_is_refused(server, tmp_path, trt):
    ort = pytest.importorskip("onnxruntime")
    x = (np.random.default_rng(4).standard_normal((2, 8, 5, 3)) * 3 + 1).astype(np.float32)
    one = _write(tmp_path, "gn1", _norm_model("GroupNormalization", 21, 8, num_groups=1, epsilon=1e-5))
    instance = _write(tmp_path, "in", _norm_model("InstanceNormalization", 21, 8, epsilon=1e-5))
    expected = ort.InferenceSession(str(one), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    # Before: TensorRT's parser made of it the layers it makes of InstanceNormalization, and its network
    # (run by the interpreter, which follows TensorRT's documented normalization) is far from ONNX Runtime.
    assert _raw_parse(trt, one) == _raw_parse(trt, instance)
    assert np.abs(_raw_run(trt, one, x) - expected).max() > 0.1
    _refused(server, one, r"node 0 \(GroupNormalization\) in graph 'one' has num_groups=1, which TensorRT's parser "
             r"builds as InstanceNormalization .* Export with opset 20 or lower")  # fmt: skip
    old = _write(tmp_path, "gn1_18", _norm_model("GroupNormalization", 18, 1, num_groups=1, epsilon=1e-5))
    # Opset 18: the scale is per group, so the channels are unknown; no advice to export with an opset it has.
    message = _refused(server, old, r"num_groups=1, .* Rewrite it as Reshape \+ InstanceNormalization, or write it")
    assert "opset 20" not in message
    # Two groups, or one channel (opset 21: the scale has one value per channel): parsed, and right.
    for name, m in (("gn2", _norm_model("GroupNormalization", 21, 8, num_groups=2, epsilon=1e-5)),
                    ("gn1c1", _norm_model("GroupNormalization", 21, 1, num_groups=1, epsilon=1e-5))):  # fmt: skip
        path = _write(tmp_path, name, m)
        xs = x[:, : m.graph.initializer[0].dims[0]]
        want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": xs})[0]
        got = reference.run(trtdsl.onnx.parse(path), {"x": xs})["y"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_trilu_with_upper_given_parses_and_without_it_is_refused(server, tmp_path):
    # The refusals of misread attributes (Trilu's default, SpaceToDepth's mode, RNN layouts) are checked
    # against ONNX's own node tests in tests/reference/test_onnx_conformance.py (EXPECTED_REFUSALS).
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    for upper, expected in ((1, np.triu(x)), (0, np.tril(x))):
        m = _one_node(helper.make_node("Trilu", ["x"], ["y"], upper=upper), {}, inputs=(("x", [4, 4]),))
        m.opset_import[0].version = 14
        got = reference.run(trtdsl.onnx.parse(_write(tmp_path, f"trilu{upper}", m)), {"x": x})["y"]
        np.testing.assert_array_equal(got, expected)
    m = _one_node(helper.make_node("Trilu", ["x"], ["y"]), {}, inputs=(("x", [4, 4]),))
    m.opset_import[0].version = 14
    _refused(server, _write(tmp_path, "trilu", m), r"node 0 \(Trilu\) in graph 'one' has no 'upper' attribute")


def test_a_message_written_twice_is_refused(server, tmp_path):
    # Protobuf merges two copies of a singular message: the first of two joined models' graphs (a node without
    # outputs, external data outside the folder) reached TensorRT unchecked and crashed it (SIGSEGV).
    good = _one_node(helper.make_node("Relu", ["x"], ["y"]), {})
    bad = onnx.ModelProto()
    bad.graph.node.append(helper.make_node("Relu", ["x"], []))
    joined = _write(tmp_path, "joined", bad.SerializeToString() + good.SerializeToString())
    _refused(server, joined, r"the model's graph is written 2 times; protobuf merges the copies")
    twice = _one_node(helper.make_node("Relu", ["x"], ["y"]), {})
    twice.graph.node[0].attribute.extend([helper.make_attribute("a", 1), helper.make_attribute("a", 2)])
    _refused(server, _write(tmp_path, "attr", twice), r"node 0 \(Relu\) in graph 'one' has two attributes named 'a'")
    assert "ok" in server.parse(_write(tmp_path, "good", good))
