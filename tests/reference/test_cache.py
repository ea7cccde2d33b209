"""reference.run reuses a prepared interpreter, and drops it when the network changes.

Every kind of change that alters the result is made through the raw API on a raw
``INetworkDefinition`` and on a ``trtdsl.Network``; the expected values are
NumPy formulas written from the layer definitions, never the interpreter's own.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import trtdsl
from trtdsl import _trt, ops
from trtdsl.reference import interpreter
from trtdsl.reference.interpreter import Interpreter

from ._raw_networks import loop_then_conditional

pytestmark = pytest.mark.usefixtures("trt")

X = np.arange(-8, 8, dtype=np.float32).reshape(1, 1, 4, 4) / 4


def _raw():
    """x -> conv 1x1 (weight 2, bias 1) -> ReLU -> output 'y' on a raw definition, and its parts."""
    trt = _trt.load()
    builder = trt.Builder(_trt.logger())
    net = builder.create_network(0)
    x = net.add_input("x", trt.float32, (1, 1, 4, 4))
    kernel = np.full((1, 1, 1, 1), 2.0, np.float32)
    bias = np.ones(1, np.float32)
    conv = net.add_convolution_nd(x, 1, (1, 1), kernel, bias)
    act = net.add_activation(conv.get_output(0), trt.ActivationType.RELU)
    act.get_output(0).name = "y"
    net.mark_output(act.get_output(0))
    return builder, net, x, conv, act, [kernel, bias]


def _run(net) -> np.ndarray:
    return trtdsl.reference.run(net, {"x": X})["y"]


def test_a_second_call_reuses_the_prepared_interpreter(monkeypatch):
    _builder, net, *_ = _raw()
    np.testing.assert_array_equal(_run(net), np.maximum(2 * X + 1, 0))
    made = []
    real = Interpreter.__init__

    def counting(self, *args, **kwargs):
        made.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(Interpreter, "__init__", counting)
    for _ in range(3):
        np.testing.assert_array_equal(_run(net), np.maximum(2 * X + 1, 0))
    assert made == []
    cached = interpreter._cached(net, True)[0]
    cached._detach()
    conv = next(n for n in cached.nodes if n.type == "convolution")
    assert conv.cache  # its converted weights and plans survive between calls
    assert cached.nodes[0].layer is None  # a dormant interpreter holds no layer of the network


def test_the_cache_does_not_keep_a_raw_network_alive():
    builder, net, *_ = _raw()
    _run(net)
    ref = weakref.ref(net)
    del builder, net, _
    gc.collect()
    assert ref() is None


def test_fast_and_plain_runs_are_cached_apart():
    _builder, net, *_ = _raw()
    fast = trtdsl.reference.run(net, {"x": X})["y"]
    plain = trtdsl.reference.run(net, {"x": X}, fast=False)["y"]
    np.testing.assert_array_equal(fast, plain)
    assert interpreter._cached(net, True)[0].fast and not interpreter._cached(net, False)[0].fast


def _change_layer_parameter(trt, net, x, conv, act, keep):
    act.type = trt.ActivationType.CLIP
    act.alpha, act.beta = -0.5, 2.0
    return np.clip(2 * X + 1, -0.5, 2.0)


def _change_alpha_only(trt, net, x, conv, act, keep):
    act.type = trt.ActivationType.LEAKY_RELU
    _run(net)  # cached with alpha 0
    act.alpha = 0.25
    y = 2 * X + 1
    return np.where(y >= 0, y, 0.25 * y)


def _change_kernel(trt, net, x, conv, act, keep):
    keep.append(np.full((1, 1, 1, 1), -3.0, np.float32))
    conv.kernel = keep[-1]
    return np.maximum(-3 * X + 1, 0)


def _change_stride(trt, net, x, conv, act, keep):
    conv.stride_nd = (2, 2)
    return np.maximum(2 * X[:, :, ::2, ::2] + 1, 0)


def _rewire(trt, net, x, conv, act, keep):
    act.set_input(0, x)  # the ReLU now reads the input, skipping the convolution
    return np.maximum(X, 0)


def _add_layer(trt, net, x, conv, act, keep):
    neg = net.add_unary(act.get_output(0), trt.UnaryOperation.NEG)
    net.unmark_output(act.get_output(0))
    act.get_output(0).name = "relu"
    neg.get_output(0).name = "y"
    net.mark_output(neg.get_output(0))
    return -np.maximum(2 * X + 1, 0)


def _change_constant(trt, net, x, conv, act, keep):
    keep.append(np.full((1, 1, 1, 1), 5.0, np.float32))
    const = net.add_constant((1, 1, 1, 1), keep[-1])
    add = net.add_elementwise(act.get_output(0), const.get_output(0), trt.ElementWiseOperation.SUM)
    net.unmark_output(act.get_output(0))
    act.get_output(0).name = "relu"
    add.get_output(0).name = "y"
    net.mark_output(add.get_output(0))
    _run(net)  # cached with 5
    keep.append(np.full((1, 1, 1, 1), -7.0, np.float32))
    const.weights = keep[-1]
    return np.maximum(2 * X + 1, 0) - 7


CHANGES = [_change_layer_parameter, _change_alpha_only, _change_kernel, _change_stride, _rewire, _add_layer,
           _change_constant]  # fmt: skip


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__.lstrip("_") for c in CHANGES])
@pytest.mark.parametrize("wrapped", [False, True], ids=["raw", "network"])
def test_a_change_drops_the_cache(change, wrapped):
    _builder, raw, x, conv, act, keep = _raw()
    net = trtdsl.Network.adopt(raw) if wrapped else raw
    np.testing.assert_array_equal(_run(net), np.maximum(2 * X + 1, 0))
    expected = change(_trt.load(), raw, x, conv, act, keep)
    np.testing.assert_allclose(_run(net), expected, rtol=1e-6, atol=1e-6)


def test_removed_output_and_added_input_are_seen():
    trt = _trt.load()
    _builder, net, _x, conv, _act, _keep = _raw()
    net.mark_output(conv.get_output(0))
    assert set(trtdsl.reference.run(net, {"x": X})) == {"y", conv.get_output(0).name}
    net.unmark_output(conv.get_output(0))
    assert set(trtdsl.reference.run(net, {"x": X})) == {"y"}
    net.add_input("z", trt.float32, (1,))
    with pytest.raises(trtdsl.errors.ShapeError, match="missing feed for input"):
        trtdsl.reference.run(net, {"x": X})


def test_a_trtdsl_network_is_cached_and_sees_raw_api_changes(rng):
    net = trtdsl.Network("cached")
    x = net.input("x", "float32", (1, 1, 4, 4))
    y = ops.relu(ops.conv2d(x, np.full((1, 1, 1, 1), 2.0, np.float32), np.ones(1, np.float32), name="conv"))
    net.output(y, "y")
    np.testing.assert_array_equal(_run(net), np.maximum(2 * X + 1, 0))
    first = interpreter._cached(net, True)[0]
    assert interpreter._cached(net, True)[0] is first
    layer = next(net.trt.get_layer(i) for i in range(net.trt.num_layers) if net.trt.get_layer(i).name == "conv")
    layer.__class__ = _trt.load().IConvolutionLayer
    layer.stride_nd = (2, 2)  # through the raw API, behind the Network
    np.testing.assert_array_equal(_run(net), np.maximum(2 * X[:, :, ::2, ::2] + 1, 0))
    assert interpreter._cached(net, True)[0] is not first


def test_a_cached_network_with_a_loop_and_a_conditional_is_freed_and_reruns():
    builder, n, _arrays = loop_then_conditional(reverse=False)
    xv = np.linspace(0.5, 1.5, 10, dtype=np.float32).reshape(5, 2)
    for flag in (True, False, True):  # each run attaches the layers again
        (value,) = trtdsl.reference.run(n, {"x": xv, "p": np.array(flag)}).values()
        np.testing.assert_allclose(value, -xv.prod(0) if flag else xv.prod(0), rtol=1e-6)
    ref = weakref.ref(n)
    del builder, n
    gc.collect()
    assert ref() is None
