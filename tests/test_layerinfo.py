"""trtdsl.layerinfo: downcasting by an explicit LayerType -> class table."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import layerinfo, ops, reference
from trtdsl.errors import UnsupportedLayerError

pytestmark = pytest.mark.usefixtures("trt")


def test_every_layer_type_of_the_loaded_tensorrt_has_a_class(trt):
    table = layerinfo.classes()
    # TensorRT-RTX has no IPluginLayer (plugins are left out of that build).
    missing = {t.name for t in trt.LayerType.__members__.values() if t not in table}
    assert missing <= {"PLUGIN", "PLUGIN_V2", "PLUGIN_V3"}, missing
    for layer_type, cls in table.items():
        assert cls.__name__.startswith("I") and cls.__name__.endswith("Layer"), (layer_type, cls)
        assert issubclass(cls, trt.ILayer)


def test_downcast_gives_the_concrete_class_and_its_parameters(trt):
    net = trtdsl.Network("d")
    x = net.input("x", "float32", (1, 3, 8, 8))
    y = ops.max_pool2d(ops.conv2d(x, np.ones((4, 3, 3, 3), np.float32), padding=1), 2)
    net.output(ops.softmax(y, 1), "y")
    layers = [layerinfo.downcast(net.trt.get_layer(i)) for i in range(net.trt.num_layers)]
    by_type = {layerinfo.layer_type(layer).name: layer for layer in layers}
    assert isinstance(by_type["CONVOLUTION"], trt.IConvolutionLayer)
    assert tuple(by_type["CONVOLUTION"].kernel_size_nd) == (3, 3)
    assert isinstance(by_type["POOLING"], trt.IPoolingLayer)
    assert tuple(by_type["POOLING"].window_size_nd) == (2, 2)
    # layer_type reads LayerType even where the downcast class shadows ``type`` (PoolingType).
    assert layerinfo.layer_type(by_type["POOLING"]) == trt.LayerType.POOLING
    assert isinstance(by_type["SOFTMAX"], trt.ISoftMaxLayer)


def test_unknown_layer_type_raises_instead_of_staying_ilayer(trt, monkeypatch):
    net = trtdsl.Network("u")
    x = net.input("x", "float32", (1, 3, 4, 4))
    net.output(ops.conv2d(x, np.ones((2, 3, 1, 1), np.float32), name="stem"), "y")
    table = {k: v for k, v in layerinfo.classes().items() if k != trt.LayerType.CONVOLUTION}
    monkeypatch.setattr(layerinfo, "classes", lambda: table)
    conv = next(net.trt.get_layer(i) for i in range(net.trt.num_layers) if net.trt.get_layer(i).name == "stem")
    with pytest.raises(UnsupportedLayerError, match=r"'stem'.*no I\*Layer class.*CONVOLUTION"):
        layerinfo.downcast(conv)


def test_every_interpreter_registry_key_is_a_real_layer_type(trt):
    from trtdsl.reference.registry import REGISTRY

    names = set(trt.LayerType.__members__)
    # reference.control groups a loop's or conditional's layers into one structural step with
    # its own key; those two are the only keys that name no layer, and control.py owns them.
    structural = {"loop", "if_conditional"}
    bad = [key for key in REGISTRY if key.upper() not in names and key not in structural]
    assert not bad, f"interpreter registry keys that are no trt.LayerType: {bad}"
    assert all(REGISTRY[key].__module__ == "trtdsl.reference.control" for key in structural)
    assert set(reference.supported()) == set(REGISTRY)
