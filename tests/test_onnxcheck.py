"""Hostile ONNX files: ``trtdsl.onnx.parse`` gives the file's network or an OnnxParseError, never a crash,
a hang, another exception, a read outside the model's folder, or a network other than the file's.

Every parse of a hostile file runs in the parse server (tests/_onnx_parseserver.py), so a crash or
a hang of TensorRT's C++ parser fails the test instead of killing pytest. Each regression test says
what tensorrt_rtx 1.7 did with its inputs before trtdsl/onnxcheck.py refused them.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import numpy as np
import pytest

import trtdsl
import trtdsl.onnx
from trtdsl import onnxcheck, reference

onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402

from ._mutations import mutations, scattered  # noqa: E402
from ._onnx_hostile import SEEDS, W, matmul, nested_ifs, save_external, scan8, with_external  # noqa: E402
from ._onnx_parseserver import ParseServer  # noqa: E402

pytestmark = pytest.mark.usefixtures("trt")


@pytest.fixture(scope="module")
def server():
    s = ParseServer()
    yield s
    s.close()


def _write(folder: Path, name: str, m) -> Path:
    path = folder / f"{name}.onnx"
    path.write_bytes(m if isinstance(m, bytes) else m.SerializeToString())
    return path


def _refused(server: ParseServer, path: Path, pattern: str) -> str:
    result = server.parse(path)
    assert result.get("error") == "OnnxParseError", result
    assert re.search(pattern, result["message"]), result["message"]
    return result["message"]


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_seeds_are_valid_models_that_parse(seed, tmp_path):
    m = SEEDS[seed]()
    onnx.checker.check_model(m, full_check=True)
    net = trtdsl.onnx.parse(_write(tmp_path, seed, m))  # in-process: a valid file
    assert list(net.input_specs) == [i.name for i in m.graph.input]
    assert list(net.outputs) == [o.name for o in m.graph.output]


@pytest.mark.parametrize(
    ("seed", "node", "pattern"),
    [("matmul", 1, r"node 1 \('add', Add\) in graph 'mm' has no outputs"),
     ("conv", 0, r"node 0 \('conv', Conv\) in graph 'conv' has no outputs"),
     ("control", 2, r"node 2 \('if', If\) in graph 'ctl' has no outputs"),
     ("control", 3, r"node 3 \('loop', Loop\) in graph 'ctl' has no outputs")],
)  # fmt: skip
def test_a_node_without_outputs_is_refused(server, tmp_path, seed, node, pattern):
    # Before: SIGSEGV in TensorRT's parser, whatever the op.
    m = SEEDS[seed]()
    del m.graph.node[node].output[:]
    _refused(server, _write(tmp_path, seed, m), "refused .* before TensorRT's parser read it: " + pattern)


def _body(m, node: int):
    return next(a for a in m.graph.node[node].attribute if a.name == "body")


@pytest.mark.parametrize(
    ("seed", "node", "edit", "pattern"),
    [("control", 3, lambda a: a.g.ClearField("output"), r"body graph has 3 inputs and 0 outputs; the node's 3 "
                                                         r"inputs and 1 outputs need 3 and 2"),
     ("control", 3, lambda a: a.g.ClearField("input"), r"body graph has 0 inputs and 2 outputs"),
     ("control", 3, lambda a: a.g.input.pop(), r"body graph has 2 inputs"),
     ("control", 3, lambda a: a.ClearField("g"), r"attribute 'body' is typed as a graph but holds none"),
     ("scan", 0, lambda a: a.g.ClearField("output"), r"node 0 \('scan', Scan\).*body graph has 2 inputs and 0 outputs"),
     ("scan", 0, lambda a: a.g.ClearField("input"), r"body graph has 0 inputs"),
     ("scan", 0, lambda a: a.ClearField("g"), r"attribute 'body' is typed as a graph but holds none")],
)  # fmt: skip
def test_loop_and_scan_bodies_must_fit_their_node(server, tmp_path, seed, node, edit, pattern):
    # Before: SIGSEGV for each of these bodies (unset, or fewer inputs/outputs than the node passes).
    m = SEEDS[seed]()
    edit(_body(m, node))
    _refused(server, _write(tmp_path, seed, m), pattern)


def _trip_count(name: str, tensor=None):
    m = SEEDS["control"]()  # node 3 is the Loop; 'n' (an int64 scalar initializer) its trip count
    if tensor is not None:
        m.graph.initializer.append(numpy_helper.from_array(tensor, name))
    m.graph.node[3].input[0] = name
    return m


def test_a_loop_trip_count_that_is_not_a_scalar_is_refused(server, tmp_path):
    # Before: SIGSEGV when M holds 2 values (an initializer, a graph input or a computed tensor).
    path = _write(tmp_path, "m_init", _trip_count("m2", np.array([3, 3], np.int64)))
    pattern = (
        r"node 3 \('loop', Loop\) in graph 'ctl': the trip count M 'm2' has rank 1 \(2 values\); expected a scalar"
    )
    _refused(server, path, pattern)
    _refused(server, _write(tmp_path, "m_input", _trip_count("x")), r"the trip count M 'x' has rank 1 \(2 values\)")
    # Computed: only the parser knows its shape, so the file is parsed in a child process first.
    message = _refused(server, _write(tmp_path, "m_computed", _trip_count("z")), r"crashed \(SIGSEGV\)")
    assert "in a child process (parsed there first because node 3 ('loop', Loop) in graph 'ctl': " in message
    assert "the trip count M 'z' is computed)" in message


def _one_node(node, inits, inputs=(("x", [2, 3]),)):
    graph = helper.make_graph(
        [node], "one", [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(
    ("node", "inits", "pattern"),
    [(helper.make_node("TopK", ["x", "k"], ["y", "i"], axis=1), {"k": np.array([2, 2], np.int64)},
      r"node 0 \(TopK\) in graph 'one': K 'k' has rank 1 \(2 values\); expected one value"),
     (helper.make_node("TopK", ["x", "k"], ["y", "i"], axis=1), {"k": np.zeros(0, np.int64)}, r"K 'k' has rank 1 \(0 values\)"),
     (helper.make_node("TopK", ["x", "x"], ["y", "i"], axis=1), {}, r"K 'x' has rank 2 \(6 values\)"),
     (helper.make_node("GatherND", ["x", "i"], ["y"]), {"i": np.array(0, np.int64)},
      r"node 0 \(GatherND\) in graph 'one': the indices 'i' has rank 0 \(1 values\); expected rank 1 or more"),
     (helper.make_node("ConstantOfShape", ["i"], ["y"]), {"i": np.array(2, np.int64)},
      r"node 0 \(ConstantOfShape\) in graph 'one': the shape 'i' has rank 0 \(1 values\); expected rank 1")],
)  # fmt: skip
def test_op_inputs_the_parser_reads_unchecked_must_have_their_shape(server, tmp_path, node, inits, pattern):
    # Before: SIGSEGV (found by swapping op types and inputs of the seeds at random).
    _refused(server, _write(tmp_path, "op", _one_node(node, inits)), pattern)
    ok = {"TopK": {"k": np.array([2], np.int64)}, "GatherND": {"i": np.array([[0, 1]], np.int64)}}
    node = copy.deepcopy(node)
    fine = ok.get(node.op_type, {"i": np.array([2, 3], np.int64)})
    node.input[-1] = next(iter(fine))
    assert "ok" in server.parse(_write(tmp_path, "fine", _one_node(node, fine)))


@pytest.mark.parametrize(
    ("node", "pattern"),
    [(helper.make_node("Clip", ["x", "", "", "x"], ["y"]), r"node 0 \(Clip\) in graph 'one' has 4 inputs; Clip takes 1 to 3"),
     (helper.make_node("Add", ["x"], ["y"]), r"node 0 \(Add\) in graph 'one' has 1 inputs; Add takes 2"),
     (helper.make_node("Mul", ["x", "x", "x"], ["y"]), r"has 3 inputs; Mul takes 2")],
)  # fmt: skip
def test_ops_given_the_wrong_number_of_inputs_are_refused(server, tmp_path, node, pattern):
    # Before: Clip with a 4th input crashed the parser (SIGSEGV); Add(x) and Mul(x, x, x) parsed.
    _refused(server, _write(tmp_path, "arity", _one_node(node, {})), pattern)


def test_a_computed_shape_is_parsed_in_a_child_unless_its_rank_is_known(server, tmp_path):
    def model(first):
        m = _one_node(first, {})
        m.graph.node.extend([
            helper.make_node("Cast", [first.output[0]], ["s64"], to=onnx.TensorProto.INT64),
            helper.make_node("ConstantOfShape", ["s64"], ["y"]),
        ])  # fmt: skip
        m.graph.output[0].name = "y"
        return m

    scalar = model(helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0))
    message = _refused(server, _write(tmp_path, "scalar", scalar), r"crashed \(SIGSEGV\) parsing .* in a child process")
    assert "node 2 (ConstantOfShape) in graph 'one': the shape 's64' is computed" in message
    path = _write(tmp_path, "shape", model(helper.make_node("Shape", ["x"], ["s"])))  # rank 1: no child parse
    assert onnxcheck.check(path) == []
    assert server.parse(path)["ok"]["outputs"] == {"y": [2, 3]}


def test_a_computed_trip_count_that_is_valid_parses(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    m = SEEDS["control"]()
    m.graph.node.insert(3, helper.make_node("Cast", ["s"], ["s64"], to=onnx.TensorProto.INT64, name="cast"))
    m.graph.node[4].input[0] = "s64"  # loop int(sum(x)) times
    onnx.checker.check_model(m)
    path = _write(tmp_path, "cast", m)
    x = np.array([1, 2], np.float32)
    (expected,) = ort.InferenceSession(str(path)).run(None, {"x": x})
    for isolate in (None, True, False):  # None: parsed in a child process first, as the trip count is computed
        net = trtdsl.onnx.parse(path, isolate=isolate)
        np.testing.assert_array_equal(reference.run(net, {"x": x})["y"], expected)


def _scan_attribute(name: str, value):
    m = SEEDS["scan"]()
    attrs = m.graph.node[0].attribute
    kept = [a for a in attrs if a.name != name]
    del attrs[:]
    attrs.extend([*kept, *([helper.make_attribute(name, value)] if value is not None else [])])
    return m


@pytest.mark.parametrize(
    ("name", "value", "pattern"),
    [("num_scan_inputs", 0, r"num_scan_inputs is 0; expected 1..2"),
     ("num_scan_inputs", None, r"num_scan_inputs is 0"),
     ("scan_input_axes", [0, 0], r"scan_input_axes has 2 values; expected 1"),
     ("scan_output_directions", [7], r"scan_output_directions are \[7\]; expected 0 \(forward\) or 1")],
)  # fmt: skip
def test_scan_attributes_must_fit_its_inputs(server, tmp_path, name, value, pattern):
    # Before: num_scan_inputs 0 (or unset) crashed the parser (SIGSEGV; a one-bit flip found it);
    # lists of the wrong length and directions other than 0/1 were parsed without a word.
    _refused(server, _write(tmp_path, "scan", _scan_attribute(name, value)), r"node 0 \('scan', Scan\).*" + pattern)


def test_scan_8_passes_sequence_lens_first_and_parses(tmp_path):
    # A false refusal once: Scan-8's first input (sequence_lens) is not a body input.
    m = scan8()
    onnx.checker.check_model(m, full_check=True)
    net = trtdsl.onnx.parse(_write(tmp_path, "scan8", m))
    xs = np.arange(6, dtype=np.float32).reshape(1, 3, 2)
    got = reference.run(net, {"s0": np.zeros((1, 2), np.float32), "xs": xs})
    np.testing.assert_array_equal(got["ys"], np.cumsum(xs, axis=1))
    np.testing.assert_array_equal(got["s"], xs.sum(axis=1))


def test_external_data_that_is_not_a_regular_file_is_refused_without_opening_it(server, tmp_path):
    # Before: a FIFO hung the parser forever in open(); a directory or device it refused itself.
    base = save_external(tmp_path)
    os.mkfifo(tmp_path / "fifo.bin")
    (tmp_path / "adir").mkdir()
    for location in ("fifo.bin", "adir"):
        path = _write(tmp_path, location, with_external(base, location=location))
        _refused(server, path, rf"initializer 'W': external data location '{location}' is not a regular file")


def test_external_data_through_a_link_out_of_the_folder_is_refused(server, tmp_path):
    # Before: the parser followed the link and built the network from the other file's bytes.
    (tmp_path / "outside").mkdir()
    np.full(12, 7, np.float32).tofile(tmp_path / "outside" / "secret.bin")
    folder = tmp_path / "model"
    base = save_external(folder)
    (folder / "link.bin").symlink_to(tmp_path / "outside" / "secret.bin")
    (folder / "linkdir").symlink_to(tmp_path / "outside")
    (folder / "zero.bin").symlink_to("/dev/zero")
    for location in ("link.bin", "linkdir/secret.bin", "zero.bin"):
        path = _write(folder, location.replace("/", "_"), with_external(base, location=location))
        _refused(server, path, rf"external data location '{location}' is a link to '.*', outside the model's folder")
    for location in ("../outside/secret.bin", str(tmp_path / "outside" / "secret.bin")):
        path = _write(folder, "escape", with_external(base, location=location))
        _refused(server, path, r"external data location .* leaves the model's folder \(absolute, or a parent '..'")


def test_linked_model_and_data_side_by_side_parse(tmp_path):
    # A Hugging Face cache links snapshots/<rev>/{model.onnx, w.bin} to blobs/ side by side: allowed.
    save_external(tmp_path / "blobs")
    snap = tmp_path / "snapshots" / "rev"
    snap.mkdir(parents=True)
    (snap / "model.onnx").symlink_to(tmp_path / "blobs" / "ext.onnx")
    (snap / "w.bin").symlink_to(tmp_path / "blobs" / "w.bin")
    net = trtdsl.onnx.parse(snap / "model.onnx", dims={"batch": (1, 2, 4)})
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(reference.run(net, {"x": x})["y"], x @ W + 1)


@pytest.mark.parametrize(
    ("entries", "pattern"),
    [({"offset": "abc"}, r"external data offset 'abc' is not a non-negative integer"),
     ({"length": "-1"}, r"external data length '-1' is not a non-negative integer"),
     ({"offset": str(2**70)}, r"external data offset '1180591620717411303424' is not"),
     ({"offset": "1000000"}, r"external data \[1000000, 1000048\) lies past the end of 'w.bin' \(64 bytes\)"),
     ({"length": str(2**62)}, r"external data \[0, 4611686018427387904\) lies past the end"),
     ({"location": None}, r"external data location '': expected a file name")],
)  # fmt: skip
def test_external_data_span_must_be_numbers_inside_the_file(server, tmp_path, entries, pattern):
    # Before: offset 'abc' was read as 0 and the parse succeeded; the others TensorRT refused itself.
    path = _write(tmp_path, "span", with_external(save_external(tmp_path), **entries))
    _refused(server, path, "initializer 'W': " + pattern)


def _conv_attribute(name: str, value):
    m = SEEDS["conv"]()
    attrs = m.graph.node[0].attribute
    kept = [a for a in attrs if a.name != name]
    del attrs[:]
    attrs.extend([*kept, helper.make_attribute(name, value)])
    return m


def _input_dim(value: int):
    m = matmul()
    dim = m.graph.input[0].type.tensor_type.shape.dim[0]
    dim.ClearField("dim_param")
    dim.dim_value = value
    return m


@pytest.mark.parametrize(
    ("model", "pattern"),
    [(lambda: _input_dim(2**40), r"input 'x' of graph 'mm': dim 0 is 1099511627776; expected a size 0..2147483647"),
     (lambda: _input_dim(2**63 - 1), r"dim 0 is 9223372036854775807"),
     (lambda: _input_dim(-5), r"dim 0 is -5"),
     (lambda: _conv_attribute("pads", [2**32 + 1] * 4), r"attribute 'pads' holds 4294967297, outside int32"),
     (lambda: _conv_attribute("group", 2**32 + 1), r"attribute 'group' holds 4294967297"),
     (lambda: _conv_attribute("pads", [-(2**32) + 1] * 4), r"attribute 'pads' holds -4294967295")],
)  # fmt: skip
def test_dims_and_int_attributes_past_int32_are_refused(server, tmp_path, model, pattern):
    # Before: parsed, wrapped to int32: a 2**40 batch became 0, 2**63-1 became dynamic, pads 2**32+1 became 1.
    _refused(server, _write(tmp_path, "wide", model()), pattern)


def test_int64_attributes_that_mean_to_the_end_still_parse(tmp_path):
    m = matmul()  # opset 9 Slice takes starts/ends as attributes; INT64_MAX means "to the end"
    m.graph.node.append(helper.make_node("Slice", ["y"], ["r"], starts=[1], ends=[2**63 - 1], axes=[1]))
    m.graph.output[0].name = "r"
    m.opset_import[0].version = 9
    net = trtdsl.onnx.parse(_write(tmp_path, "slice", m), dims={"batch": (1, 2, 4)})
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(reference.run(net, {"x": x})["r"], (x @ W + 1)[:, 1:])


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [(lambda b: b.replace(b"batch", b"b\xe8tch"), r"the name of dim 0 of 'x' in graph 'mm' is not UTF-8 text"),
     (lambda b: b.replace(b"\x12\x01m", b"\x12\x01\xe6"), r"an output name of node 0 in graph 'mm' is not UTF-8")],
)  # fmt: skip
def test_names_that_are_not_utf8_are_refused(server, tmp_path, edit, pattern):
    # Before: UnicodeDecodeError from the bindings (reading a dim name in adopt, a node name in an error).
    data = edit(matmul().SerializeToString())
    _refused(server, _write(tmp_path, "utf8", data), pattern)


def test_subgraphs_nested_too_deeply_are_refused(server, tmp_path):
    ok = server.parse(_write(tmp_path, "nest10", nested_ifs(10)))
    assert "ok" in ok and list(ok["ok"]["outputs"]) == ["o10"], ok
    _refused(server, _write(tmp_path, "nest1000", nested_ifs(1000)), r"subgraphs nest more than 32 levels deep")


def _raw_parse(trt, path: Path) -> tuple[list[str], list[str]]:
    """What TensorRT's own parser makes of ``path``, unchecked: output names and layer types."""
    logger = trt.Logger(trt.Logger.INTERNAL_ERROR)
    net = trt.Builder(logger).create_network(0)
    parser = trt.OnnxParser(net, logger)
    assert parser.parse_from_file(str(path)), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    outputs = [net.get_output(i).name for i in range(net.num_outputs)]
    return outputs, [str(net.get_layer(i).type).rsplit(".", 1)[-1] for i in range(net.num_layers)]


def _unary(op: str, domain: str = "", functions=()):
    nodes = [helper.make_node(op, ["x"], ["y"], name="n", domain=domain)]
    m = _one_node(nodes[0], {})
    m.opset_import.extend([helper.make_opsetid(domain, 1)] if domain else [])
    m.functions.extend(functions)
    return m


def _negation(domain: str, name: str):
    """A local function ``domain::name`` whose body is Neg."""
    body = [helper.make_node("Neg", ["a"], ["b"])]
    return helper.make_function(domain, name, ["a"], ["b"], body, [helper.make_opsetid("", 17)])


def test_a_graph_output_listed_twice_is_refused(server, tmp_path, trt):
    m = _one_node(helper.make_node("Relu", ["x"], ["r"]), {})
    m.graph.node.append(helper.make_node("Neg", ["x"], ["n"]))
    del m.graph.output[:]
    m.graph.output.extend([helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [2, 3]) for n in ("r", "n", "r")])
    onnx.checker.check_model(m)  # valid ONNX, and onnxruntime returns all three
    path = _write(tmp_path, "twice", m)
    # Before: parsed with success (logging "already set as network-level output"), two outputs of three.
    assert _raw_parse(trt, path)[0] == ["r", "n"]
    _refused(server, path, r"graph 'one' lists output 'r' twice \(outputs 0 and 2\); .* the 3 the model declares")
    # Listed once each, or twice by a subgraph (an If's two outputs may be one tensor of a branch): parsed.
    del m.graph.output[2]
    assert "ok" in server.parse(_write(tmp_path, "once", m))
    assert "ok" in server.parse(_write(tmp_path, "nest", nested_ifs(2)))


@pytest.mark.parametrize(
    ("model", "pattern"),
    [(lambda: _unary("Relu", "custom"), r"node 0 \('n', Relu\) in graph 'one' is Relu of domain 'custom', but "
      r"TensorRT's parser ignores the domain and would build ONNX Relu: set its domain to '' .* an op type of its own"),
     (lambda: _unary("Relu", "com.microsoft"), r"is Relu of domain 'com.microsoft'"),
     (lambda: _unary("Relu", "trt.plugins"), r"is Relu of domain 'trt.plugins'"),
     (lambda: _unary("Relu", "local", [_negation("local", "Relu")]),
      r"node 0 \('n', Relu\) in graph 'one' calls the model's local function local::Relu, but TensorRT's parser "
      r"would build ONNX Relu: rename the function")],
)  # fmt: skip
def test_a_node_of_another_domain_named_like_an_onnx_op_is_refused(server, tmp_path, trt, model, pattern):
    path = _write(tmp_path, "foreign", model())
    # Before: each parsed as the ONNX op (an activation layer), the local function's Neg unread.
    assert _raw_parse(trt, path)[1] == ["ACTIVATION"]
    _refused(server, path, pattern)


def test_plugins_ai_onnx_and_local_functions_of_their_own_names_pass(server, tmp_path):
    # A plugin is found by op type in any domain: TensorRT's parser, not trtdsl, says this one is missing.
    plugin = server.parse(_write(tmp_path, "plugin", _unary("MyPlugin_TRT", "trt.plugins")))
    assert plugin.get("error") == "OnnxParseError" and "Plugin not found" in plugin["message"], plugin
    assert "trtdsl refused" not in plugin["message"]
    assert onnxcheck.check(_write(tmp_path, "ml", _unary("Normalizer", "ai.onnx.ml"))) == []
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    explicit = trtdsl.onnx.parse(_write(tmp_path, "explicit", _unary("Relu", "ai.onnx")))
    np.testing.assert_array_equal(reference.run(explicit, {"x": x})["y"], np.maximum(x, 0))
    local = trtdsl.onnx.parse(_write(tmp_path, "local", _unary("Negate", "local", [_negation("local", "Negate")])))
    np.testing.assert_array_equal(reference.run(local, {"x": x})["y"], -x)
    # ONNX Runtime's com.microsoft Gelu means ONNX Gelu (erf form): parsed, and equal to onnxruntime's run.
    ort = pytest.importorskip("onnxruntime")
    gelu = _write(tmp_path, "msgelu", _unary("Gelu", "com.microsoft"))
    expected = ort.InferenceSession(str(gelu), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = reference.run(trtdsl.onnx.parse(gelu), {"x": x})["y"]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def _seed_files(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    files = {name: _write(folder, name, make()) for name, make in sorted(SEEDS.items())}
    save_external(folder / "ext")
    files["external"] = folder / "ext" / "ext.onnx"
    return files


@pytest.mark.parametrize("n", [160, pytest.param(2000, marks=pytest.mark.slow, id="slow")])
def test_mutations_parse_or_raise_onnx_parse_error(server, tmp_path, n):
    failures, outcomes = [], {"ok": 0, "error": 0}
    for seed, path in _seed_files(tmp_path / "seeds").items():
        data = path.read_bytes()
        cases = [*mutations(data, n, seed=len(data)), *scattered(data, n // 4, seed=len(data))]
        for label, mutated in cases:
            case = path.with_name(f"case-{label}.onnx")  # beside the seed: external data resolves
            case.write_bytes(mutated)
            result = server.parse(case)
            case.unlink()
            kind = next((k for k in ("ok", "error") if k in result), None)
            if kind is None or (kind == "error" and result["error"] != "OnnxParseError"):
                keep = tmp_path.parent / f"onnx-fuzz-failure-{seed}-{label}.onnx"
                keep.write_bytes(mutated)
                failures.append(f"{seed} {label}: {str(result)[:300]} (input kept at {keep})")
            else:
                outcomes[kind] += 1
    assert not failures, "\n".join(failures[:10])
    assert outcomes["error"] > outcomes["ok"] > 0  # the mutations reach both outcomes
