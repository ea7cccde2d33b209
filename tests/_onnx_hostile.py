"""Small valid ONNX models (the seeds of tests/test_onnxcheck.py) and the edits that make them hostile.

Built with the ``onnx`` helper API (test-only); each seed is checked by
``onnx.checker`` and run by ONNX Runtime in the tests, so a mutation starts from
a model both agree is valid.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as H
from onnx import numpy_helper as N

W = np.arange(12, dtype=np.float32).reshape(3, 4)


def model(graph, opset: int = 17):
    return H.make_model(graph, opset_imports=[H.make_opsetid("", opset)], ir_version=8)


def conv():
    r = np.random.default_rng(0)
    g = H.make_graph(
        [H.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], name="conv"),
         H.make_node("Relu", ["c"], ["y"], name="relu")],
        "conv",
        [H.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])],
        [H.make_tensor_value_info("y", TP.FLOAT, [1, 4, 8, 8])],
        [N.from_array(r.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
         N.from_array(r.standard_normal(4).astype(np.float32), "B")],
    )  # fmt: skip
    return model(g)


def matmul():
    """y = x @ W + 1, with a dynamic batch."""
    g = H.make_graph(
        [H.make_node("MatMul", ["x", "W"], ["m"], name="mm"), H.make_node("Add", ["m", "B"], ["y"], name="add")],
        "mm",
        [H.make_tensor_value_info("x", TP.FLOAT, ["batch", 3])],
        [H.make_tensor_value_info("y", TP.FLOAT, ["batch", 4])],
        [N.from_array(W, "W"), N.from_array(np.ones(4, np.float32), "B")],
    )
    return model(g)


def branch(out: str, k: int):
    """A subgraph: out = x + k (x from the enclosing graph)."""
    return H.make_graph(
        [H.make_node("Add", ["x", f"k{k}"], [out], name=f"add{k}")], f"b{k}", [],
        [H.make_tensor_value_info(out, TP.FLOAT, [2])], [N.from_array(np.full(2, k, np.float32), f"k{k}")],
    )  # fmt: skip


def control():
    """z = If(sum(x) > 0, x + 1, x + 2), then y = Loop 3 times (z + 1): nodes 2 (If) and 3 (Loop)."""
    body = H.make_graph(
        [H.make_node("Identity", ["cond_in"], ["cond_out"]), H.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [H.make_tensor_value_info("i", TP.INT64, []), H.make_tensor_value_info("cond_in", TP.BOOL, []),
         H.make_tensor_value_info("v_in", TP.FLOAT, [2])],
        [H.make_tensor_value_info("cond_out", TP.BOOL, []), H.make_tensor_value_info("v_out", TP.FLOAT, [2])],
        [N.from_array(np.ones(2, np.float32), "one")],
    )  # fmt: skip
    g = H.make_graph(
        [H.make_node("ReduceSum", ["x"], ["s"], keepdims=0, name="sum"),
         H.make_node("Greater", ["s", "zero"], ["c"], name="gt"),
         H.make_node("If", ["c"], ["z"], then_branch=branch("t", 1), else_branch=branch("e", 2), name="if"),
         H.make_node("Loop", ["n", "true", "z"], ["y"], body=body, name="loop")],
        "ctl",
        [H.make_tensor_value_info("x", TP.FLOAT, [2])],
        [H.make_tensor_value_info("y", TP.FLOAT, [2])],
        [N.from_array(np.array(0, np.float32), "zero"), N.from_array(np.array(3, np.int64), "n"),
         N.from_array(np.array(True), "true")],
    )  # fmt: skip
    return model(g)


def scan():
    """Running sum over the rows of xs: (s, ys) = Scan(s0, xs)."""
    body = H.make_graph(
        [H.make_node("Add", ["s_in", "x_i"], ["s_out"]), H.make_node("Identity", ["s_out"], ["y_i"])],
        "sb",
        [H.make_tensor_value_info("s_in", TP.FLOAT, [2]), H.make_tensor_value_info("x_i", TP.FLOAT, [2])],
        [H.make_tensor_value_info("s_out", TP.FLOAT, [2]), H.make_tensor_value_info("y_i", TP.FLOAT, [2])],
    )
    g = H.make_graph(
        [H.make_node("Scan", ["s0", "xs"], ["s", "ys"], body=body, num_scan_inputs=1, name="scan")],
        "scan",
        [H.make_tensor_value_info("s0", TP.FLOAT, [2]), H.make_tensor_value_info("xs", TP.FLOAT, [3, 2])],
        [H.make_tensor_value_info("s", TP.FLOAT, [2]), H.make_tensor_value_info("ys", TP.FLOAT, [3, 2])],
    )
    return model(g)


def scan8():
    """scan() as opset 8 writes it: a batch axis, and sequence_lens ('' here) before the states."""
    m = scan()
    g = m.graph
    g.node[0].input.insert(0, "")
    for v in [*g.input, *g.output]:
        v.type.tensor_type.shape.dim.insert(0, onnx.TensorShapeProto.Dimension(dim_value=1))
    m.opset_import[0].version = 8
    return m


SEEDS = {"conv": conv, "matmul": matmul, "control": control, "scan": scan, "scan8": scan8}


def save_external(folder: Path, location: str = "w.bin"):
    """matmul() with W in the external-data file ``location``; the model (loaded without its data)."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(matmul(), str(folder / "ext.onnx"), save_as_external_data=True, location=location, size_threshold=0)
    return onnx.load(str(folder / "ext.onnx"), load_external_data=False)


def with_external(m, **entries):
    """A copy of ``m`` whose first initializer's external_data entries are set (None removes one)."""
    m = copy.deepcopy(m)
    data = m.graph.initializer[0].external_data
    have = {e.key: e for e in data}
    for key, value in entries.items():
        if value is None:
            data.remove(have[key])
        elif key in have:
            have[key].value = str(value)
        else:
            data.add(key=key, value=str(value))
    return m


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nested_ifs(depth: int) -> bytes:
    """A model whose output comes from ``depth`` If nodes, each in the then-branch of the last.

    Written as wire bytes: protobuf's own encoder refuses to build messages this deep.
    """
    graph = branch("o0", 0).SerializeToString()
    for k in range(1, depth + 1):
        attrs = b"".join(
            _field(5, _field(1, name) + _field(6, g) + _varint(20 << 3) + _varint(5))  # type GRAPH
            for name, g in ((b"then_branch", graph), (b"else_branch", branch(f"e{k}", k).SerializeToString()))
        )
        node = _field(1, b"c") + _field(2, f"o{k}".encode()) + _field(4, b"If") + attrs
        inner = _field(1, node)
        graph = inner + _field(12, H.make_tensor_value_info(f"o{k}", TP.FLOAT, [2]).SerializeToString())
    top = model(H.make_graph(
        [H.make_node("Greater", ["x0", "z"], ["c"])], "top",
        [H.make_tensor_value_info("x", TP.FLOAT, [2]), H.make_tensor_value_info("x0", TP.FLOAT, [])],
        [H.make_tensor_value_info(f"o{depth}", TP.FLOAT, [2])], [N.from_array(np.array(0, np.float32), "z")],
    ))  # fmt: skip
    graph_bytes = top.graph.SerializeToString() + inner  # the outermost If joins the top graph's nodes
    top.ClearField("graph")
    return top.SerializeToString() + _field(7, graph_bytes)
