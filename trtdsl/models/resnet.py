"""ResNet-18/34/50 in torchvision's layout (``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``fc``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from .. import ops
from ..layers import bottleneck_block, conv_bn_act, linear, residual_block
from ..network import Network
from ..tensor import Tensor
from ._common import WeightsArg, params

__all__ = ["resnet", "resnet18", "resnet34", "resnet50"]


def resnet(
    net: Network,
    x: Tensor,
    weights: WeightsArg,
    *,
    block: Literal["basic", "bottleneck"],
    layers: Sequence[int],
    arch: str = "resnet",
) -> Tensor:
    """A torchvision ResNet on NCHW images: logits (N, num_classes) from the ``fc`` weights."""
    w = params(weights, arch)
    # Stem: 7x7/2 conv with BN folded in and ReLU fused after it, then 3x3/2 max pool.
    x = conv_bn_act(x, w, "conv1", "bn1", out_channels=64, kernel_size=7, stride=2, padding=3, act="relu")
    x = ops.max_pool2d(x, 3, stride=2, padding=1, name="maxpool")
    for stage, blocks in enumerate(layers):
        planes = 64 * 2**stage
        for i in range(blocks):
            prefix, stride = f"layer{stage + 1}.{i}", 2 if stage > 0 and i == 0 else 1
            if block == "basic":
                x = residual_block(x, w, prefix, planes, stride=stride)
            else:
                x = bottleneck_block(x, w, prefix, planes, stride=stride)
    x = ops.flatten(ops.global_avg_pool(x, name="avgpool"), 1, name="flatten")
    return linear(x, w, "fc")


def resnet18(net: Network, x: Tensor, weights: WeightsArg) -> Tensor:
    """torchvision ``resnet18``: four stages of two basic blocks."""
    return resnet(net, x, weights, block="basic", layers=(2, 2, 2, 2), arch="resnet18")


def resnet34(net: Network, x: Tensor, weights: WeightsArg) -> Tensor:
    """torchvision ``resnet34``: basic blocks (3, 4, 6, 3)."""
    return resnet(net, x, weights, block="basic", layers=(3, 4, 6, 3), arch="resnet34")


def resnet50(net: Network, x: Tensor, weights: WeightsArg) -> Tensor:
    """torchvision ``resnet50``: bottleneck blocks (3, 4, 6, 3), stride on the 3x3 conv (v1.5)."""
    return resnet(net, x, weights, block="bottleneck", layers=(3, 4, 6, 3), arch="resnet50")
