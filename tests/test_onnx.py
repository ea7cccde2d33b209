"""trtdsl.onnx.parse: torchvision models exported to ONNX, parsed by TensorRT's parser, adopted as a Network.

The interpreter must match ONNX Runtime on the parsed network, and a DSL edit
(every ReLU swapped for an exact GELU) must show in the outputs as the same edit
made to the PyTorch module does (torch CPU is the reference; torch is test-only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import trtdsl
import trtdsl.onnx
from trtdsl import Tensor, golden, ops, reference, rewrite
from trtdsl.golden import Tolerance

from ._onnx_models import INPUT, MODELS, OUTPUT, example, export, onnxruntime_run

pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("trt")


def _tol(expected: np.ndarray) -> Tolerance:
    return Tolerance(atol=1e-5 * max(float(np.abs(expected).max()), 1.0), rtol=1e-4)


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx_parse")
    cache: dict[tuple[str, bool], Path] = {}

    def get(name: str, dynamic: bool = False) -> Path:
        if (name, dynamic) not in cache:
            cache[name, dynamic] = export(name, d / f"{name}_{dynamic}.onnx", dynamic_batch=dynamic)
        return cache[name, dynamic]

    return get


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "vit"])
def test_parse_matches_onnxruntime(onnx_files, name):
    path = onnx_files(name)
    net = trtdsl.onnx.parse(path)
    assert isinstance(net, trtdsl.Network)
    assert list(net.input_specs) == [INPUT] and list(net.outputs) == [OUTPUT]
    assert net.input_specs[INPUT] == MODELS[name].shape
    x = example(MODELS[name])
    expected = onnxruntime_run(path, {INPUT: x})[OUTPUT]
    got = reference.run(net, {INPUT: x})[OUTPUT]
    report = golden.compare({OUTPUT: got}, {OUTPUT: expected}, _tol(expected))
    assert report.ok, str(report)


def test_dynamic_batch_becomes_a_named_dim_that_needs_a_range(onnx_files):
    path = onnx_files("resnet18", True)
    net = trtdsl.onnx.parse(path)
    assert net.input_specs[INPUT] == ("batch", 3, 64, 64)
    x = example(MODELS["resnet18"], batch=3)
    with pytest.raises(trtdsl.ProfileError, match=r"dim 'batch' \(used by input 'input'\) has no range"):
        reference.run(net, {INPUT: x})
    with pytest.raises(trtdsl.ProfileError, match="dim 'batch'"):
        trtdsl.build(net)
    net.dim("batch", 1, 2, 4)
    expected = onnxruntime_run(path, {INPUT: x})[OUTPUT]
    assert golden.compare({OUTPUT: reference.run(net, {INPUT: x})[OUTPUT]}, {OUTPUT: expected}, _tol(expected)).ok
    plan = trtdsl.build(net)
    assert plan.inputs[INPUT].shape == ("batch", 3, 64, 64)
    assert plan.profiles[0].ranges == {"batch": (1, 2, 4)}
    with pytest.raises(trtdsl.ProfileError, match="batch"):
        reference.run(net, {INPUT: example(MODELS["resnet18"], batch=5)})


def test_dims_given_to_parse_and_unknown_dims_refused(onnx_files):
    path = onnx_files("resnet18", True)
    net = trtdsl.onnx.parse(path, dims={"batch": (1, 4, 8)})
    assert net.profiles()[0].ranges == {"batch": (1, 4, 8)}
    with pytest.raises(trtdsl.ProfileError, match=r"'bach'.*Did you mean 'batch'"):
        trtdsl.onnx.parse(path, dims={"bach": (1, 4, 8)})


def test_layers_are_found_by_name(onnx_files):
    net = trtdsl.onnx.parse(onnx_files("resnet18"))
    names = [layer.name for layer in net.layers()]
    assert "/layer1/layer1.0/conv1/Conv" in names
    assert not any(n.startswith("(Unnamed Layer") for n in names)
    assert net.layer("/layer1/layer1.0/conv1/Conv").type.name == "CONVOLUTION"
    with pytest.raises(trtdsl.TrtdslError, match=r"no layer '/layer1/layer1.0/conv9/Conv'.*Did you mean"):
        net.layer("/layer1/layer1.0/conv9/Conv")


def test_readable_scope_names(onnx_files):
    net = trtdsl.onnx.parse(onnx_files("resnet18"))
    x = example(MODELS["resnet18"])
    before = reference.run(net, {INPUT: x})[OUTPUT]
    renamed = rewrite.rename_layers(net, rewrite.onnx_scope_names(net))
    assert renamed["/layer1/layer1.0/conv1/Conv"] == "layer1.0.conv1"
    assert renamed["/layer1/layer1.0/Add"] == "layer1.0.add"
    assert renamed["/layer1/layer1.0/relu_1/Relu"] == "layer1.0.relu_1"
    assert renamed["/conv1/Conv"] == "conv1" and renamed["/avgpool/GlobalAveragePool"] == "avgpool"
    assert len(set(renamed.values())) == len(renamed)  # no two layers asked for the same name
    assert net.tensor("layer1.0.conv1.out").trt is net.layer("layer1.0.conv1").get_output(0)
    assert list(net.outputs) == [OUTPUT]  # network outputs keep their names
    np.testing.assert_array_equal(reference.run(net, {INPUT: x})[OUTPUT], before)


def _swap_relus_for_gelu(net: trtdsl.Network) -> int:
    # A downcast IActivationLayer's .type is its ActivationType (it shadows ILayer.type).
    relus = [layer for layer in net.layers() if layer.name.endswith("/Relu")]
    assert all(layer.type.name == "RELU" for layer in relus)
    for layer in relus:
        x, y = Tensor(layer.get_input(0), net), Tensor(layer.get_output(0), net)
        rewrite.replace_subgraph(net, x, y, lambda t, n=layer.name: ops.gelu(t, name=n + ".gelu"))
    return len(relus)


def test_activation_swap_matches_the_same_edit_in_pytorch(onnx_files):
    import torch

    net = trtdsl.onnx.parse(onnx_files("resnet18"))
    assert _swap_relus_for_gelu(net) == 17  # the stem, two per basic block (8 blocks)
    x = example(MODELS["resnet18"])
    model = MODELS["resnet18"].make()
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(parent, child_name, torch.nn.GELU())
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
        unedited = MODELS["resnet18"].make()(torch.from_numpy(x)).numpy()
    got = reference.run(net, {INPUT: x})[OUTPUT]
    assert golden.compare({OUTPUT: got}, {OUTPUT: expected}, _tol(expected)).ok
    assert np.abs(expected - unedited).max() > 100 * _tol(expected).atol  # the edit is visible
    plan = trtdsl.build(net)  # dead ReLUs left behind do not stop the build
    assert plan.outputs[OUTPUT].dtype == "float32"


def test_parser_errors_are_reported(tmp_path):
    from onnx import TensorProto, helper

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not a model")
    with pytest.raises(trtdsl.onnx.OnnxParseError, match=r"not an ONNX model \(a malformed protobuf\): field 12"):
        trtdsl.onnx.parse(bad)  # trtdsl's own check of the wire format, before TensorRT reads it
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"], name="odd")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )  # fmt: skip
    bad.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(trtdsl.onnx.OnnxParseError, match=r"ONNX parser.*refused .*bad.onnx.*node 'odd', NoSuchOp"):
        trtdsl.onnx.parse(bad)
    with pytest.raises(trtdsl.onnx.OnnxParseError, match="no ONNX file"):
        trtdsl.onnx.parse(tmp_path / "missing.onnx")


def _external_model(folder, location: str):
    """A MatMul model whose weight lives in an external-data file at ``location``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(3, 4), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [w],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(folder / "good.onnx"), save_as_external_data=True, location="w.bin", size_threshold=0)
    bad = onnx.load(str(folder / "good.onnx"), load_external_data=False)
    for entry in bad.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    (folder / "bad.onnx").write_bytes(bad.SerializeToString())
    return folder / "good.onnx", folder / "bad.onnx"


def test_external_data_is_read_from_the_models_folder_only(tmp_path):
    pytest.importorskip("onnx")
    (tmp_path / "model").mkdir()
    (tmp_path / "outside").mkdir()
    np.full(12, 7, np.float32).tofile(tmp_path / "outside" / "secret.bin")
    x = np.ones((2, 3), np.float32)
    good, escape = _external_model(tmp_path / "model", "../outside/secret.bin")
    np.testing.assert_array_equal(
        reference.run(trtdsl.onnx.parse(good), {"x": x})["y"], x @ np.arange(12.0).reshape(3, 4)
    )
    with pytest.raises(trtdsl.onnx.OnnxParseError, match=r"refused .*bad.onnx.*(parent|initializer)"):
        trtdsl.onnx.parse(escape)
    _, absolute = _external_model(tmp_path / "model", str(tmp_path / "outside" / "secret.bin"))
    with pytest.raises(trtdsl.onnx.OnnxParseError, match="initializer"):
        trtdsl.onnx.parse(absolute)  # resolved below the model's folder, where it does not exist
    with pytest.raises(trtdsl.onnx.OnnxParseError, match="is a directory"):
        trtdsl.onnx.parse(tmp_path)
