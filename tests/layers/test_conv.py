"""conv_bn_act and linear against torch modules; BN folding; weight errors."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import layers
from trtdsl.errors import ShapeError, WeightError

torch = pytest.importorskip("torch")
from ._torch_util import close, randomize, run, state  # noqa: E402

nn = torch.nn


def _conv_bn(c_in, c_out, k, stride, groups, bias, nd=2, eps=1e-5):
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[nd]
    bn = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[nd]
    return nn.Sequential(conv(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=bias), bn(c_out, eps=eps))


@pytest.mark.parametrize(
    "nd, c_in, c_out, k, stride, groups, bias, act",
    [
        (2, 3, 8, 3, 1, 1, False, "relu"),
        (2, 8, 8, 3, 2, 8, False, "relu6"),  # depthwise
        (2, 4, 6, 1, 1, 2, True, "hard_swish"),  # grouped, conv bias folded too
        (2, 4, 6, 5, 2, 1, False, None),
        (1, 4, 6, 3, 1, 1, True, "silu"),
        (3, 2, 4, 3, 2, 1, False, "sigmoid"),
    ],
)
def test_conv_bn_act_matches_torch(nd, c_in, c_out, k, stride, groups, bias, act):
    m = randomize(_conv_bn(c_in, c_out, k, stride, groups, bias, nd))
    acts = {"relu": nn.ReLU(), "relu6": nn.ReLU6(), "hard_swish": nn.Hardswish(), "silu": nn.SiLU(),
            "sigmoid": nn.Sigmoid(), None: nn.Identity()}  # fmt: skip
    shape = (2, c_in) + (9,) * nd
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    net = trtdsl.Network("t")
    y = layers.conv_bn_act(net.input("x", "float32", shape), state(m), "0", "1", stride=stride, groups=groups, act=act)
    net.output(y, "y")
    want = acts[act](m(torch.from_numpy(x)))
    assert y.shape == tuple(want.shape)
    close(run(net, {"x": x})["y"], want)


def test_folding_leaves_one_convolution_and_no_scale_layer(trt):
    m = randomize(_conv_bn(3, 8, 3, 1, 1, False))
    net = trtdsl.Network("t")
    with net.scope("stem"):
        y = layers.conv_bn_act(net.input("x", "float32", (1, 3, 8, 8)), state(m), "0", "1", act="relu")
    net.output(y, "y")
    kinds = [layer.type for layer in net.layers()]
    assert kinds.count(trt.LayerType.CONVOLUTION) == 1
    assert trt.LayerType.SCALE not in kinds
    assert trt.LayerType.NORMALIZATION not in kinds
    assert net.producer(y).name == "stem.0.relu"
    conv = next(layer for layer in net.layers() if layer.type == trt.LayerType.CONVOLUTION)
    assert conv.name == "stem.0"


@pytest.mark.parametrize("eps", [1e-5, 1e-3])
def test_fold_batch_norm_equals_unfolded_batch_norm(eps):
    rng = np.random.default_rng(0)
    k = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    gamma, beta, mean = rng.standard_normal((3, 6)).astype(np.float32)
    var = rng.uniform(0.1, 2, 6).astype(np.float32)
    kf, bf = layers.fold_batch_norm(k, b, gamma, beta, mean, var, eps)
    x = torch.from_numpy(rng.standard_normal((2, 4, 7, 7)).astype(np.float32)).double()
    unfolded = torch.nn.functional.batch_norm(
        torch.nn.functional.conv2d(x, torch.from_numpy(k).double(), torch.from_numpy(b).double()),
        torch.from_numpy(mean).double(), torch.from_numpy(var).double(),
        torch.from_numpy(gamma).double(), torch.from_numpy(beta).double(), eps=eps,
    )  # fmt: skip
    folded = torch.nn.functional.conv2d(x, torch.from_numpy(kf).double(), torch.from_numpy(bf).double())
    np.testing.assert_allclose(folded.numpy(), unfolded.numpy(), rtol=1e-5, atol=1e-5)


def test_conv_bn_act_without_bn_uses_the_conv_bias():
    conv = randomize(nn.Conv2d(3, 5, 3, padding=1))
    x = np.random.default_rng(2).standard_normal((1, 3, 6, 6)).astype(np.float32)
    net = trtdsl.Network("t")
    net.output(layers.conv_bn_act(net.input("x", "float32", x.shape), state(conv, "c."), "c", act="relu"), "y")
    close(run(net, {"x": x})["y"], torch.relu(conv(torch.from_numpy(x))))


def test_fp16_network_within_half_tolerance():
    m = randomize(_conv_bn(4, 8, 3, 1, 1, False))
    x = np.random.default_rng(3).standard_normal((1, 4, 8, 8)).astype(np.float32)
    net = trtdsl.Network("t", dtype="float16")
    net.output(layers.conv_bn_act(net.input("x", "float32", x.shape), state(m), "0", "1", act="relu"), "y")
    close(run(net, {"x": x})["y"], torch.relu(m(torch.from_numpy(x))), rtol=2e-2, atol=2e-2)


def test_linear_matches_torch():
    fc = randomize(nn.Linear(12, 7))
    x = np.random.default_rng(4).standard_normal((2, 5, 12)).astype(np.float32)
    net = trtdsl.Network("t")
    y = layers.linear(net.input("x", "float32", x.shape), state(fc, "head."), "head", out_features=7, act="gelu")
    net.output(y, "y")
    close(run(net, {"x": x})["y"], torch.nn.functional.gelu(fc(torch.from_numpy(x))))


def _net(shape=(1, 3, 8, 8)):
    net = trtdsl.Network("t")
    return net, net.input("x", "float32", shape)


def test_missing_weight_names_block_key_and_expected_shape():
    w = state(randomize(_conv_bn(3, 8, 3, 1, 1, False)), "stem.")
    w["stem.0.weights"] = w.pop("stem.0.weight")
    _, x = _net()
    with pytest.raises(WeightError, match=r"conv_bn_act 'stem\.0': missing weight 'stem\.0\.weight' "
                       r"\(expected shape \(8, 3, 3, 3\)\).*Did you mean 'stem\.0\.weights'"):  # fmt: skip
        layers.conv_bn_act(x, w, "stem.0", "stem.1", out_channels=8, kernel_size=3)


def test_missing_bn_statistic_names_the_key():
    w = state(randomize(_conv_bn(3, 8, 3, 1, 1, False)))
    del w["1.running_var"]
    _, x = _net()
    with pytest.raises(
        WeightError, match=r"conv_bn_act '1': missing weight '1\.running_var' \(expected shape \(8,\)\)"
    ):
        layers.conv_bn_act(x, w, "0", "1")


def test_wrong_kernel_shape_names_key_expected_and_layout_hint():
    w = state(randomize(_conv_bn(3, 8, 3, 1, 1, False)))
    w["0.weight"] = np.ascontiguousarray(w["0.weight"].transpose(2, 3, 1, 0))  # Keras HWIO
    _, x = _net()
    with pytest.raises(ShapeError, match=r"conv_bn_act '0': weight '0\.weight' has shape \(3, 3, 3, 8\), "
                       r"expected \(8, 3, 3, 3\)\..*Keras HWIO"):  # fmt: skip
        layers.conv_bn_act(x, w, "0", "1", out_channels=8, kernel_size=3)


def test_input_channels_are_checked_against_the_kernel():
    w = state(randomize(_conv_bn(4, 8, 3, 1, 1, False)))
    _, x = _net()
    with pytest.raises(WeightError, match=r"weight '0\.weight' has shape \(8, 4, 3, 3\), expected \(\?, 3, \?, \?\)"):
        layers.conv_bn_act(x, w, "0", "1")


def test_weights_may_be_a_weight_store_or_its_scope(tmp_path):
    from trtdsl import weights

    m = randomize(_conv_bn(3, 8, 3, 1, 1, False))
    np.savez(tmp_path / "w.npz", **state(m, "stem."))
    store = weights.load(tmp_path / "w.npz")
    xv = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    for w, prefix in ((store, "stem."), (store.scope("stem"), "")):
        net, x = _net()
        net.output(layers.conv_bn_act(x, w, prefix + "0", prefix + "1", act="relu"), "y")
        close(run(net, {"x": xv})["y"], torch.relu(m(torch.from_numpy(xv))))
    assert store.unused() == []  # the blocks record every weight they take


def test_dynamic_batch():
    m = randomize(_conv_bn(3, 8, 3, 2, 1, False))
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (net.dim("batch", 1, 2, 4), 3, 8, 8))
    y = layers.conv_bn_act(x, state(m), "0", "1", stride=2, act="relu")
    net.output(y, "y")
    assert y.shape == (-1, 8, 4, 4)
    xv = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    close(run(net, {"x": xv})["y"], torch.relu(m(torch.from_numpy(xv))))


def test_conv_bn_act_adds_the_same_layers_as_the_ops():
    """One build path: the block's convolution and activation are ops.conv2d and ops.relu, named alike."""
    rng = np.random.default_rng(0)
    w = {"c.weight": rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "c.bias": np.ones(8, np.float32)}

    def describe(net):
        out = []
        for layer in net.layers():
            row = [layer.name, trtdsl.layer_type(layer).name]
            if hasattr(layer, "kernel_size_nd"):
                row += [tuple(layer.stride_nd), tuple(layer.padding_nd), layer.num_groups]
            out.append(row)
        return out, {k: v.tobytes() for k, v in net.weights.items()}

    for dtype in ("float32", "float16"):
        a, xa = trtdsl.Network("a", dtype=dtype), None
        xa = a.input("x", "float32", (1, 3, 8, 8))
        with a.scope("blk"):
            layers.conv_bn_act(xa, w, "c", stride=2, act="relu")
        b = trtdsl.Network("b", dtype=dtype)
        xb = b.input("x", "float32", (1, 3, 8, 8))
        with b.scope("blk"):
            from trtdsl import ops

            ops.relu(ops.conv2d(xb, w["c.weight"], w["c.bias"], stride=2, padding=1, name="c"), name="c.relu")
        assert describe(a) == describe(b)
