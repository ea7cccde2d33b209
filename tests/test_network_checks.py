"""Network: output checks, reprs, summary(), layer_type() and names outside any scope."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import InterpreterError, TrtdslError, _trt, ops, reference

pytestmark = pytest.mark.usefixtures("trt")


def test_output_of_another_networks_tensor_is_refused():
    a, b = trtdsl.Network("a"), trtdsl.Network("b")
    xa = a.input("x", "float32", (1, 2))
    b.input("x", "float32", (1, 2))
    with pytest.raises(TrtdslError, match=r"output 'y': tensor 'x\.relu\.out' belongs to network 'a', not 'b'"):
        b.output(ops.relu(xa), "y")
    with pytest.raises(TrtdslError, match=r"output 'y': expected a trtdsl.Tensor of network 'b', got ndarray"):
        b.output(np.ones(2), "y")
    assert b.trt.num_outputs == 0


@pytest.mark.parametrize(
    "name,pattern",
    [
        ("x", r"output 'x': the network already has an input named 'x'"),
        ("x.relu.out", None),  # the tensor's own name: allowed
        (
            "x.exp.out",
            r"output 'x\.exp\.out': the network already has a tensor named 'x\.exp\.out' \(made by layer "
            r"'x\.exp'\)",
        ),
        ("", r"output name must be a non-empty string, got ''"),
    ],
)
def test_output_name_clashes_are_errors(name, pattern):
    net = trtdsl.Network("n")
    x = net.input("x", "float32", (1, 2))
    r, e = ops.relu(x), ops.exp(x)
    if pattern is None:
        net.output(r, name)
        assert list(net.outputs) == [name] and net.trt.get_output(0).name == name
        return
    with pytest.raises(TrtdslError, match=pattern):
        net.output(r + e, name)
    assert net.trt.num_outputs == 0


def test_output_names_agree_everywhere():
    net = trtdsl.Network("n")
    x = net.input("x", "float32", (1, 2))
    net.output(ops.relu(x), "y")
    out = reference.run(net, {"x": np.ones((1, 2), np.float32)})
    assert list(out) == ["y"] == list(net.outputs) == [net.trt.get_output(0).name]
    assert "outputs=['y']" in repr(net)


def test_reference_run_without_outputs_is_an_error():
    net = trtdsl.Network("empty")
    net.input("x", "float32", (1, 2))
    with pytest.raises(InterpreterError, match=r"network 'empty' has no outputs, so a run computes nothing; mark one"):
        reference.run(net, {"x": np.ones((1, 2), np.float32)})


def test_reprs_are_short_and_name_dims():
    net = trtdsl.Network("bert", dtype="float16")
    ids = net.input("ids", "int32", (net.dim("batch", 1, 2, 4), net.dim("seq", 1, 8, 16)))
    y = net.output(ops.embedding(ids, np.ones((10, 4), np.float32)), "y")
    assert repr(net) == "Network('bert', dtype='float16', inputs=(ids: int32[batch, seq]), outputs=['y'], layers=3)"
    assert repr(ids) == "Tensor('ids', shape=(batch, seq), dtype='int32')"
    assert repr(y) == "Tensor('y', shape=(-1, -1, 4), dtype='float32')"
    plan = trtdsl.build(net, progress=False)
    text = repr(plan)
    assert len(text) < 300 and text.startswith("Plan('bert', ") and "inputs=(ids: int32[batch, seq])" in text
    assert "outputs=(y: float32[batch, seq, 4])" in text  # output dims named after the inputs' dims


def test_summary_lists_name_type_shape_dtype_and_precision_region():
    net = trtdsl.Network("s", dtype="float16")
    x = net.input("x", "float32", (net.dim("batch", 1, 2, 4), 8))
    with net.scope("head"):
        h = ops.relu(x)
        with net.precision("float32"):
            p = ops.softmax(h, -1)
    net.output(p, "probs")
    lines = net.summary().splitlines()
    assert lines[0] == "network 's' (float16): 4 layers"
    assert lines[1].split() == ["layer", "type", "output", "shape", "dtype", "region"]
    rows = {ln.split()[0]: ln.split() for ln in lines[2:]}
    assert rows["head.relu"][1:] == ["activation", "(?,", "8)", "float16"]
    assert rows["head.softmax"][1:] == ["softmax", "(?,", "8)", "float32", "float32"]
    assert rows["x.to_float16"][1] == "cast"


def test_layer_type_is_uniform_where_layer_type_attribute_is_not():
    trt = _trt.load()
    net = trtdsl.Network("k")
    x = net.input("x", "float32", (1, 1, 4, 4))
    net.output(ops.max_pool2d(ops.relu(x), 2), "y")
    layers = net.layers()
    assert [type(layer.type).__name__ for layer in layers] == ["ActivationType", "PoolingType"]  # TensorRT's clash
    assert [trtdsl.layer_type(layer) for layer in layers] == [trt.LayerType.ACTIVATION, trt.LayerType.POOLING]
    raw = net.trt.get_layer(0)  # not downcast: same answer
    assert trtdsl.layer_type(raw) == trt.LayerType.ACTIVATION


def test_ops_outside_any_scope_are_named_from_op_and_input():
    net = trtdsl.Network("n")
    x = net.input("images", "float32", (1, 2, 8, 8))
    a = ops.max_pool2d(x, 2)
    b = ops.max_pool2d(x, 2)
    c = ops.conv2d(ops.relu(a), np.ones((2, 2, 1, 1), np.float32))
    net.output(ops.add(c, b), "y")
    names = [layer.name for layer in net.layers()]
    # An unscoped op joins its input layer's scope: images.max_pool2d -> images.relu -> images.conv2d.
    assert names[:4] == ["images.max_pool2d", "images.max_pool2d_1", "images.relu", "images.conv2d"]
    assert not any(n.split(".")[0].rstrip("_0123456789") in ("max_pool2d", "relu", "conv2d") and "." not in n
                   for n in names)  # fmt: skip
    with net.scope("blk"):
        d = ops.relu(x)
    assert d.name == "blk.relu.out"  # inside a scope: the scope names it
    assert ops.sigmoid(d).name == "blk.sigmoid.out"  # after it, unscoped ops stay in blk
