"""trtdsl.rewrite: moving a convolution's trt.Weights to constant inputs, and rerouting chosen readers."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ShapeError, TrtdslError, ops, reference, rewrite

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.usefixtures("trt")


def _t(a):
    return torch.from_numpy(np.asarray(a, np.float64))


@pytest.mark.parametrize("kind", ["conv", "conv_grouped_nobias", "deconv", "conv_is_output"])
def test_weights_to_input_keeps_the_numbers(kind, rng):
    x = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
    net = trtdsl.Network("w")
    xi = net.input("x", "float32", x.shape)
    if kind.startswith("conv"):
        groups = 2 if "grouped" in kind else 1
        w = rng.standard_normal((6, 4 // groups, 3, 3)).astype(np.float32)
        b = None if "nobias" in kind else rng.standard_normal(6).astype(np.float32)
        y = ops.conv2d(xi, w, b, stride=2, padding=1, dilation=1 if groups == 1 else 2, groups=groups, name="c")
        want = F.conv2d(_t(x), _t(w), None if b is None else _t(b), stride=2, padding=1,
                        dilation=1 if groups == 1 else 2, groups=groups)  # fmt: skip
    else:
        w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
        b = rng.standard_normal(3).astype(np.float32)
        y = ops.conv_transpose2d(xi, w, b, stride=2, padding=1, name="c")
        want = F.conv_transpose2d(_t(x), _t(w), _t(b), stride=2, padding=1)
    if kind != "conv_is_output":
        y = ops.relu(y, name="after")
        want = torch.relu(want)
    net.output(y, "y")
    layer = rewrite.find_layer(net, "c")
    new, kernel = rewrite.weights_to_input(net, layer)
    assert new.name == "c" and kernel.name == "c.kernel.out" and kernel.shape == w.shape
    assert rewrite.find_layer(net, "c.replaced") is not None
    np.testing.assert_allclose(reference.run(net, {"x": x})["y"], want.numpy(), rtol=1e-5, atol=1e-5)
    # A layer whose kernel is already an input comes back as it is.
    assert rewrite.weights_to_input(net, new)[0] is new
    assert trtdsl.build(net, progress=False).outputs["y"].shape == tuple(want.shape)


def test_reroute_moves_only_the_chosen_readers(rng):
    net = trtdsl.Network("r")
    x = net.input("x", "float32", (3,))
    a = ops.exp(x, name="a")
    b = ops.abs(x, name="b")
    net.output(a, "ya")
    net.output(b, "yb")
    two = ops.mul(x, 2.0, name="two")
    assert rewrite.reroute(net, [("a", 0)], two) == 1
    out = reference.run(net, {"x": np.array([0.0, 1.0, -1.0], np.float32)})
    np.testing.assert_allclose(out["ya"], np.exp([0.0, 2.0, -2.0]), rtol=1e-6)
    np.testing.assert_allclose(out["yb"], [0.0, 1.0, 1.0])


def test_rewrite_errors():
    net = trtdsl.Network("e")
    x = net.input("x", "float32", (3,))
    y = ops.exp(x, name="e")
    net.output(y, "y")
    with pytest.raises(ShapeError, match="holds no weights that can become inputs"):
        rewrite.weights_to_input(net, rewrite.find_layer(net, "e"))
    with pytest.raises(TrtdslError, match="no layer 'ee'.*Did you mean 'e'"):
        rewrite.find_layer(net, "ee")
    i = ops.cast(x, "int32", name="i")
    with pytest.raises(ShapeError, match="dtypes differ"):
        rewrite.reroute(net, [("e", 0)], i)
