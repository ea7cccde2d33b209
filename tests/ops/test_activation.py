"""Activations, PReLU, softmax and log-softmax against torch.nn.functional on the CPU."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import trtdsl  # noqa: E402
from trtdsl import ShapeError, ops, reference  # noqa: E402
from trtdsl.layerinfo import downcast  # noqa: E402

from ._oprun import run_many as run  # noqa: E402

pytestmark = pytest.mark.usefixtures("trt")

TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float16": dict(rtol=1e-2, atol=1e-2)}


def layer_types(net) -> list[str]:
    # Undowncast layers: on a downcast IActivationLayer, ``.type`` is the ActivationType.
    return [net.trt.get_layer(i).type.name for i in range(net.trt.num_layers)]


def torch_ref(fn, x: np.ndarray) -> np.ndarray:
    return fn(torch.from_numpy(x.astype(np.float64))).numpy()


# (op, torch reference); the torch side is evaluated in float64.
ACTIVATIONS = {
    "relu": (ops.relu, F.relu),
    "relu6": (ops.relu6, F.relu6),
    "clip": (lambda x: ops.clip(x, -0.5, 0.7), lambda t: torch.clamp(t, -0.5, 0.7)),
    "clamp_min": (lambda x: ops.clamp(x, min=-0.25), lambda t: torch.clamp(t, min=-0.25)),
    "clamp_max": (lambda x: ops.clamp(x, max=1.5), lambda t: torch.clamp(t, max=1.5)),
    "leaky_relu": (lambda x: ops.leaky_relu(x, 0.2), lambda t: F.leaky_relu(t, 0.2)),
    "leaky_relu_default": (ops.leaky_relu, F.leaky_relu),
    "elu": (lambda x: ops.elu(x, 0.7), lambda t: F.elu(t, 0.7)),
    "selu": (ops.selu, F.selu),
    "sigmoid": (ops.sigmoid, torch.sigmoid),
    "tanh": (ops.tanh, torch.tanh),
    "gelu": (ops.gelu, F.gelu),
    "gelu_tanh": (lambda x: ops.gelu(x, "tanh"), lambda t: F.gelu(t, approximate="tanh")),
    "silu": (ops.silu, F.silu),
    "hard_sigmoid": (ops.hard_sigmoid, F.hardsigmoid),
    "hard_swish": (ops.hard_swish, F.hardswish),
    "softplus": (ops.softplus, F.softplus),
    "softplus_beta2": (lambda x: ops.softplus(x, beta=2.0), lambda t: F.softplus(t, beta=2.0)),
    "softsign": (ops.softsign, F.softsign),
    "mish": (ops.mish, F.mish),
}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("shape", [(7,), (2, 3, 4, 5)])
@pytest.mark.parametrize("which", sorted(ACTIVATIONS))
def test_activation_matches_torch(which, shape, dtype, rng):
    op, ref = ACTIVATIONS[which]
    # Spread over [-6, 6] so that every clipped and saturated region is reached.
    x = (rng.standard_normal(shape) * 3).astype(np.float32)
    (y,), (reported,), _ = run(op, x, dtype=dtype)
    expected = torch_ref(ref, x)
    assert reported == expected.shape == y.shape
    np.testing.assert_allclose(y, expected, **TOL[dtype])


@pytest.mark.parametrize(
    ("op", "layers"),
    [
        (ops.relu6, ["ACTIVATION"]),
        (ops.gelu, ["ACTIVATION"]),
        (ops.hard_sigmoid, ["ACTIVATION"]),
        (ops.selu, ["ACTIVATION"]),
        (ops.silu, ["ACTIVATION", "ELEMENTWISE"]),
        (ops.mish, ["ACTIVATION", "ACTIVATION", "ELEMENTWISE"]),
    ],
)
def test_activation_uses_tensorrt_activation_layers(op, layers):
    _, _, net = run(op, np.zeros((2, 3), np.float32))
    assert layer_types(net) == layers


def test_activation_alpha_beta_are_set(trt):
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (4,))
    y = ops.hard_sigmoid(x, name="hs")
    layer = downcast(y.layer)
    assert layer.type == trt.ActivationType.HARD_SIGMOID
    assert layer.alpha == pytest.approx(1 / 6) and layer.beta == pytest.approx(0.5)
    assert downcast(ops.selu(x).layer).beta == pytest.approx(1.0507009873554805)


def test_hard_sigmoid_keras2_style(rng):
    x = (rng.standard_normal((3, 5)) * 4).astype(np.float32)
    (y,), _, _ = run(lambda t: ops.hard_sigmoid(t, alpha=0.2), x)
    np.testing.assert_allclose(y, np.clip(0.2 * x + 0.5, 0, 1), rtol=1e-6, atol=1e-7)


def test_clip_with_tensor_bounds(rng):
    x, lo, hi = (rng.standard_normal((2, 5)).astype(np.float32) for _ in range(3))
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    (y,), _, _ = run(ops.clip, x, lo, hi)
    expected = torch.clamp(torch.from_numpy(x), torch.from_numpy(lo), torch.from_numpy(hi)).numpy()
    np.testing.assert_array_equal(y, expected)


def test_one_sided_clip_is_finite_in_float16(rng):
    # TensorRT refuses an infinite CLIP bound; the open side uses the dtype's largest value.
    x = (rng.standard_normal((3, 4)) * 100).astype(np.float32)
    (y,), _, net = run(lambda t: ops.clip(t, min=0.0), x, dtype="float16")
    layer = downcast(net.trt.get_layer(layer_types(net).index("ACTIVATION")))
    assert math.isfinite(layer.beta) and layer.beta == 65504.0
    np.testing.assert_allclose(y, np.maximum(x, 0), rtol=1e-3)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("per_channel", [True, False])
def test_prelu_matches_torch(shape, per_channel, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.uniform(0.05, 0.5, 3 if per_channel else 1).astype(np.float32)
    (y,), (reported,), net = run(lambda t: ops.prelu(t, w), x)
    expected = F.prelu(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    assert reported == shape
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-7)
    assert "PARAMETRIC_RELU" in layer_types(net)


def test_prelu_wrong_slope_count():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 3, 4))
    with pytest.raises(ShapeError, match=r"prelu 'act': weight has 4 slopes.*3 channels on axis 1; expected 1 or 3"):
        ops.prelu(x, np.ones(4), name="act")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("dim", [0, 1, 2, 3, -1, -3])
def test_softmax_every_axis(dim, dtype, rng):
    x = (rng.standard_normal((2, 3, 4, 5)) * 3).astype(np.float32)
    (y,), (reported,), net = run(lambda t: ops.softmax(t, dim), x, dtype=dtype)
    expected = torch_ref(lambda t: F.softmax(t, dim), x)
    assert reported == x.shape
    np.testing.assert_allclose(y, expected, **TOL[dtype])
    assert layer_types(net) == ["SOFTMAX"] or dtype != "float32"


def test_softmax_of_a_vector(rng):
    x = rng.standard_normal(6).astype(np.float32)
    (y,), (reported,), _ = run(ops.softmax, x)
    assert reported == (6,)
    np.testing.assert_allclose(y, torch_ref(lambda t: F.softmax(t, 0), x), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_log_softmax_every_axis(dim, dtype, rng):
    x = (rng.standard_normal((2, 3, 4)) * 3).astype(np.float32)
    (y,), (reported,), _ = run(lambda t: ops.log_softmax(t, dim), x, dtype=dtype)
    expected = torch_ref(lambda t: F.log_softmax(t, dim), x)
    assert reported == x.shape
    np.testing.assert_allclose(y, expected, **TOL[dtype])


def test_log_softmax_is_finite_where_softmax_underflows():
    x = np.array([[0.0, -200.0, 300.0]], np.float32)
    (y,), _, _ = run(lambda t: ops.log_softmax(t, -1), x)
    np.testing.assert_allclose(y, torch_ref(lambda t: F.log_softmax(t, -1), x), rtol=1e-6)
    assert np.isfinite(y).all()


def test_softmax_bad_dim():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 3, 4, 5))
    with pytest.raises(ShapeError, match="softmax 'probs': dim 4 is out of range for a tensor of rank 4"):
        ops.softmax(x, 4, name="probs")
    with pytest.raises(ShapeError, match="log_softmax: dim -5 is out of range"):
        ops.log_softmax(x, -5)


def test_bad_arguments():
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (2, 3))
    with pytest.raises(ShapeError, match="gelu: approximate must be 'none' or 'tanh', got 'erf'"):
        ops.gelu(x, "erf")
    with pytest.raises(ShapeError, match="clip: at least one of min and max must be given"):
        ops.clip(x)
    with pytest.raises(ShapeError, match="softplus: beta must be positive"):
        ops.softplus(x, beta=0)
    with pytest.raises(ShapeError, match="leaky_relu 'lr': parameters must be finite, got alpha=inf"):
        ops.leaky_relu(x, float("inf"), name="lr")


# --- interpreter: activation types the ops do not emit, with alpha/beta as NvInfer.h defines them
@pytest.mark.parametrize(
    ("kind", "alpha", "beta", "math_fn"),
    [
        ("SCALED_TANH", 1.7, 0.6, lambda x, a, b: a * np.tanh(b * x)),
        ("THRESHOLDED_RELU", 0.4, 0.0, lambda x, a, b: np.where(x > a, x, 0)),
        ("HARD_SIGMOID", 0.3, 0.4, lambda x, a, b: np.maximum(0, np.minimum(1, a * x + b))),
        ("CLIP", -0.3, 0.9, lambda x, a, b: np.maximum(a, np.minimum(b, x))),
        ("SOFTPLUS", 0.5, 3.0, lambda x, a, b: a * np.log(np.exp(b * x) + 1)),
        ("SELU", 1.2, 0.8, lambda x, a, b: np.where(x > 0, b * x, b * (a * np.exp(x) - a))),
        ("ELU", 0.3, 0.0, lambda x, a, b: np.where(x >= 0, x, a * (np.exp(x) - 1))),
        ("LEAKY_RELU", 0.05, 0.0, lambda x, a, b: np.where(x >= 0, x, a * x)),
    ],
)
def test_interpreter_activation_formulas(trt, kind, alpha, beta, math_fn, rng):
    x = (rng.standard_normal((3, 7)) * 3).astype(np.float32)
    net = trtdsl.Network("t")
    t = net.input("x", "float32", x.shape)
    layer = net.trt.add_activation(t.trt, getattr(trt.ActivationType, kind))
    layer.alpha, layer.beta = alpha, beta
    net.output(net.register(layer, "act"), "y")
    y = reference.run(net, {"x": x})["y"]
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(y, math_fn(x64, alpha, beta), rtol=1e-5, atol=1e-6)


def test_interpreter_softplus_does_not_overflow(trt):
    net = trtdsl.Network("t")
    t = net.input("x", "float32", (3,))
    net.output(ops.softplus(t), "y")
    y = reference.run(net, {"x": np.array([-200.0, 0.0, 200.0], np.float32)})["y"]
    np.testing.assert_allclose(y, [0.0, math.log(2.0), 200.0], rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_tensorrt_builds_every_activation(dtype):
    """TensorRT itself accepts what the ops emit (an ahead-of-time build; no GPU needed)."""
    net = trtdsl.Network("acts", dtype=dtype)
    x = net.input("x", "float32", (2, 3, 4, 5))
    v = net.input("v", "float32", (7,))
    outs = [op(x) for op, _ in ACTIVATIONS.values()]
    outs += [ops.prelu(x, np.full(3, 0.1)), ops.softmax(x, 1), ops.log_softmax(x, -1), ops.softmax(v)]
    outs += [ops.clip(x, min=0.0), ops.hard_sigmoid(x, alpha=0.2)]
    for i, y in enumerate(outs):
        net.output(y, f"y{i}")
    config = net.builder.create_builder_config()
    assert net.builder.build_serialized_network(net.trt, config) is not None
