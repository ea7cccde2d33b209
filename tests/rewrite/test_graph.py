"""trtdsl.rewrite: renames, subgraph replacement and precision regions on DSL and ONNX networks."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
import trtdsl.onnx
from trtdsl import golden, ops, reference, rewrite
from trtdsl.golden import Tolerance

pytestmark = pytest.mark.usefixtures("trt")


def _convnet(rng, dtype="float32", fp16_middle=False):
    """conv -> relu -> conv -> relu -> conv, optionally with the middle conv in an fp16 scope."""
    r = np.random.default_rng(0)
    ws = [r.standard_normal(s).astype(np.float32) * 0.3 for s in ((8, 3, 3, 3), (8, 8, 3, 3), (4, 8, 1, 1))]
    net = trtdsl.Network("c", dtype=dtype)
    x = net.input("x", "float32", (2, 3, 8, 8))
    with net.scope("a"):
        h = ops.relu(ops.conv2d(x, ws[0], padding=1))
    with net.scope("b"):
        if fp16_middle:
            with net.precision("float16"):
                h = ops.relu(ops.conv2d(h, ws[1], np.ones(8, np.float32), padding=1))
        else:
            h = ops.relu(ops.conv2d(h, ws[1], np.ones(8, np.float32), padding=1))
    with net.scope("c"):
        y = ops.conv2d(h, ws[2])
    net.output(y, "y")
    return net


def test_rename_layer_and_tensor_keep_the_network_working(rng):
    net = _convnet(rng)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    before = reference.run(net, {"x": x})["y"]
    rewrite.rename_layer(net, "b.conv2d", "middle.conv")
    rewrite.rename_tensor(net, "b.conv2d.out", "middle.conv.out")
    rewrite.rename_tensor(net, "x", "images")
    rewrite.rename_tensor(net, "y", "logits")
    assert net.layer("middle.conv").type.name == "CONVOLUTION"
    assert net.producer("middle.conv.out").name == "middle.conv"
    assert list(net.input_specs) == ["images"] and list(net.outputs) == ["logits"]
    np.testing.assert_array_equal(reference.run(net, {"images": x})["logits"], before)
    with pytest.raises(trtdsl.TrtdslError, match="already used"):
        rewrite.rename_layer(net, "a.conv2d", "middle.conv")
    with pytest.raises(trtdsl.TrtdslError, match=r"no layer 'middle.cnv'.*Did you mean 'middle.conv'"):
        rewrite.rename_layer(net, "middle.cnv", "z")
    with pytest.raises(trtdsl.TrtdslError, match=r"no layer 'b.relx'.*Did you mean 'b.relu'"):
        rewrite.rename_layers(net, {"b.relx": "q"})
    done = rewrite.rename_tensors(net, {"images": "input_1", "a.relu.out": "features"})
    assert done == {"images": "input_1", "a.relu.out": "features"}
    assert list(net.input_specs) == ["input_1"] and net.producer("features").name == "a.relu"
    np.testing.assert_array_equal(reference.run(net, {"input_1": x})["logits"], before)
    with pytest.raises(trtdsl.TrtdslError, match=r"no tensor 'a.relu.outt'.*Did you mean"):
        rewrite.rename_tensors(net, {"a.relu.outt": "z"})


def test_replace_subgraph_of_an_output_and_between_unrelated_tensors(rng):
    net = _convnet(rng)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    h = net.tensor("b.relu.out")
    caps = reference.run(net, {"x": x}, capture="b.relu.out")
    # Replace the head (the output) by another 1x1 conv and a sigmoid, reading the same tensor.
    w = rng.standard_normal((4, 8, 1, 1)).astype(np.float32)
    new = rewrite.replace_subgraph(net, h, "y", lambda t: ops.sigmoid(ops.conv2d(t, w, name="head2")))
    assert new.name == "y" and list(net.outputs) == ["y"]
    got = reference.run(net, {"x": x})["y"]
    want = 1 / (1 + np.exp(-np.einsum("kc,nchw->nkhw", w[:, :, 0, 0].astype(np.float64), caps["b.relu.out"])))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    plan = trtdsl.build(net)
    assert plan.outputs["y"].shape == (2, 4, 8, 8)
    with pytest.raises(trtdsl.TrtdslError, match="does not depend on"):
        rewrite.replace_subgraph(net, "y", "b.relu.out", ops.relu)
    other = trtdsl.Network("other")
    stray = ops.relu(other.input("z", "float32", (2, 4, 8, 8)))
    with pytest.raises(trtdsl.TrtdslError, match="of network 'other', not of 'c'"):
        rewrite.replace_subgraph(net, h, "y", lambda t: stray)
    with pytest.raises(trtdsl.TrtdslError, match="must return a trtdsl.Tensor, got int"):
        rewrite.replace_subgraph(net, h, "y", lambda t: 3)
    with pytest.raises(trtdsl.ShapeError, match="new tensor has shape"):
        rewrite.replace_subgraph(net, h, "y", lambda t: ops.mean(t, dim=1, keepdim=True))


def test_layers_between_lists_the_region_in_order(rng):
    net = _convnet(rng)
    names = [layer.name for layer in rewrite.layers_between(net, "a.relu.out", "b.relu.out")]
    assert names == ["b.conv2d", "b.relu"]


def test_set_precision_equals_the_dsl_precision_scope(rng):
    """The rewrite gives the same types (and so the same numbers) as writing the block in an fp16 scope."""
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    written = _convnet(rng, fp16_middle=True)
    net = _convnet(rng)
    out = rewrite.set_precision(net, "a.relu.out", "b.relu.out", "float16")
    assert out.dtype == "float32"
    conv = net.layer("b.conv2d")
    assert conv.kernel.dtype == np.float16 and conv.bias.dtype == np.float16
    assert trtdsl.Tensor(conv.get_input(0), net).dtype == "float16"
    got, want = reference.run(net, {"x": x})["y"], reference.run(written, {"x": x})["y"]
    np.testing.assert_array_equal(got, want)
    fp32 = reference.run(_convnet(rng), {"x": x})["y"]
    assert np.abs(got - fp32).max() > 1e-5  # the region really computes in fp16
    # Back to float32: the first-seen weights come back, so the network is fp32-exact again.
    rewrite.set_precision(net, "a.relu.out", "b.relu.out", "float32")
    assert net.layer("b.conv2d").kernel.dtype == np.float32
    np.testing.assert_allclose(reference.run(net, {"x": x})["y"], fp32, rtol=1e-6, atol=1e-6)
    trtdsl.build(net)


def test_set_precision_whole_onnx_network_with_one_block_kept_fp32(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import onnx
    from onnx import numpy_helper

    from .._onnx_models import INPUT, MODELS, OUTPUT, example, export, onnxruntime_run

    path = export("resnet18", tmp_path / "r18.onnx")
    net = trtdsl.onnx.parse(path)
    x = example(MODELS["resnet18"])
    expected = onnxruntime_run(path, {INPUT: x})[OUTPUT]
    rewrite.set_precision(net, INPUT, OUTPUT, "float16")
    kernels = {layer.name: layer.kernel for layer in net.layers() if layer.name.endswith("/Conv")}
    assert all(k.dtype == np.float16 for k in kernels.values()) and len(kernels) == 20
    assert net.outputs[OUTPUT].dtype == "float32"
    fp16 = reference.run(net, {INPUT: x})[OUTPUT]
    scale = float(np.abs(expected).max())
    assert 1e-5 * scale < np.abs(fp16 - expected).max() < 3e-2 * scale
    # Keep layer4 in fp32: its kernels are the ONNX file's float32 initializers again, exactly.
    start = net.layer("/layer3/layer3.1/relu_1/Relu").get_output(0).name
    end = net.layer("/layer4/layer4.1/relu_1/Relu").get_output(0).name
    rewrite.set_precision(net, start, end, "float32")
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    conv_w = {n.name: inits[n.input[1]] for n in model.graph.node if n.op_type == "Conv"}
    for name in ("/layer4/layer4.0/conv1/Conv", "/layer4/layer4.1/conv2/Conv"):
        k = net.layer(name).kernel
        assert k.dtype == np.float32
        np.testing.assert_array_equal(k.reshape(conv_w[name].shape), conv_w[name])
    assert net.layer("/layer3/layer3.1/conv2/Conv").kernel.dtype == np.float16
    mixed = reference.run(net, {INPUT: x})[OUTPUT]
    assert golden.compare({OUTPUT: mixed}, {OUTPUT: expected}, Tolerance(atol=3e-2 * scale, rtol=3e-2)).ok
    trtdsl.build(net)
