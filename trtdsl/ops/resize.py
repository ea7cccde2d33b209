"""Resizing with ``torch.nn.functional.interpolate`` semantics, on one ``IResizeLayer``.

PyTorch's modes map onto TensorRT's interpolation mode, coordinate
transformation and nearest rounding:

=================  ===========  ==============================  ========
mode               TensorRT     coordinates                     rounding
=================  ===========  ==============================  ========
nearest            NEAREST      ASYMMETRIC                      FLOOR
nearest-exact      NEAREST      HALF_PIXEL                      HALF_UP
linear/bilinear/   LINEAR       HALF_PIXEL, or ALIGN_CORNERS
trilinear                       with ``align_corners=True``
bicubic            CUBIC (-.75) HALF_PIXEL or ALIGN_CORNERS
=================  ===========  ==============================  ========

TensorRT maps coordinates with the ratio of input to output length. For a
``scale_factor`` whose output size is not an exact multiple of the input, that
is PyTorch's ``recompute_scale_factor=True``; for sizes and integral scales it
is PyTorch's default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import _trt
from ..errors import ShapeError
from ..tensor import Tensor

__all__ = ["interpolate"]

_MODES = {
    # mode: (InterpolationMode, ranks it takes)
    "nearest": ("NEAREST", (3, 4, 5)),
    "nearest-exact": ("NEAREST", (3, 4, 5)),
    "linear": ("LINEAR", (3,)),
    "bilinear": ("LINEAR", (4,)),
    "trilinear": ("LINEAR", (5,)),
    "bicubic": ("CUBIC", (4,)),
}


def _float_scale(i: int, o: int) -> float:
    """The smallest float32 scale s with floor(i * s) == o in float32, as TensorRT sizes outputs."""
    s = np.float32(o / i)
    while math.floor(np.float32(i) * s) < o:
        s = np.nextafter(s, np.float32(np.inf))
    while math.floor(np.float32(i) * s) > o:
        s = np.nextafter(s, np.float32(0))
    return float(s)


def interpolate(
    x: Tensor,
    size: int | Sequence[int] | None = None,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    *,
    name: str | None = None,
) -> Tensor:
    """Resize the spatial dims of (N, C, *spatial), like ``torch.nn.functional.interpolate``.

    Give exactly one of ``size`` (output spatial size) or ``scale_factor``
    (output = floor(input * scale)). ``align_corners`` applies to the linear
    and cubic modes only, as in PyTorch.

    Example::

        up = ops.interpolate(x, scale_factor=2, mode="bilinear")          # half-pixel, like torch
        y = ops.interpolate(x, size=(32, 32), mode="bicubic", align_corners=True)
    """
    trt = _trt.load()
    net = x.net
    kind = "interpolate"
    what = f"{kind} {name!r}" if name else kind
    if mode not in _MODES:
        raise ShapeError(f"{what}: unknown mode {mode!r}; expected one of {', '.join(_MODES)}")
    interp, ranks = _MODES[mode]
    if x.ndim not in ranks:
        raise ShapeError(
            f"{what}: mode {mode!r} takes inputs of rank {' or '.join(map(str, ranks))}, "
            f"got {x.name!r} with shape {x.shape}"
        )
    if interp == "NEAREST" and align_corners is not None:
        raise ShapeError(f"{what}: align_corners applies to linear and cubic modes only, not {mode!r}")
    if (size is None) == (scale_factor is None):
        raise ShapeError(f"{what}: give exactly one of size or scale_factor")
    nd = x.ndim - 2
    x = net.to_compute(x)
    layer = net.trt.add_resize(x.trt)
    layer.resize_mode = getattr(trt.InterpolationMode, interp)
    if mode == "nearest":
        coords, rounding = "ASYMMETRIC", "FLOOR"
    elif mode == "nearest-exact":
        coords, rounding = "HALF_PIXEL", "HALF_UP"
    else:
        coords, rounding = ("ALIGN_CORNERS" if align_corners else "HALF_PIXEL"), "FLOOR"
    layer.coordinate_transformation = getattr(trt.ResizeCoordinateTransformation, coords)
    layer.nearest_rounding = getattr(trt.ResizeRoundMode, rounding)
    layer.selector_for_single_pixel = trt.ResizeSelector.FORMULA
    if interp == "CUBIC":
        layer.cubic_coeff = -0.75  # PyTorch's and TensorRT's default
        layer.exclude_outside = False
    spatial = x.shape[2:]
    if size is not None:
        out = (int(size),) * nd if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)
        if len(out) != nd or min(out) < 1:
            raise ShapeError(f"{what}: size needs {nd} positive values, got {size!r}")
        if min(x.shape) >= 0:
            layer.shape = (*x.shape[:2], *out)
        elif min(spatial) >= 0:
            layer.scales = [1.0, 1.0, *(_float_scale(i, o) for i, o in zip(spatial, out, strict=True))]
        else:
            raise ShapeError(f"{what}: size= needs static spatial dims, got input shape {x.shape}; use scale_factor")
    else:
        scales = (float(scale_factor),) * nd if np.ndim(scale_factor) == 0 else tuple(map(float, scale_factor))
        if len(scales) != nd or min(scales) <= 0:
            raise ShapeError(f"{what}: scale_factor needs {nd} positive values, got {scale_factor!r}")
        layer.scales = [1.0, 1.0, *scales]
    return net.register(layer, kind, name)
