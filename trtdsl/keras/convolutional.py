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


def _transpose(layer: Call, x: KTensor, nd: int) -> KTensor:
    ksize, strides, dilation = _geometry(layer, nd)
    filters = int(layer.config["filters"])
    kernel = layer.take("kernel", (*ksize, filters, None))
    pad = str(layer.config.get("padding", "valid")).lower()
    opad = layer.config.get("output_padding")
    eff = tuple((k - 1) * d + 1 for k, d in zip(ksize, dilation))
    pre, post = [], []
    for i in range(nd):
        k, s = eff[i], strides[i]
        if opad is None:
            # Keras' sizes: 'valid' -> (in-1)*s + k (needs k >= s); 'same' -> in*s, cropping k - s with
            # the larger half at the end (the gradient of a SAME_UPPER convolution).
            if k < s:
                raise layer.error(
                    f"a kernel of {k} smaller than its stride {s} without output_padding is not supported"
                )
            total = 0 if pad == "valid" else k - s
            pre.append(total // 2)
            post.append(total - total // 2)
        else:
            op = _ints(opad, nd)[i]
            p = k // 2 if pad == "same" else 0
            if op > p:
                raise layer.error(f"output_padding {op} larger than the padding {p} is not supported")
            pre.append(p)
            post.append(p - op)
    t = layer.channels_first(x)
    y = _DECONV[nd](
        t, layout.keras_conv_transpose(kernel), layer.bias(filters), stride=strides,
        padding=list(zip(pre, post)), dilation=dilation,
    )  # fmt: skip
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
