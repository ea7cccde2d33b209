"""Network.adopt: raw-API code's INetworkDefinition becomes a full Network."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import _trt, ops, reference

pytestmark = pytest.mark.usefixtures("trt")


def _raw_mlp(trt, rng, batch=-1):
    """What a user's existing raw-API code looks like: unnamed layers, trt.Weights over numpy arrays."""
    builder = trt.Builder(_trt.logger())
    definition = builder.create_network(0)
    w1 = rng.standard_normal((8, 16)).astype(np.float32)
    b1 = rng.standard_normal((1, 16)).astype(np.float32)
    x = definition.add_input("x", trt.float32, (batch, 8))
    c1 = definition.add_constant(w1.shape, trt.Weights(w1))
    mm = definition.add_matrix_multiply(x, trt.MatrixOperation.NONE, c1.get_output(0), trt.MatrixOperation.NONE)
    cb = definition.add_constant(b1.shape, trt.Weights(b1))
    add = definition.add_elementwise(mm.get_output(0), cb.get_output(0), trt.ElementWiseOperation.SUM)
    act = definition.add_activation(add.get_output(0), trt.ActivationType.RELU)
    act.get_output(0).name = "y"
    definition.mark_output(act.get_output(0))
    return builder, definition, (w1, b1)


def test_adopted_raw_network_runs_builds_and_has_readable_names(trt, rng):
    _builder, definition, (w1, b1) = _raw_mlp(trt, rng)
    net = trtdsl.Network.adopt(definition, dims={"x.0": (1, 4, 16)}, keep=[w1, b1])
    assert net.input_specs == {"x": ("x.0", 8)} and net.input_dtypes == {"x": "float32"}
    assert list(net.outputs) == ["y"]
    names = [layer.name for layer in net.layers()]
    assert names == ["constant", "matrix_multiply", "constant_1", "elementwise", "activation"]
    assert net.tensor("matrix_multiply.out").shape == (-1, 16)
    x = rng.standard_normal((3, 8)).astype(np.float32)
    expected = np.maximum(x.astype(np.float64) @ w1 + b1, 0)  # numpy, from the math
    np.testing.assert_allclose(reference.run(net, {"x": x})["y"], expected, rtol=1e-5, atol=1e-5)
    plan = trtdsl.build(net)
    assert plan.inputs["x"].shape == ("x.0", 8) and plan.profiles[0].ranges == {"x.0": (1, 4, 16)}
    assert "matrix_multiply" in net.summary() and "Network('network'" in repr(net)  # every view works


def test_dsl_ops_extend_an_adopted_network(trt, rng):
    _builder, definition, (w1, b1) = _raw_mlp(trt, rng, batch=2)
    net = trtdsl.Network.adopt(definition, keep=[w1, b1])
    y = net.outputs["y"]
    with net.scope("head"):
        z = ops.softmax(y, dim=-1)
    net.output(z, "probs")
    x = rng.standard_normal((2, 8)).astype(np.float32)
    h = np.maximum(x.astype(np.float64) @ w1 + b1, 0)
    e = np.exp(h - h.max(-1, keepdims=True))
    out = reference.run(net, {"x": x})
    np.testing.assert_allclose(out["probs"], e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert net.layer("head.softmax").type.name == "SOFTMAX"


def test_dynamic_dim_without_range_is_a_clear_error(trt, rng):
    _builder, definition, keep = _raw_mlp(trt, rng)
    net = trtdsl.Network.adopt(definition, keep=keep)
    with pytest.raises(trtdsl.ProfileError, match=r"dim 'x.0' \(used by input 'x'\) has no range"):
        trtdsl.build(net)
    with pytest.raises(trtdsl.ProfileError, match=r"no input uses.*Did you mean 'x.0'"):
        trtdsl.Network.adopt(definition, dims={"x.O": (1, 2, 3)})


def test_adopt_refuses_what_is_not_a_definition():
    with pytest.raises(trtdsl.TrtdslError, match="expects a TensorRT INetworkDefinition, got dict"):
        trtdsl.Network.adopt({})
