"""Wrap existing raw-TensorRT-API code with ``Network.adopt`` and migrate it one function at a time.

``legacy_backbone`` is code as it exists in many projects: it fills an
``INetworkDefinition`` with ``add_*`` calls and ``trt.Weights``, names nothing
and keeps its numpy arrays alive by hand. ``Network.adopt`` wraps the
definition as it is; new parts (here the head) are written with the DSL on
the same network, and the whole is run by the reference interpreter and built
as one. Next, ``legacy_backbone`` can be rewritten with ops, test by test.

    python examples/adopt_raw_api.py
"""

from __future__ import annotations

import numpy as np

import trtdsl
from trtdsl import _trt, ops


def legacy_backbone(trt, definition, arrays: list) -> object:
    """Raw API: conv 3x3 -> ReLU on a (batch, 3, 16, 16) input; returns the ITensor."""
    r = np.random.default_rng(0)
    kernel = (r.standard_normal((8, 3, 3, 3)) * 0.2).astype(np.float32)
    bias = np.zeros(8, np.float32)
    arrays += [kernel, bias]  # trt.Weights does not copy: the arrays must outlive the build
    x = definition.add_input("images", trt.float32, (-1, 3, 16, 16))
    conv = definition.add_convolution_nd(x, 8, (3, 3), trt.Weights(kernel), trt.Weights(bias))
    conv.padding_nd = (1, 1)
    relu = definition.add_activation(conv.get_output(0), trt.ActivationType.RELU)
    return relu.get_output(0)


def build_network() -> trtdsl.Network:
    trt = _trt.load()
    builder = trt.Builder(_trt.logger())
    definition = builder.create_network(0)
    arrays: list = []
    features = legacy_backbone(trt, definition, arrays)
    # The raw input's dynamic batch axis becomes the named dim 'images.0': give it a range.
    # Unnamed layers get readable names from their type ('convolution', 'activation').
    net = trtdsl.Network.adopt(definition, name="migrated", dims={"images.0": (1, 8, 32)}, keep=[builder, arrays])
    feats = trtdsl.Tensor(features, net)  # the legacy ITensor, now a DSL tensor ('activation.out')
    w = np.random.default_rng(1).standard_normal((10, 8)).astype(np.float32)
    with net.scope("head"):
        pooled = ops.flatten(ops.global_avg_pool(feats), 1)
        net.output(ops.linear(pooled, w), "logits")
    return net


if __name__ == "__main__":
    net = build_network()
    print([layer.name for layer in net.layers()])
    x = np.random.default_rng(2).standard_normal((2, 3, 16, 16)).astype(np.float32)
    print(trtdsl.reference.run(net, {"images": x})["logits"])
    print(trtdsl.build(net).summary())
