"""Rewriting a finished network: functions that take the ``Network`` and change its wiring.

``Network.consumers``, ``replace_uses`` and ``insert_after`` move every reader of a
tensor; the functions here move chosen readers, and turn weights held by a layer
(``trt.Weights``) into constant tensors on its inputs, which is what quantizing a
weight needs (constant -> Quantize -> Dequantize -> the convolution's kernel input).

The second family renames layers and tensors, replaces a subgraph between two
tensors, and moves a region to another precision; they work on any ``Network``,
hand-written or adopted (:meth:`Network.adopt`, :func:`trtdsl.onnx.parse`).
TensorRT has no way to delete a layer, so a replaced subgraph stays in the
definition with nothing reading it; the builder drops such dead layers.

Every function bumps ``net.generation`` when it rewires, so prepared reference
interpreters notice.

Example::

    kernel = rewrite.weights_to_input(net, conv_layer)          # 'stem.conv.kernel' constant
    fq = ops.fake_quantize(kernel, amax=np.abs(w).max(axis=(1, 2, 3)), axis=0)
    rewrite.reroute(net, [(conv_layer, 1)], fq)

    net = trtdsl.onnx.parse("resnet18.onnx", dims={"batch": (1, 8, 32)})
    rewrite.rename_layers(net, rewrite.onnx_scope_names(net))   # '/layer1/layer1.0/conv1/Conv' -> 'layer1.0.conv1'
    rewrite.replace_subgraph(net, relu_in, relu_out, ops.gelu)  # swap an activation
    rewrite.set_precision(net, "input", "output", "float16")     # the whole net in fp16
"""

from __future__ import annotations

from ..argcheck import check_all
from .graph import layers_between, replace_subgraph, set_precision
from .names import onnx_scope_names, rename_layer, rename_layers, rename_tensor, rename_tensors
from .types import Renamer, TensorRef
from .weights import find_layer, producers, reroute, weights_to_input

__all__ = [
    "Renamer", "TensorRef", "find_layer", "layers_between", "onnx_scope_names", "producers", "rename_layer", "rename_layers", "rename_tensor",
    "rename_tensors", "replace_subgraph", "reroute", "set_precision", "weights_to_input",
]  # fmt: skip

check_all(globals(), __all__, "trtdsl.rewrite")  # a wrongly typed argument is an ArgumentError naming it
