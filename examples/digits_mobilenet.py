"""A MobileNetV3-style network for the digits upscaled to 32x32: depthwise convolutions, squeeze-excite,
hard-swish and residual adds, bound to torchvision-layout weights (examples/train_digits_mobilenet.py).

    trtdsl build examples/digits_mobilenet.py --int8 --calib calib.npz -o digits_mobilenet.plan
    trtdsl run examples/digits_mobilenet.py --reference
"""

from __future__ import annotations

from pathlib import Path

import trtdsl
from trtdsl import ops
from trtdsl.layers import conv_bn_act, inverted_residual, linear
from trtdsl.models._common import make_divisible

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "digits_mobilenet.npz"
# (kernel, expanded, out, squeeze-excite, activation, stride), as in train_digits_mobilenet.py.
BLOCKS = [
    (3, 32, 16, True, "hard_swish", 1),
    (3, 48, 24, False, "relu", 2),
    (3, 72, 24, True, "hard_swish", 1),
    (5, 96, 24, True, "hard_swish", 1),
]
EPS = 1e-3  # torchvision's MobileNetV3 BatchNorm epsilon


def build_network(dtype: str = "float32", weights_path: Path = WEIGHTS) -> trtdsl.Network:
    w = trtdsl.weights.load(weights_path)
    net = trtdsl.Network("digits_mobilenet", dtype=dtype)
    batch = net.dim("batch", 1, 64, 256)
    x = net.input("images", "float32", (batch, 1, 32, 32))
    y = conv_bn_act(x, w, "features.0.0", "features.0.1", kernel_size=3, stride=2, act="hard_swish", eps=EPS)
    for i, (k, expanded, out, se, act, stride) in enumerate(BLOCKS, start=1):
        y = inverted_residual(
            y, w, f"features.{i}", out, stride=stride, expanded_channels=expanded, kernel_size=k, act=act,
            se_channels=make_divisible(expanded // 4) if se else None, layout="mobilenet_v3", eps=EPS,
        )  # fmt: skip
    n = len(BLOCKS) + 1
    y = conv_bn_act(y, w, f"features.{n}.0", f"features.{n}.1", kernel_size=1, act="hard_swish", eps=EPS)
    y = ops.flatten(ops.global_avg_pool(y, name="avgpool"), 1, name="flatten")
    net.output(linear(y, w, "classifier.1"), "logits")
    return net
