"""A hand-written TensorRT network: the digits CNN, from a torchvision-layout npz.

    trtdsl build examples/digits_cnn.py -o digits.plan
    trtdsl run examples/digits_cnn.py --reference

Each op adds real INetworkDefinition layers; scopes give them the checkpoint's
names (features.0, classifier.1, ...) so engine profiles read like the model.
"""

from __future__ import annotations

from pathlib import Path

import trtdsl
from trtdsl import ops

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "digits_cnn.npz"


def conv_bn_relu(x: trtdsl.Tensor, w, conv: str, bn: str, *, stride: int) -> trtdsl.Tensor:
    with x.net.scope(conv):
        y = ops.conv2d(x, w[f"{conv}.weight"], stride=stride, padding=1, name="conv")
    with x.net.scope(bn):
        y = ops.batch_norm(y, w[f"{bn}.running_mean"], w[f"{bn}.running_var"], w[f"{bn}.weight"], w[f"{bn}.bias"])
    return ops.relu(y)


def build_network(dtype: str = "float32", weights_path: Path = WEIGHTS) -> trtdsl.Network:
    w = trtdsl.weights.load(weights_path)
    net = trtdsl.Network("digits_cnn", dtype=dtype)
    batch = net.dim("batch", 1, 64, 256)
    x = net.input("images", "float32", (batch, 1, 8, 8))
    y = conv_bn_relu(x, w, "features.0", "features.1", stride=1)
    y = conv_bn_relu(y, w, "features.3", "features.4", stride=2)
    with net.scope("features.6"):
        y = ops.relu(ops.conv2d(y, w["features.6.weight"], w["features.6.bias"], padding=1))
    y = ops.max_pool2d(y, 2)
    y = ops.flatten(y, 1)
    with net.scope("classifier.1"):
        y = ops.gelu(ops.linear(y, w["classifier.1.weight"], w["classifier.1.bias"]))
    with net.scope("classifier.3"):
        y = ops.linear(y, w["classifier.3.weight"], w["classifier.3.bias"])
    net.output(y, "logits")
    return net
