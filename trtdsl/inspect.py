"""Reading a TensorRT network back: layer downcasting and tensor listings.

``INetworkDefinition.get_layer(i)`` returns a plain ``ILayer``; its parameters
are on the concrete class. As Polygraphy's ``backend/trt/util.py`` does, set
``__class__`` from ``layer.type``.
"""

from __future__ import annotations

from typing import Any

from . import _trt

# LayerType names whose I*Layer class name is not the CamelCase of the type name.
_CLASS_OF = {
    "CONVOLUTION": "IConvolutionLayer", "DECONVOLUTION": "IDeconvolutionLayer",
    "ELEMENTWISE": "IElementWiseLayer", "MATRIX_MULTIPLY": "IMatrixMultiplyLayer",
    "SOFTMAX": "ISoftMaxLayer", "RAGGED_SOFTMAX": "IRaggedSoftMaxLayer",
    "TOPK": "ITopKLayer", "PARAMETRIC_RELU": "IParametricReLULayer",
    "TRIP_LIMIT": "ITripLimitLayer", "LOOP_OUTPUT": "ILoopOutputLayer",
    "CONDITIONAL_INPUT": "IIfConditionalInputLayer", "CONDITIONAL_OUTPUT": "IIfConditionalOutputLayer",
    "CONDITION": "IConditionLayer", "ONE_HOT": "IOneHotLayer", "NON_ZERO": "INonZeroLayer",
    "REVERSE_SEQUENCE": "IReverseSequenceLayer", "PLUGIN_V2": "IPluginV2Layer",
    "PLUGIN_V3": "IPluginV3Layer", "GRID_SAMPLE": "IGridSampleLayer", "NMS": "INMSLayer",
    "LRN": "ILRNLayer", "DYNAMIC_QUANTIZE": "IDynamicQuantizeLayer",
    "KV_CACHE_UPDATE": "IKVCacheUpdateLayer", "ROTARY_EMBEDDING": "IRotaryEmbeddingLayer",
    "ATTENTION_INPUT": "IAttentionInputLayer", "ATTENTION_OUTPUT": "IAttentionOutputLayer",
    "MOE": "IMoELayer", "DIST_COLLECTIVE": "IDistCollectiveLayer",
}  # fmt: skip


def layer_class(type_name: str) -> Any:
    trt = _trt.load()
    cls = _CLASS_OF.get(type_name) or "I" + "".join(p.capitalize() for p in type_name.split("_")) + "Layer"
    return getattr(trt, cls, None)


def downcast(layer: Any) -> Any:
    """Give ``layer`` its concrete class so its parameters can be read."""
    cls = layer_class(layer.type.name)
    if cls is not None:
        layer.__class__ = cls
    return layer
