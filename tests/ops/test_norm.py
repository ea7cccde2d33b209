"""batch/layer/group/instance/RMS norm against torch.nn.functional, plus the interpreter's
Normalization (v1 and v2, as the ONNX parser emits them) and Scale layers against NumPy math."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import trtdsl  # noqa: E402
from trtdsl import ShapeError, ops, reference  # noqa: E402
from trtdsl.layerinfo import downcast  # noqa: E402

from ._oprun import run_one as run  # noqa: E402

pytestmark = pytest.mark.usefixtures("trt")

TOL = {"float32": dict(rtol=1e-5, atol=1e-5), "float16": dict(rtol=1e-2, atol=2e-2)}


def t64(x):
    return None if x is None else torch.from_numpy(np.asarray(x, dtype=np.float64))


def layer_types(net) -> list[str]:
    return [net.trt.get_layer(i).type.name for i in range(net.trt.num_layers)]


# -------------------------------------------------------------- batch_norm
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (2, 3, 4, 5), (1, 3, 2, 3, 2)])
def test_batch_norm_folds_into_one_scale_layer(shape, affine, dtype, rng):
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    mean, var = rng.standard_normal(3), rng.uniform(0.2, 3.0, 3)
    weight, bias = (rng.standard_normal(3), rng.standard_normal(3)) if affine else (None, None)
    y, reported, net = run(lambda t: ops.batch_norm(t, mean, var, weight, bias, eps=1e-3), x, dtype=dtype)
    expected = F.batch_norm(t64(x), t64(mean), t64(var), t64(weight), t64(bias), training=False, eps=1e-3).numpy()
    assert reported == shape
    np.testing.assert_allclose(y, expected, **TOL[dtype])
    types = layer_types(net)
    assert types.count("SCALE") == 1
    assert not {"ELEMENTWISE", "UNARY", "REDUCE", "CONSTANT"} & set(types)


def test_batch_norm_stores_folded_weights(trt, rng):
    mean, var, w, b = rng.standard_normal(3), rng.uniform(0.5, 2, 3), rng.standard_normal(3), rng.standard_normal(3)
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (1, 3, 2, 2))
    ops.batch_norm(x, mean, var, w, b, name="bn1")
    scale = w / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(net.weights["bn1.scale"], scale, rtol=1e-6)
    np.testing.assert_allclose(net.weights["bn1.shift"], b - mean * scale, rtol=1e-6, atol=1e-7)
    layer = downcast(net.trt.get_layer(0))
    assert layer.mode == trt.ScaleMode.CHANNEL and layer.channel_axis == 1


def test_batch_norm_in_bfloat16_network(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    y, _, net = run(lambda t: ops.batch_norm(t, mean, var), x, dtype="bfloat16")
    expected = F.batch_norm(t64(x), t64(mean), t64(var), training=False).numpy()
    np.testing.assert_allclose(y, expected, rtol=2e-2, atol=3e-2)
    assert layer_types(net).count("SCALE") == 1


def test_batch_norm_errors():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 3, 4, 4))
    with pytest.raises(ShapeError, match=r"batch_norm 'bn': running_var has shape \(4,\); expected \(3,\)"):
        ops.batch_norm(x, np.zeros(3), np.ones(4), name="bn")
    with pytest.raises(ShapeError, match=r"batch_norm 'batch_norm': running_mean is a Tensor; batch_norm folds"):
        ops.batch_norm(x, x, np.ones(3))


# -------------------------------------------------------------- layer_norm
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize(("shape", "normalized"), [((4, 8), 8), ((2, 3, 8), (8,)), ((2, 3, 4, 5), (4, 5))])
def test_layer_norm_matches_torch(shape, normalized, affine, dtype, rng):
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    ns = (normalized,) if isinstance(normalized, int) else normalized
    w, b = (rng.standard_normal(ns), rng.standard_normal(ns)) if affine else (None, None)
    y, reported, net = run(lambda t: ops.layer_norm(t, normalized, w, b, eps=1e-5), x, dtype=dtype)
    expected = F.layer_norm(t64(x), ns, t64(w), t64(b), eps=1e-5).numpy()
    assert reported == shape
    np.testing.assert_allclose(y, expected, **TOL[dtype])
    assert "NORMALIZATION" in layer_types(net)


def test_layer_norm_weight_names(rng):
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 8))
    with net.scope("block"):
        ops.layer_norm(x, 8, np.ones(8), np.zeros(8), name="ln")
    assert {"block.ln.weight", "block.ln.bias"} <= set(net.weights)


def test_layer_norm_shape_mismatch():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 3, 8))
    with pytest.raises(ShapeError, match=r"layer_norm 'ln': normalized_shape \(3,\) must match the trailing axes"):
        ops.layer_norm(x, 3, name="ln")
    with pytest.raises(ShapeError, match=r"layer_norm 'x.layer_norm_?\d*': weight has shape \(7,\); expected \(8,\)"):
        ops.layer_norm(x, 8, np.ones(7))


# --------------------------------------------------- group / instance norm
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("groups", [1, 2, 3, 6])
@pytest.mark.parametrize("shape", [(2, 6, 4, 4), (2, 6, 5), (3, 6, 2, 3, 2)])
def test_group_norm_matches_torch(shape, groups, dtype, rng):
    x = (rng.standard_normal(shape) * 2 - 1).astype(np.float32)
    w, b = rng.standard_normal(6), rng.standard_normal(6)
    y, reported, net = run(lambda t: ops.group_norm(t, groups, w, b, eps=1e-5), x, dtype=dtype)
    expected = F.group_norm(t64(x), groups, t64(w), t64(b), eps=1e-5).numpy()
    assert reported == shape
    np.testing.assert_allclose(y, expected, **TOL[dtype])
    norm = downcast(net.trt.get_layer(layer_types(net).index("NORMALIZATION")))
    assert norm.num_groups == groups and norm.is_v2


def test_group_norm_on_rank_2(rng):
    x = rng.standard_normal((4, 6)).astype(np.float32)
    y, reported, _ = run(lambda t: ops.group_norm(t, 2), x)
    assert reported == (4, 6)
    np.testing.assert_allclose(y, F.group_norm(t64(x), 2).numpy(), rtol=1e-5, atol=1e-5)


def test_group_norm_groups_must_divide_channels():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 6, 4))
    with pytest.raises(ShapeError, match=r"group_norm 'gn': num_groups=4 must divide the 6 channels of 'x'"):
        ops.group_norm(x, 4, name="gn")


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 7), (1, 3, 2, 2, 3)])
def test_instance_norm_matches_torch(shape, affine, rng):
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    w, b = (rng.standard_normal(3), rng.standard_normal(3)) if affine else (None, None)
    y, reported, _ = run(lambda t: ops.instance_norm(t, w, b, eps=1e-5), x)
    expected = F.instance_norm(t64(x), weight=t64(w), bias=t64(b), eps=1e-5).numpy()
    assert reported == shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_instance_norm_needs_spatial_axes():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 3))
    with pytest.raises(ShapeError, match=r"instance_norm 'instance_norm': input 'x' \(2, 3\) has no spatial axis"):
        ops.instance_norm(x)


# ------------------------------------------------------------------ rms_norm
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("eps", [None, 1e-6])
@pytest.mark.parametrize("with_weight", [True, False])
@pytest.mark.parametrize(("shape", "normalized"), [((3, 8), 8), ((2, 3, 4, 5), (4, 5))])
def test_rms_norm_matches_torch(shape, normalized, with_weight, eps, dtype, rng):
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    ns = (normalized,) if isinstance(normalized, int) else normalized
    w = rng.standard_normal(ns) if with_weight else None
    y, reported, _ = run(lambda t: ops.rms_norm(t, normalized, w, eps), x, dtype=dtype)
    # torch's eps=None means the input dtype's machine epsilon; compute in that dtype's eps, in float64.
    torch_eps = eps if eps is not None else float(np.finfo(np.float16 if dtype == "float16" else np.float32).eps)
    expected = F.rms_norm(t64(x), ns, t64(w), eps=torch_eps).numpy()
    assert reported == shape
    np.testing.assert_allclose(y, expected, **TOL[dtype])


def test_rms_norm_default_eps_is_machine_epsilon():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 4))
    ops.rms_norm(x, 4, name="rms")
    # The eps constant is the one float constant that is not a weight.
    consts = [v for k, v in net.weights.items() if v.dtype == np.float32 and v.size == 1]
    assert any(c.item() == np.finfo(np.float32).eps for c in consts)


# ----------------------------------- interpreter: Normalization as ONNX emits it
def _onnx_network(node, inputs, initializers, opset):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from trtdsl import _trt

    trt = _trt.load()
    x_info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs]
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(inputs[0][1]))
    graph = helper.make_graph(
        [node], "g", x_info, [y_info], [numpy_helper.from_array(a.astype(np.float32), n) for n, a in initializers]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    builder = trt.Builder(_trt.logger())
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, _trt.logger())
    assert parser.parse(model.SerializeToString()), [parser.get_error(i).desc() for i in range(parser.num_errors)]
    return builder, network, parser


def _numpy_group_norm(x, groups, scale, bias, eps, per_group):
    n, c = x.shape[:2]
    g = x.astype(np.float64).reshape(n, groups, -1)
    y = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)
    if per_group:  # ONNX GroupNormalization-18: one scale/bias per group
        return (y * scale[None, :, None] + bias[None, :, None]).reshape(x.shape)
    y = y.reshape(x.shape)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return y * scale.reshape(shape) + bias.reshape(shape)


@pytest.mark.parametrize(("opset", "per_group"), [(18, True), (21, False)])
def test_interpreter_runs_onnx_group_normalization(opset, per_group, rng):
    from onnx import helper

    x = rng.standard_normal((2, 6, 3, 4)).astype(np.float32)
    n_affine = 2 if per_group else 6
    s, b = rng.standard_normal(n_affine), rng.standard_normal(n_affine)
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=2, epsilon=1e-4)
    _, network, _parser = _onnx_network(node, [("x", x.shape)], [("s", s), ("b", b)], opset)
    norm = [downcast(network.get_layer(i)) for i in range(network.num_layers)][-1]
    assert norm.num_groups == 2 and norm.is_v2 == (not per_group)  # v1 (deprecated) takes per-group scale
    y = reference.run(network, {"x": x})["y"]
    np.testing.assert_allclose(y, _numpy_group_norm(x, 2, s, b, 1e-4, per_group), rtol=1e-5, atol=1e-5)


def test_interpreter_runs_onnx_instance_normalization(rng):
    from onnx import helper

    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    s, b = rng.standard_normal(3), rng.standard_normal(3)
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-5)
    _, network, _parser = _onnx_network(node, [("x", x.shape)], [("s", s), ("b", b)], 17)
    y = reference.run(network, {"x": x})["y"]
    expected = F.instance_norm(t64(x), weight=t64(s), bias=t64(b), eps=1e-5).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, 1])
def test_interpreter_runs_onnx_layer_normalization(axis, rng):
    from onnx import helper

    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    ns = x.shape[axis:] if axis != -1 else x.shape[-1:]
    s, b = rng.standard_normal(ns), rng.standard_normal(ns)
    node = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=axis, epsilon=1e-5)
    _, network, _parser = _onnx_network(node, [("x", x.shape)], [("s", s), ("b", b)], 17)
    y = reference.run(network, {"x": x})["y"]
    expected = F.layer_norm(t64(x), ns, t64(s), t64(b), eps=1e-5).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


# ------------------------------------------------ interpreter: Scale layer modes
@pytest.mark.parametrize(
    ("mode", "channel_axis", "wshape"),
    [("UNIFORM", 1, (1,)), ("CHANNEL", 1, (3,)), ("CHANNEL", 2, (4,)), ("ELEMENTWISE", 1, (3, 4, 5))],
)
def test_interpreter_scale_modes(trt, mode, channel_axis, wshape, rng):
    x = rng.uniform(0.5, 2.0, (2, 3, 4, 5)).astype(np.float32)
    scale = rng.uniform(0.5, 1.5, wshape).astype(np.float32)
    shift = rng.uniform(0.0, 0.5, wshape).astype(np.float32)
    power = rng.uniform(0.5, 2.0, wshape).astype(np.float32)
    net = trtdsl.Network("t")
    t = net.input("x", "float32", x.shape)
    layer = net.trt.add_scale_nd(
        t.trt,
        getattr(trt.ScaleMode, mode),
        net.keep(shift.reshape(-1), "s.shift"),
        net.keep(scale.reshape(-1), "s.scale"),
        net.keep(power.reshape(-1), "s.power"),
        channel_axis,
    )
    net.output(net.register(layer, "scale"), "y")
    y = reference.run(net, {"x": x})["y"]
    view = {"UNIFORM": (), "CHANNEL": wshape + (1,) * (3 - channel_axis), "ELEMENTWISE": wshape}[mode]
    s, sh, p = (a.astype(np.float64).reshape(view) for a in (scale, shift, power))
    np.testing.assert_allclose(y, (x * s + sh) ** p, rtol=1e-5)


def test_rms_norm_float16_statistic_does_not_overflow(rng):
    # |x| ~ 1000: x^2 exceeds float16's 65504, so the mean of squares must run in float32.
    x = (rng.standard_normal((2, 16)) * 1000).astype(np.float32)
    y, _, _net = run(lambda t: ops.rms_norm(t, 16, np.ones(16)), x, dtype="float16")
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, F.rms_norm(t64(x), (16,), eps=1e-6).numpy(), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_tensorrt_builds_every_norm(dtype, rng):
    """TensorRT itself accepts what the ops emit (an ahead-of-time build; no GPU needed)."""
    net = trtdsl.Network("norms", dtype=dtype)
    x = net.input("x", "float32", (2, 6, 4, 4))
    v = net.input("v", "float32", (3, 8))
    outs = [
        ops.batch_norm(x, rng.standard_normal(6), rng.uniform(0.5, 2, 6), rng.standard_normal(6), np.zeros(6)),
        ops.layer_norm(x, (4, 4), rng.standard_normal((4, 4)), rng.standard_normal((4, 4))),
        ops.group_norm(x, 3, rng.standard_normal(6), rng.standard_normal(6)),
        ops.group_norm(x, 1),
        ops.instance_norm(x, rng.standard_normal(6), rng.standard_normal(6)),
        ops.rms_norm(v, 8, rng.standard_normal(8)),
        ops.group_norm(v, 2),
    ]
    for i, y in enumerate(outs):
        net.output(y, f"y{i}")
    config = net.builder.create_builder_config()
    assert net.builder.build_serialized_network(net.trt, config) is not None
