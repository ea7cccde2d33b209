"""An ONNX model adopted for hand-tuning: parsed by TensorRT's parser, edited, kept partly in FP32, quantized.

    python examples/onnx_edit.py resnet18.onnx calib.npy -o resnet18_int8.plan

1. ``trtdsl.onnx.parse`` reads the file with ``trt.OnnxParser`` (what trtexec
   uses) and adopts the definition; the dynamic batch becomes the dim 'batch'.
2. Layers get readable names from the exporter's scopes (``layer1.0.conv1``).
3. An edit: every ReLU of the last stage becomes a GELU, with
   ``rewrite.replace_subgraph``, as a fine-tuned variant of the model would have.
4. INT8 entropy calibration, except the last stage (``exclude=["layer4"]``),
   which stays FP32: the block most sensitive to quantization in this model.

The test exports a torchvision ResNet-18 with torch (test-only) and checks the
edit against the same edit made in PyTorch.
"""

from __future__ import annotations

import argparse

import numpy as np

import trtdsl
import trtdsl.onnx
from trtdsl import calib, ops, rewrite


def swap_activations(net: trtdsl.Network, scope: str) -> int:
    """Replace each ReLU under ``scope`` by an exact GELU reading the same input; returns how many."""
    relus = [
        layer
        for layer in net.layers()
        if layer.name.startswith(scope + ".") and layer.name.split(".")[-1].startswith("relu")
    ]
    for layer in relus:
        x, y = trtdsl.Tensor(layer.get_input(0), net), trtdsl.Tensor(layer.get_output(0), net)
        rewrite.replace_subgraph(net, x, y, lambda t, n=layer.name: ops.gelu(t, name=n + ".gelu"))
    return len(relus)


def load(path: str, batch=(1, 8, 32)) -> trtdsl.Network:
    net = trtdsl.onnx.parse(path, dims={"batch": batch})
    rewrite.rename_layers(net, rewrite.onnx_scope_names(net))  # '/layer1/layer1.0/conv1/Conv' -> 'layer1.0.conv1'
    return net


def tune(net: trtdsl.Network, calibration: np.ndarray, input_name: str = "input") -> trtdsl.Network:
    swap_activations(net, "layer4")
    source = calib.ArrayCalibrator({input_name: calibration}, batch_size=8, progress=False)
    return calib.quantize(net, source, dtype="int8", algorithm="entropy", exclude=["layer4"], report=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx")
    parser.add_argument("calibration", help=".npy of input batches (N, C, H, W)")
    parser.add_argument("-o", "--output", default="model_int8.plan")
    args = parser.parse_args()
    net = tune(load(args.onnx), np.load(args.calibration, allow_pickle=False))
    plan = trtdsl.build(net)
    plan.save(args.output)
    print(plan.summary())
