"""Rewriting a finished network: consumers, replace_uses, insert_after (how calibration adds Q/DQ)."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ShapeError, ops, reference

pytestmark = pytest.mark.usefixtures("trt")


def _net():
    net = trtdsl.Network("r")
    x = net.input("x", "float32", (2, 8))
    with net.scope("act"):
        h = ops.relu(x)
    with net.scope("head"):
        y = ops.exp(h) + h
    net.output(y, "y")
    return net, x, h


def test_consumers_lists_every_reader():
    net, _, h = _net()
    readers = [(layer.name, j) for layer, j in net.consumers(h)]
    assert readers == [("head.exp", 0), ("head.add", 1)]


def test_insert_after_writes_qdq_between_a_tensor_and_its_readers(rng):
    net, _x, h = _net()
    xv = rng.uniform(-3, 3, (2, 8)).astype(np.float32)
    before = reference.run(net, {"x": xv})["y"]
    q = net.insert_after(h, lambda t: ops.fake_quantize(t, amax=2.0, name="act.fq"))
    assert [layer.name for layer, _ in net.consumers(q)] == ["head.exp", "head.add"]
    assert next(layer.name for layer, _ in net.consumers(h)).startswith("act.fq")
    got = reference.run(net, {"x": xv})["y"]
    # Independent: fake quantization written from the math (TensorRT developer guide, "Explicit Quantization": q = clamp(rne(x/s)), x = q*s).
    scale = np.float32(2.0 / 127)
    hq = np.clip(np.round(np.maximum(xv, 0) / scale), -128, 127) * scale
    np.testing.assert_allclose(got, np.exp(hq) + hq, rtol=1e-6)
    assert not np.allclose(got, before)
    assert trtdsl.build(net, progress=False).outputs["y"].shape == (2, 8)


def test_rewiring_without_new_layers_invalidates_the_prepared_interpreter(rng):
    net = trtdsl.Network("w")
    a = net.input("a", "float32", (3,))
    b = net.input("b", "float32", (3,))
    with net.scope("s"):
        y = ops.exp(a)
    net.output(y, "y")
    av, bv = np.zeros(3, np.float32), np.ones(3, np.float32)
    np.testing.assert_allclose(reference.run(net, {"a": av, "b": bv})["y"], 1.0)
    assert net.replace_uses(a, b) == 1
    np.testing.assert_allclose(reference.run(net, {"a": av, "b": bv})["y"], np.e, rtol=1e-6)


def test_replace_uses_checks_dtypes():
    net = trtdsl.Network("d")
    a = net.input("a", "float32", (3,))
    b = net.input("b", "int32", (3,))
    net.output(ops.exp(a), "y")
    with pytest.raises(ShapeError, match=r"cannot replace 'a' \(float32\) by 'b' \(int32\): dtypes differ"):
        net.replace_uses(a, b)
