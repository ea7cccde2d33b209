"""ResNet, MobileNet and squeeze-excite blocks against torchvision's modules."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import layers
from trtdsl.errors import ShapeError, WeightError

torch = pytest.importorskip("torch")
tv_resnet = pytest.importorskip("torchvision.models.resnet")
from torchvision.models import mobilenetv2, mobilenetv3  # noqa: E402
from torchvision.ops import SqueezeExcitation  # noqa: E402

from ._torch_util import close, randomize, run, state  # noqa: E402

nn = torch.nn


def _compare(module, block, shape, seed=0, rtol=1e-4, **kw):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    net = trtdsl.Network("t")
    y = block(net.input("x", "float32", shape), state(module, "blk."), "blk", **kw)
    net.output(y, "y")
    with torch.no_grad():
        want = module(torch.from_numpy(x))
    assert y.shape == tuple(want.shape)
    close(run(net, {"x": x})["y"], want, rtol=rtol)
    return net


def _downsample(c_in, c_out, stride):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


@pytest.mark.parametrize("c_in, planes, stride", [(8, 8, 1), (8, 16, 2), (8, 16, 1)])
def test_residual_block_matches_basic_block(c_in, planes, stride):
    ds = _downsample(c_in, planes, stride) if stride != 1 or c_in != planes else None
    m = randomize(tv_resnet.BasicBlock(c_in, planes, stride, ds))
    _compare(m, layers.residual_block, (2, c_in, 8, 8), out_channels=planes, stride=stride)


@pytest.mark.parametrize("c_in, planes, stride, groups", [(16, 4, 1, 1), (8, 4, 2, 1), (16, 8, 2, 2)])
def test_bottleneck_block_matches_torchvision(c_in, planes, stride, groups):
    base_width = 64
    ds = _downsample(c_in, planes * 4, stride) if stride != 1 or c_in != planes * 4 else None
    m = randomize(tv_resnet.Bottleneck(c_in, planes, stride, ds, groups=groups, base_width=base_width))
    planes_arg = planes if groups == 1 else None  # ResNeXt's width comes from the weights
    _compare(m, layers.bottleneck_block, (1, c_in, 8, 8), planes=planes_arg, stride=stride, groups=groups)


def test_residual_block_layers_are_named_from_the_prefix(trt):
    m = randomize(tv_resnet.BasicBlock(8, 16, 2, _downsample(8, 16, 2)))
    net = _compare(m, layers.residual_block, (1, 8, 8, 8), stride=2)
    names = [layer.name for layer in net.layers()]
    for want in ("blk.conv1", "blk.conv1.relu", "blk.conv2", "blk.downsample.0", "blk.add", "blk.relu"):
        assert want in names
    # The add is the layer right after conv2's and the shortcut's convolutions: fusable.
    assert sum(layer.type == trt.LayerType.CONVOLUTION for layer in net.layers()) == 3
    assert not any(layer.type == trt.LayerType.SCALE for layer in net.layers())


def test_residual_block_without_needed_downsample_names_the_key():
    m = randomize(tv_resnet.BasicBlock(8, 16, 2, _downsample(8, 16, 2)))
    w = {k: v for k, v in state(m, "layer2.0.").items() if "downsample" not in k}
    net = trtdsl.Network("t")
    with pytest.raises(WeightError, match=r"conv_bn_act 'layer2\.0\.downsample\.0' \(in residual_block 'layer2\.0'\): "
                       r"missing weight 'layer2\.0\.downsample\.0\.weight' \(expected shape \(16, 8, 1, 1\)\)"):  # fmt: skip
        layers.residual_block(net.input("x", "float32", (1, 8, 8, 8)), w, "layer2.0", 16, stride=2)


def test_residual_block_with_wrong_width_names_expected_shape():
    m = randomize(tv_resnet.BasicBlock(8, 8))
    net = trtdsl.Network("t")
    with pytest.raises(ShapeError, match=r"weight 'layer1\.0\.conv1\.weight' has shape \(8, 8, 3, 3\), "
                       r"expected \(16, 8, 3, 3\)"):  # fmt: skip
        layers.residual_block(net.input("x", "float32", (1, 8, 8, 8)), state(m, "layer1.0."), "layer1.0", 16)


@pytest.mark.parametrize("scale_act", ["sigmoid", "hard_sigmoid"])
def test_squeeze_excite_matches_torchvision(scale_act):
    act = nn.Sigmoid if scale_act == "sigmoid" else nn.Hardsigmoid
    m = randomize(SqueezeExcitation(12, 4, scale_activation=act))
    _compare(m, layers.squeeze_excite, (2, 12, 5, 5), squeeze_channels=4, scale_act=scale_act)


@pytest.mark.parametrize("c_in, c_out, stride, t", [(8, 8, 1, 6), (8, 16, 2, 6), (16, 16, 1, 1), (8, 12, 1, 4)])
def test_inverted_residual_matches_mobilenet_v2(c_in, c_out, stride, t):
    m = randomize(mobilenetv2.InvertedResidual(c_in, c_out, stride, t))
    _compare(m, layers.inverted_residual, (1, c_in, 8, 8), out_channels=c_out, stride=stride, expand_ratio=t)


@pytest.mark.parametrize(
    "c_in, k, exp, c_out, se, act, stride",
    [(16, 3, 16, 16, True, "RE", 2), (24, 5, 96, 24, True, "HS", 1), (16, 3, 72, 24, False, "RE", 2)],
)
def test_inverted_residual_matches_mobilenet_v3(c_in, k, exp, c_out, se, act, stride):
    from functools import partial

    cnf = mobilenetv3.InvertedResidualConfig(c_in, k, exp, c_out, se, act, stride, 1, 1.0)
    m = randomize(mobilenetv3.InvertedResidual(cnf, partial(nn.BatchNorm2d, eps=1e-3)))
    _compare(
        m, layers.inverted_residual, (1, c_in, 8, 8), out_channels=c_out, stride=stride, expanded_channels=exp,
        kernel_size=k, act="hard_swish" if act == "HS" else "relu", layout="mobilenet_v3", eps=1e-3,
        se_channels=mobilenetv3._make_divisible(exp // 4, 8) if se else None,
    )  # fmt: skip


class _DepthwiseSeparable(nn.Module):
    """timm's DepthwiseSeparableConv layout, written out (timm is not a dependency)."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv_dw = nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv_pw = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.bn2(self.conv_pw(torch.relu(self.bn1(self.conv_dw(x)))))
        return y + x if self.residual else y


@pytest.mark.parametrize("c_in, c_out, stride", [(8, 8, 1), (8, 16, 2)])
def test_depthwise_separable_matches_written_out_module(c_in, c_out, stride):
    m = randomize(_DepthwiseSeparable(c_in, c_out, stride))
    _compare(m, layers.depthwise_separable, (2, c_in, 8, 8), out_channels=c_out, stride=stride)
