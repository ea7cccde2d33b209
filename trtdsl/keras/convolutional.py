"""Keras convolutions: Conv1D-3D, DepthwiseConv1D/2D, SeparableConv1D/2D, Conv1D-3DTranspose.

Kernels are converted once, at definition time, to TensorRT's KCRS layouts
(:mod:`trtdsl.weights.layout`). 'same' padding is TensorRT's SAME_UPPER, which
puts the extra pixel at the end as Keras does; 'causal' pads only the start of
the time axis by ``dilation * (kernel - 1)``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from .. import ops
from ..weights import layout
from .core import activate
from .graph import Call, KTensor
from .registry import converts

_CONV = {1: ops.conv1d, 2: ops.conv2d, 3: ops.conv3d}
_DECONV = {1: ops.conv_transpose1d, 2: ops.conv_transpose2d, 3: ops.conv_transpose3d}


_LIMIT = 1 << 14  # far above any real kernel, stride or dilation; below TensorRT's own maxima


def _ints(value: Any, nd: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),) * nd


def _padding(layer: Call, nd: int, ksize: tuple[int, ...], dilation: tuple[int, ...]) -> Any:
    pad = str(layer.config.get("padding", "valid")).lower()
    if pad == "causal":
        if nd != 1:
            raise layer.error("padding='causal' is for Conv1D only")
        return [(dilation[0] * (ksize[0] - 1), 0)]
    if pad not in ("same", "valid"):
        raise layer.error(f"padding {pad!r} is not 'valid', 'same' or 'causal'")
    return pad


def _geometry(layer: Call, nd: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    c = layer.config
    geo = _ints(c["kernel_size"], nd), _ints(c.get("strides", 1), nd), _ints(c.get("dilation_rate", 1), nd)
    for what, values in zip(("kernel_size", "strides", "dilation_rate"), geo):
        if len(values) != nd or min(values) < 1 or max(values) > _LIMIT:
            raise layer.error(f"{what} {values} must be {nd} ints in 1..{_LIMIT}")
    return geo


def _conv(layer: Call, x: KTensor, nd: int) -> KTensor:
    ksize, strides, dilation = _geometry(layer, nd)
    filters = int(layer.config["filters"])
    groups = int(layer.config.get("groups", 1) or 1)
    kernel = layer.take("kernel", (*ksize, None, filters))
    t = layer.channels_first(x)
    y = _CONV[nd](
        t, layout.keras_conv(kernel), layer.bias(filters), stride=strides,
        padding=_padding(layer, nd, ksize, dilation), dilation=dilation, groups=groups,
    )  # fmt: skip
    return activate(layer, layer.spatial_out(y))


def _depthwise(layer: Call, x: KTensor, nd: int, bias_key: str | None = "bias") -> tuple[Any, int]:
    ksize, strides, dilation = _geometry(layer, nd)
    t = layer.channels_first(x)
    c_in = t.shape[1]
    mult = int(layer.config.get("depth_multiplier", 1))
    kernel = layer.take("depthwise_kernel", (*ksize, c_in, mult))
    bias = layer.bias(c_in * mult) if bias_key else None
    y = _CONV[nd](
        t, layout.keras_depthwise(kernel), bias, stride=strides, padding=_padding(layer, nd, ksize, dilation),
        dilation=dilation, groups=c_in,
    )  # fmt: skip
    return y, c_in * mult


def _separable(layer: Call, x: KTensor, nd: int) -> KTensor:
    with layer.net.scope("depthwise"):
        y, mid = _depthwise(layer, x, nd, bias_key=None)
    filters = int(layer.config["filters"])
    pointwise = layer.take("pointwise_kernel", (*([1] * nd), mid, filters))
    with layer.net.scope("pointwise"):
        y = _CONV[nd](y, layout.keras_conv(pointwise), layer.bias(filters))
    return activate(layer, layer.spatial_out(y))


def _transpose_crops(layer: Call, nd: int, ksize, strides, dilation) -> list[tuple[int, int]]:
    """Per spatial dim, what to cut from each end of the full ``(in - 1) * s + k`` deconvolution output.

    Keras' sizes (keras/src/backend/common/backend_utils.py, the padding JAX is given and every
    backend follows): 'valid' keeps the full output and adds ``output_padding`` (default
    ``max(k, s) - k``) at the end; 'same' pads ``s + k - 2`` in all (``k + k % 2 - 2 + output_padding``
    with output_padding), the larger half first, at most ``k - 1``. A negative cut is zeros added.
    """
    c = layer.config
    pad = str(c.get("padding", "valid")).lower()
    if pad not in ("same", "valid"):
        raise layer.error(f"padding {pad!r} is not 'valid' or 'same'")
    opad = c.get("output_padding")
    ops_ = None if opad is None else _ints(opad, nd)
    if ops_ is not None and (len(ops_) != nd or min(ops_) < 0):
        raise layer.error(f"output_padding {opad!r} must be {nd} non-negative ints")
    crops = []
    for i in range(nd):
        k, s = (ksize[i] - 1) * dilation[i] + 1, strides[i]
        op = None if ops_ is None else ops_[i]
        if pad == "valid":
            left, right = k - 1, k - 1 + (max(k, s) - k if op is None else op)
        else:
            total = s + k - 2 if op is None else k + k % 2 - 2 + op
            left = min(total // 2 + total % 2, k - 1)
            right = total - left
        crops.append((k - 1 - left, k - 1 - right))
    return crops


def _transpose(layer: Call, x: KTensor, nd: int) -> KTensor:
    ksize, strides, dilation = _geometry(layer, nd)
    filters = int(layer.config["filters"])
    kernel = layer.take("kernel", (*ksize, filters, None))
    crops = _transpose_crops(layer, nd, ksize, strides, dilation)
    grow = any(min(c) < 0 for c in crops)
    bias = layer.bias(filters)
    t = layer.channels_first(x)
    y = _DECONV[nd](
        t, layout.keras_conv_transpose(kernel), None if grow else bias, stride=strides,
        padding=[(max(a, 0), max(b, 0)) for a, b in crops], dilation=dilation,
    )  # fmt: skip
    if grow:  # zeros past the full output (Keras pads them before adding the bias)
        y = ops.pad(y, [-min(v, 0) for pair in reversed(crops) for v in pair])
        if bias is not None:
            y = ops.add(y, bias.reshape(-1, *([1] * nd)).astype("float32"))
    return activate(layer, layer.spatial_out(y))


def _depthwise_layer(layer: Call, x: KTensor, nd: int) -> KTensor:
    return activate(layer, layer.spatial_out(_depthwise(layer, x, nd)[0]))


# One converter per class, registered for both of Keras' spellings of each name.
for _nd in (1, 2, 3):
    converts(f"Conv{_nd}D", f"Convolution{_nd}D")(partial(_conv, nd=_nd))
    converts(f"Conv{_nd}DTranspose", f"Convolution{_nd}DTranspose")(partial(_transpose, nd=_nd))
for _nd in (1, 2):
    converts(f"DepthwiseConv{_nd}D")(partial(_depthwise_layer, nd=_nd))
    converts(f"SeparableConv{_nd}D", f"SeparableConvolution{_nd}D")(partial(_separable, nd=_nd))
