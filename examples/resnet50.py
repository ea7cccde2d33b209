"""A hand-written ResNet-50 from a torchvision-layout .npz (state_dict names: conv1.weight, layer1.0.bn1.running_mean, ...).

    python examples/resnet50.py resnet50.npz -o resnet50.plan      # weights: see below
    trtdsl build examples/resnet50.py                              # with RESNET50_NPZ=resnet50.npz

Get the weights from torchvision once (torch is not needed afterwards)::

    import numpy as np, torchvision
    sd = torchvision.models.resnet50(weights="DEFAULT").state_dict()
    np.savez("resnet50.npz", **{k: v.numpy() for k, v in sd.items() if not k.endswith("num_batches_tracked")})

Each block is written out with trtdsl.layers: conv_bn_act folds BatchNorm into
the convolution, bottleneck_block is torchvision's v1.5 Bottleneck. Layer
names follow the checkpoint (layer3.0.conv2, layer3.0.downsample.0, fc), so
engine profiles read like the PyTorch model. trtdsl.models.resnet50 is the
same network as a library function.
"""

from __future__ import annotations

import argparse
import os
import sys

import trtdsl
from trtdsl import ops
from trtdsl.layers import bottleneck_block, conv_bn_act, linear

STAGES = (3, 4, 6, 3)  # bottleneck blocks per stage


def resnet50(x: trtdsl.Tensor, w) -> trtdsl.Tensor:
    x = conv_bn_act(x, w, "conv1", "bn1", out_channels=64, kernel_size=7, stride=2, padding=3, act="relu")
    x = ops.max_pool2d(x, 3, stride=2, padding=1, name="maxpool")
    for stage, blocks in enumerate(STAGES):
        for i in range(blocks):
            stride = 2 if stage > 0 and i == 0 else 1  # v1.5: the stride sits on the 3x3 conv
            x = bottleneck_block(x, w, f"layer{stage + 1}.{i}", 64 * 2**stage, stride=stride)
    x = ops.flatten(ops.global_avg_pool(x, name="avgpool"), 1)
    return linear(x, w, "fc")


def build_network(
    weights_path: str | None = None, *, dtype: str = "float32", size: int = 224, batch=(1, 8, 32)
) -> trtdsl.Network:
    w = trtdsl.weights.load(weights_path or os.environ["RESNET50_NPZ"])
    net = trtdsl.Network("resnet50", dtype=dtype)
    x = net.input("images", "float32", (net.dim("batch", *batch), 3, size, size))
    net.output(resnet50(x, w), "logits")
    w.check_all_used()  # every checkpoint tensor went into the network (none misnamed)
    return net


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="torchvision-layout resnet50 .npz")
    parser.add_argument("-o", "--output", default="resnet50.plan")
    parser.add_argument("--dtype", default="float16")
    args = parser.parse_args()
    plan = trtdsl.build(build_network(args.weights, dtype=args.dtype))
    plan.save(args.output)
    print(plan.summary())
    sys.exit(0)
