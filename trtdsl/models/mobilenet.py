"""MobileNetV2 and MobileNetV3-Small in torchvision's layout (``features.N...``, ``classifier.N``)."""

from __future__ import annotations

from .. import ops
from ..layers import conv_bn_act, inverted_residual, linear
from ..network import Network
from ..tensor import Tensor
from ._common import WeightsArg, make_divisible, params

__all__ = ["mobilenet_v2", "mobilenet_v3_small"]

# (expand ratio t, output channels c, repeats n, first stride s), from the MobileNetV2 paper.
_V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

# (kernel, expanded, out, squeeze-excite, activation, stride) per block, torchvision's small config.
_V3_SMALL = [
    (3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hard_swish", 2), (5, 240, 40, True, "hard_swish", 1), (5, 240, 40, True, "hard_swish", 1),
    (5, 120, 48, True, "hard_swish", 1), (5, 144, 48, True, "hard_swish", 1), (5, 288, 96, True, "hard_swish", 2),
    (5, 576, 96, True, "hard_swish", 1), (5, 576, 96, True, "hard_swish", 1),
]  # fmt: skip


def mobilenet_v2(net: Network, x: Tensor, weights: WeightsArg, *, width_mult: float = 1.0) -> Tensor:
    """torchvision ``mobilenet_v2``: logits from ``classifier.1``."""
    w = params(weights, "mobilenet_v2")
    c = make_divisible(32 * width_mult)
    x = conv_bn_act(x, w, "features.0.0", "features.0.1", out_channels=c, kernel_size=3, stride=2, act="relu6")
    index = 1
    for t, channels, n, s in _V2:
        out = make_divisible(channels * width_mult)
        for i in range(n):
            x = inverted_residual(x, w, f"features.{index}", out, stride=s if i == 0 else 1, expand_ratio=t)
            index += 1
    last = make_divisible(1280 * max(1.0, width_mult))
    x = conv_bn_act(x, w, f"features.{index}.0", f"features.{index}.1", out_channels=last, kernel_size=1, act="relu6")
    x = ops.flatten(ops.global_avg_pool(x, name="avgpool"), 1, name="flatten")
    return linear(x, w, "classifier.1")


def mobilenet_v3_small(net: Network, x: Tensor, weights: WeightsArg) -> Tensor:
    """torchvision ``mobilenet_v3_small``: hard-swish stem, 11 blocks, logits from ``classifier.3``."""
    w = params(weights, "mobilenet_v3_small")
    eps = 1e-3  # torchvision's MobileNetV3 BatchNorm epsilon (V2 uses torch's 1e-5)
    x = conv_bn_act(
        x, w, "features.0.0", "features.0.1", out_channels=16, kernel_size=3, stride=2, act="hard_swish", eps=eps
    )
    for i, (k, expanded, out, se, act, stride) in enumerate(_V3_SMALL, start=1):
        x = inverted_residual(
            x, w, f"features.{i}", out, stride=stride, expanded_channels=expanded, kernel_size=k, act=act,
            se_channels=make_divisible(expanded // 4) if se else None, layout="mobilenet_v3", eps=eps,
        )  # fmt: skip
    n = len(_V3_SMALL) + 1
    x = conv_bn_act(
        x, w, f"features.{n}.0", f"features.{n}.1", out_channels=576, kernel_size=1, act="hard_swish", eps=eps
    )
    x = ops.flatten(ops.global_avg_pool(x, name="avgpool"), 1, name="flatten")
    x = linear(x, w, "classifier.0", out_features=1024, act="hard_swish")
    return linear(x, w, "classifier.3")
