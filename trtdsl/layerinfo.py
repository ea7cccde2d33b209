"""Reading a TensorRT network back: downcasting ``ILayer`` by an explicit table.

``INetworkDefinition.get_layer(i)`` returns a plain ``ILayer``; its parameters
are on the concrete class. As Polygraphy's ``backend/trt/util.py`` does, the
class comes from a table keyed by ``layer.type``, written out in full rather
than derived from the type's name, so a type the table does not know raises
``UnsupportedLayerError`` instead of silently staying an ``ILayer`` whose
parameters cannot be read.
"""

from __future__ import annotations

import functools
from typing import Any

from . import _trt
from .errors import UnsupportedLayerError

# LayerType name -> I*Layer class name. Rows whose names the loaded TensorRT lacks
# (older versions, or TensorRT-RTX without plugins) are left out of the table.
_CLASS_NAMES = (
    ("ACTIVATION", "IActivationLayer"),
    ("ASSERTION", "IAssertionLayer"),
    ("ATTENTION_INPUT", "IAttentionInputLayer"),
    ("ATTENTION_OUTPUT", "IAttentionOutputLayer"),
    ("CAST", "ICastLayer"),
    ("CONCATENATION", "IConcatenationLayer"),
    ("CONDITION", "IConditionLayer"),
    ("CONDITIONAL_INPUT", "IIfConditionalInputLayer"),
    ("CONDITIONAL_OUTPUT", "IIfConditionalOutputLayer"),
    ("CONSTANT", "IConstantLayer"),
    ("CONVOLUTION", "IConvolutionLayer"),
    ("CUMULATIVE", "ICumulativeLayer"),
    ("DECONVOLUTION", "IDeconvolutionLayer"),
    ("DEQUANTIZE", "IDequantizeLayer"),
    ("DIST_COLLECTIVE", "IDistCollectiveLayer"),
    ("DYNAMIC_QUANTIZE", "IDynamicQuantizeLayer"),
    ("EINSUM", "IEinsumLayer"),
    ("ELEMENTWISE", "IElementWiseLayer"),
    ("FILL", "IFillLayer"),
    ("GATHER", "IGatherLayer"),
    ("GRID_SAMPLE", "IGridSampleLayer"),
    ("IDENTITY", "IIdentityLayer"),
    ("ITERATOR", "IIteratorLayer"),
    ("KV_CACHE_UPDATE", "IKVCacheUpdateLayer"),
    ("LOOP_OUTPUT", "ILoopOutputLayer"),
    ("LRN", "ILRNLayer"),
    ("MATRIX_MULTIPLY", "IMatrixMultiplyLayer"),
    ("MOE", "IMoELayer"),
    ("NMS", "INMSLayer"),
    ("NON_ZERO", "INonZeroLayer"),
    ("NORMALIZATION", "INormalizationLayer"),
    ("ONE_HOT", "IOneHotLayer"),
    ("PADDING", "IPaddingLayer"),
    ("PARAMETRIC_RELU", "IParametricReLULayer"),
    ("PLUGIN", "IPluginLayer"),
    ("PLUGIN_V2", "IPluginV2Layer"),
    ("PLUGIN_V3", "IPluginV3Layer"),
    ("POOLING", "IPoolingLayer"),
    ("QUANTIZE", "IQuantizeLayer"),
    ("RAGGED_SOFTMAX", "IRaggedSoftMaxLayer"),
    ("RECURRENCE", "IRecurrenceLayer"),
    ("REDUCE", "IReduceLayer"),
    ("RESIZE", "IResizeLayer"),
    ("REVERSE_SEQUENCE", "IReverseSequenceLayer"),
    ("ROTARY_EMBEDDING", "IRotaryEmbeddingLayer"),
    ("SCALE", "IScaleLayer"),
    ("SCATTER", "IScatterLayer"),
    ("SELECT", "ISelectLayer"),
    ("SHAPE", "IShapeLayer"),
    ("SHUFFLE", "IShuffleLayer"),
    ("SLICE", "ISliceLayer"),
    ("SOFTMAX", "ISoftMaxLayer"),
    ("SQUEEZE", "ISqueezeLayer"),
    ("TOPK", "ITopKLayer"),
    ("TRIP_LIMIT", "ITripLimitLayer"),
    ("UNARY", "IUnaryLayer"),
    ("UNSQUEEZE", "IUnsqueezeLayer"),
)


@functools.cache
def classes() -> dict[Any, type]:
    """``trt.LayerType`` -> its ``I*Layer`` class, for the TensorRT that trtdsl loaded."""
    trt = _trt.load()
    table = {}
    for type_name, class_name in _CLASS_NAMES:
        layer_type, cls = getattr(trt.LayerType, type_name, None), getattr(trt, class_name, None)
        if layer_type is not None and cls is not None:
            table[layer_type] = cls
    return table


def layer_type(layer: Any) -> Any:
    """The ``trt.LayerType`` of a layer, downcast or not (``IPoolingLayer.type`` is its PoolingType)."""
    return _trt.load().ILayer.type.__get__(layer)


def downcast(layer: Any) -> Any:
    """Give ``layer`` its concrete class so its parameters can be read.

    Raises ``UnsupportedLayerError`` for a layer type the table does not know.

    Example::

        conv = downcast(net.trt.get_layer(0))
        conv.kernel_size_nd
    """
    kind = layer_type(layer)
    cls = classes().get(kind)
    if cls is None:
        known = ", ".join(sorted(t.name for t in classes()))
        raise UnsupportedLayerError(
            f"cannot read layer {layer.name!r}: no I*Layer class is known for {kind} (trtdsl.layerinfo knows {known})"
        )
    layer.__class__ = cls
    return layer
