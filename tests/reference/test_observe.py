"""The interpreter's observer hook: tensors handed to callbacks while alive, without capture.

Observed values are compared with torch computing the same block in float64; the
hook must see pre-activations (no ReLU fused away), leave buffer reuse on for
everything else, and refuse names it cannot serve.
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import TrtdslError, ops
from trtdsl.reference.fusion import Epilogue
from trtdsl.reference.interpreter import Interpreter

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.usefixtures("trt")


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def _block(rng):
    w0, w1 = (rng.standard_normal((4, 4, 3, 3)).astype(np.float32) * 0.3 for _ in range(2))
    net = trtdsl.Network("block")
    x = net.input("x", "float32", (2, 4, 6, 5))
    h = ops.relu(ops.conv2d(x, w0, padding=1, name="conv0"), name="relu0")
    net.output(ops.relu(ops.add(ops.conv2d(h, w1, padding=1, name="conv1"), h, name="add"), name="relu1"), "y")
    return net, w0, w1


def test_observe_sees_pre_activations_and_outputs(rng):
    net, w0, w1 = _block(rng)
    x = rng.standard_normal((2, 4, 6, 5)).astype(np.float32)
    seen: dict[str, np.ndarray] = {}

    def keep(name, array):
        seen.setdefault(name, []).append(array.copy())

    interp = Interpreter(net)
    out = interp.run({"x": x}, observe={"conv0.out": keep, "add.out": keep})
    c0 = F.conv2d(_t(x), _t(w0), padding=1)
    add = F.conv2d(F.relu(c0), _t(w1), padding=1) + F.relu(c0)
    assert [len(v) for v in seen.values()] == [1, 1]
    np.testing.assert_allclose(seen["conv0.out"][0], c0.numpy(), rtol=1e-5, atol=1e-5)
    assert (seen["conv0.out"][0] < 0).any()  # a fused ReLU would have clipped these
    np.testing.assert_allclose(seen["add.out"][0], add.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["y"], F.relu(add).numpy(), rtol=1e-5, atol=1e-5)


def test_observe_keeps_reuse_for_unobserved_tensors(rng):
    net, *_ = _block(rng)
    interp = Interpreter(net)
    _, relus = interp._observed_plan(frozenset({"conv0.out"}))
    names = [s.name for s in interp.steps]
    assert relus.get(names.index("conv0")) is None  # observed: not fused
    assert relus.get(names.index("add")) == Epilogue("RELU", 0.0, 0.0)  # unobserved: still fused
    x = rng.standard_normal((2, 4, 6, 5)).astype(np.float32)
    plain = interp.run({"x": x})["y"].copy()
    for _ in range(3):  # repeated observed runs give the unobserved result, nothing stale
        np.testing.assert_array_equal(interp.run({"x": x}, observe={"conv0.out": lambda n, a: None})["y"], plain)


@pytest.mark.parametrize(
    ("observe", "match"),
    [
        ({"conv0.ouy": lambda n, a: None}, r"unknown tensor 'conv0.ouy'.*conv0.out"),
        ({"x": lambda n, a: None}, r"'x': it is a network input"),
        ({"conv0.out": 3}, r"must be callable"),
        ([("conv0.out", print)], r"observe must map tensor names"),
    ],
)
def test_observe_refuses_bad_requests(rng, observe, match):
    net, *_ = _block(rng)
    with pytest.raises(TrtdslError, match=match):
        trtdsl.reference.run(net, {"x": np.zeros((2, 4, 6, 5), np.float32)}, observe=observe)
