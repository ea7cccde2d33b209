"""ONNX models using the modern layers, parsed by TensorRT's own ONNX parser, run by the interpreter.

Each model is one node written with ``onnx.helper`` (Attention opset 23/24,
RotaryEmbedding 23, GridSample 22, NonMaxSuppression 11, TensorScatter 24).
NVIDIA's parser decides how it maps onto IAttention, IRotaryEmbeddingLayer,
IGridSampleLayer, INMSLayer and IKVCacheUpdateLayer, and ONNX Runtime (CPU)
computes the expected outputs; onnx.reference.ReferenceEvaluator stands in where
ONNX Runtime lacks an op.
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl.reference

from .onnx_models import parse

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto as T  # noqa: E402
from onnx import helper as h  # noqa: E402

pytestmark = pytest.mark.usefixtures("trt")
if onnx.defs.onnx_opset_version() < 24:
    pytest.skip(f"onnx {onnx.__version__} predates opset 24 (Attention-24, TensorScatter)", allow_module_level=True)
vi = h.make_tensor_value_info


def _model(node, inputs, opset, outputs=("Y",), out_type=T.FLOAT, inits=()):
    graph = h.make_graph([node], "g", inputs, [vi(o, out_type, None) for o in outputs], initializer=list(inits))
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 10
    return m


def _expected(m, feeds):
    try:
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as e:
        if "NOT_IMPLEMENTED" not in str(e) and "implementation" not in str(e):
            raise
        # An op (or opset) this ONNX Runtime does not implement: the ONNX reference evaluator.
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(m).run(None, feeds)
    return sess.run(None, feeds)


def _interpret(m, tmp_path, feeds, want_types):
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    parsed = parse(path)
    types = set(parsed.layer_types())
    assert want_types <= types, f"parser emitted {sorted(types)}, expected {sorted(want_types)}"
    return list(trtdsl.reference.run(parsed.network, feeds).values())


def _f(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


ATTENTION = [
    # (name, opset, q, k, v shapes, attributes, mask (shape, kind) or None)
    ("gqa-causal", 23, (2, 4, 5, 8), (2, 2, 7, 8), {"is_causal": 1}, None),
    ("gqa-causal-24", 24, (2, 6, 4, 8), (2, 2, 4, 8), {"is_causal": 1}, None),
    ("decode", 24, (1, 4, 1, 16), (1, 4, 9, 16), {"is_causal": 1}, None),
    ("3d-bool-mask-scale", 23, (2, 5, 32), (2, 7, 16), {"q_num_heads": 4, "kv_num_heads": 2, "scale": 0.3},
     ((5, 7), "bool")),
    ("float-mask", 23, (2, 2, 3, 8), (2, 2, 5, 8), {}, ((2, 1, 3, 5), "float")),
    ("head-mask", 24, (1, 4, 3, 8), (1, 4, 6, 8), {}, ((1, 4, 3, 6), "bool")),
]  # fmt: skip


@pytest.mark.parametrize("case", ATTENTION, ids=[c[0] for c in ATTENTION])
def test_attention_matches_onnxruntime(case, rng, tmp_path):
    _, opset, qs, ks, attrs, mask = case
    names, inputs = ["Q", "K", "V"], [vi("Q", T.FLOAT, qs), vi("K", T.FLOAT, ks), vi("V", T.FLOAT, ks)]
    feeds = {"Q": _f(rng, *qs), "K": _f(rng, *ks), "V": _f(rng, *ks)}
    if mask is not None:
        shape, kind = mask
        names.append("M")
        inputs.append(vi("M", T.BOOL if kind == "bool" else T.FLOAT, shape))
        if kind == "bool":
            m = rng.random(shape) < 0.7
            m[..., 0] = True
        else:
            m = _f(rng, *shape)
        feeds["M"] = m
    model = _model(h.make_node("Attention", names, ["Y"], **attrs), inputs, opset)
    (want,) = _expected(model, feeds)
    (got,) = _interpret(model, tmp_path, feeds, {"attention_input", "attention_output"})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_attention_float16_matches_onnxruntime(rng, tmp_path):
    shape = (1, 2, 6, 8)
    inputs = [vi(n, T.FLOAT16, shape) for n in "QKV"]
    model = _model(h.make_node("Attention", ["Q", "K", "V"], ["Y"], is_causal=1), inputs, 23, out_type=T.FLOAT16)
    feeds = {n: _f(rng, *shape, dtype=np.float16) for n in "QKV"}
    (want,) = _expected(model, feeds)
    (got,) = _interpret(model, tmp_path, feeds, {"attention_input"})
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=5e-3, atol=3e-3)


ROTARY = [
    # (name, x shape, attributes, position ids?)
    ("halves-ids", (2, 3, 5, 8), {}, True),
    ("interleaved-ids", (2, 3, 5, 8), {"interleaved": 1}, True),
    ("partial-ids", (2, 3, 5, 12), {"rotary_embedding_dim": 4}, True),
    ("halves-per-position", (2, 2, 4, 8), {}, False),
    ("3d-heads-interleaved", (2, 5, 24), {"interleaved": 1, "num_heads": 3}, False),
]


@pytest.mark.parametrize("case", ROTARY, ids=[c[0] for c in ROTARY])
def test_rotary_embedding_matches_onnxruntime(case, rng, tmp_path):
    _, xs, attrs, with_ids = case
    d = xs[-1] // attrs.get("num_heads", 1) if len(xs) == 3 else xs[-1]
    half = attrs.get("rotary_embedding_dim", d) // 2
    b, s = xs[0], xs[-2] if len(xs) == 4 else xs[1]
    cache = (16, half) if with_ids else (b, s, half)
    ang = rng.uniform(0, 6, cache)
    feeds = {"X": _f(rng, *xs), "C": np.cos(ang).astype(np.float32), "S": np.sin(ang).astype(np.float32)}
    names = ["X", "C", "S"]
    inputs = [vi("X", T.FLOAT, xs), vi("C", T.FLOAT, cache), vi("S", T.FLOAT, cache)]
    if with_ids:
        names.append("P")
        inputs.append(vi("P", T.INT64, (b, s)))
        feeds["P"] = rng.integers(0, 16, (b, s))
    model = _model(h.make_node("RotaryEmbedding", names, ["Y"], **attrs), inputs, 23)
    (want,) = _expected(model, feeds)
    (got,) = _interpret(model, tmp_path, feeds, {"rotary_embedding"})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


GRID = [(m, p, a) for m in ("linear", "nearest", "cubic") for p in ("zeros", "border", "reflection") for a in (0, 1)]


@pytest.mark.parametrize(("mode", "padding", "align"), GRID)
def test_grid_sample_4d_matches_onnxruntime(mode, padding, align, rng, tmp_path):
    xs, gs = (2, 3, 5, 6), (2, 4, 3, 2)
    model = _model(h.make_node("GridSample", ["X", "G"], ["Y"], mode=mode, padding_mode=padding, align_corners=align),
                   [vi("X", T.FLOAT, xs), vi("G", T.FLOAT, gs)], 22)  # fmt: skip
    feeds = {"X": _f(rng, *xs), "G": rng.uniform(-1.3, 1.3, gs).astype(np.float32)}
    (want,) = _expected(model, feeds)
    (got,) = _interpret(model, tmp_path, feeds, {"grid_sample"})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_grid_sample_5d_matches_onnxruntime(mode, padding, rng, tmp_path):
    xs, gs = (1, 2, 3, 5, 6), (1, 2, 3, 4, 3)
    model = _model(h.make_node("GridSample", ["X", "G"], ["Y"], mode=mode, padding_mode=padding, align_corners=1),
                   [vi("X", T.FLOAT, xs), vi("G", T.FLOAT, gs)], 22)  # fmt: skip
    feeds = {"X": _f(rng, *xs), "G": rng.uniform(-1.3, 1.3, gs).astype(np.float32)}
    (want,) = _expected(model, feeds)
    (got,) = _interpret(model, tmp_path, feeds, {"grid_sample"})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize(("limit", "iou", "score"), [(5, 0.5, 0.2), (100, 0.3, 0.0), (2, 0.7, 0.6)])
def test_nms_matches_onnxruntime_up_to_tensorrts_order(center, limit, iou, score, rng, tmp_path):
    b, n, c = 2, 25, 3
    centre, size = rng.uniform(0, 10, (b, n, 2)), rng.uniform(1, 4, (b, n, 2))
    boxes = np.concatenate([centre, size], -1) if center else np.concatenate([centre - size / 2, centre + size / 2], -1)
    scores = rng.random((b, c, n)).astype(np.float32)
    inits = [h.make_tensor("M", T.INT64, [1], [limit]), h.make_tensor("I", T.FLOAT, [1], [iou]),
             h.make_tensor("T", T.FLOAT, [1], [score])]  # fmt: skip
    model = _model(h.make_node("NonMaxSuppression", ["B", "S", "M", "I", "T"], ["Y"], center_point_box=center),
                   [vi("B", T.FLOAT, (b, n, 4)), vi("S", T.FLOAT, (b, c, n))], 11, out_type=T.INT64,
                   inits=inits)  # fmt: skip
    feeds = {"B": boxes.astype(np.float32), "S": scores}
    (want,) = _expected(model, feeds)
    got = _interpret(model, tmp_path, feeds, {"nms"})[0]
    assert len(got) > 0
    # ONNX Runtime orders rows by batch, class, score; TensorRT by batch, then decreasing score.
    np.testing.assert_array_equal(np.unique(got, axis=0), np.unique(want, axis=0))
    np.testing.assert_array_equal(got[:, 0], np.sort(got[:, 0]))
    for bi in range(b):
        mine = got[got[:, 0] == bi]
        assert np.all(np.diff(scores[bi, mine[:, 1], mine[:, 2]]) < 0)


@pytest.mark.parametrize(("writes", "s"), [([0, 5], 2), ([3, 1], 3), ([7, 0], 1)])
def test_tensor_scatter_matches_onnx(writes, s, rng, tmp_path):
    cs, us = (2, 3, 8, 4), (2, 3, s, 4)
    model = _model(h.make_node("TensorScatter", ["C", "U", "W"], ["Y"], mode="linear"),
                   [vi("C", T.FLOAT, cs), vi("U", T.FLOAT, us), vi("W", T.INT64, (2,))], 24)  # fmt: skip
    feeds = {"C": _f(rng, *cs), "U": _f(rng, *us), "W": np.array(writes, np.int64)}
    (want,) = _expected(model, feeds)
    (got,) = _interpret(model, tmp_path, feeds, {"kv_cache_update"})
    np.testing.assert_array_equal(got, want)
