"""Reference implementation: IResizeLayer, N-D, every mode and coordinate option.

Resizing is separable, so each resized axis is done alone: every output
position gets its input taps (1 for nearest, 2 for linear, 4 for cubic) and
their weights, and the axis is rebuilt with ``np.take`` and a weighted sum.
Coordinates follow NvInfer.h's ``ResizeCoordinateTransformation`` with the
length ratio ``length_in / length_out`` (also when the layer was given
scales), computed in float32 as a GPU kernel would.
"""

from __future__ import annotations

import math

import numpy as np

from .registry import Node, interprets


def _coordinates(transform: str, selector: str, size_in: int, size_out: int) -> np.ndarray:
    """Input coordinate of each output position along one axis."""
    dst = np.arange(size_out, dtype=np.float32)
    if size_out == 1 and (selector == "UPPER" or transform == "ALIGN_CORNERS"):
        return np.zeros(1, dtype=np.float32)
    if transform == "ALIGN_CORNERS":
        return dst * (np.float32(size_in - 1) / np.float32(size_out - 1))
    ratio = np.float32(size_in) / np.float32(size_out)
    if transform == "ASYMMETRIC":
        return dst * ratio
    return (dst + np.float32(0.5)) * ratio - np.float32(0.5)  # HALF_PIXEL


_ROUND = {
    "HALF_UP": lambda c: np.floor(c + np.float32(0.5)),
    "HALF_DOWN": lambda c: np.ceil(c - np.float32(0.5)),
    "FLOOR": np.floor,
    "CEIL": np.ceil,
}


def _cubic_weight(d: np.ndarray, a: float) -> np.ndarray:
    """NvInfer.h's cubic kernel of coefficient A at distance d."""
    d = np.abs(d)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def taps(layer, size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, weights)``, each (size_out, taps), for one resized axis."""
    mode = layer.resize_mode.name
    coord = _coordinates(layer.coordinate_transformation.name, layer.selector_for_single_pixel.name,
                         size_in, size_out).astype(np.float64)  # fmt: skip
    if mode == "NEAREST":
        index = _ROUND[layer.nearest_rounding.name](coord).astype(np.int64)
        return np.clip(index, 0, size_in - 1)[:, None], np.ones((size_out, 1))
    base = np.floor(coord)
    frac = coord - base
    if mode == "LINEAR":
        index = base[:, None] + np.array([0, 1])
        weight = np.stack([1 - frac, frac], axis=1)
    else:  # CUBIC
        offsets = np.array([-1, 0, 1, 2])
        index = base[:, None] + offsets
        weight = _cubic_weight(frac[:, None] - offsets, float(layer.cubic_coeff))
        if layer.exclude_outside:
            weight = np.where((index < 0) | (index >= size_in), 0.0, weight)
            weight = weight / weight.sum(axis=1, keepdims=True)
    return np.clip(index, 0, size_in - 1).astype(np.int64), weight


def output_shape(node: Node, x: np.ndarray, shape: np.ndarray | None) -> tuple[int, ...]:
    """The output dims: the shape input when wired, else the static dims, else floor(in * scale)."""
    if shape is not None:
        return tuple(int(v) for v in shape)
    layer = node.layer
    static = layer.shape
    if static is not None and len(static) == x.ndim and min(static) >= 0:
        return tuple(static)
    return tuple(math.floor(np.float32(i) * np.float32(s)) for i, s in zip(x.shape, layer.scales, strict=True))


@interprets("resize")
def resize(node: Node, x: np.ndarray, shape: np.ndarray | None = None) -> np.ndarray:
    out = output_shape(node, x, shape)
    for axis, (size_in, size_out) in enumerate(zip(x.shape, out, strict=True)):
        if size_in == size_out:
            continue  # every coordinate transformation maps an unchanged axis onto itself
        index, weight = node.memo(f"taps:{size_in}:{size_out}", lambda i=size_in, o=size_out: taps(node.layer, i, o))
        if index.shape[1] == 1:
            x = np.take(x, index[:, 0], axis=axis)
            continue
        moved = np.moveaxis(x, axis, -1)
        acc = sum(moved[..., index[:, t]] * weight[:, t].astype(x.dtype) for t in range(index.shape[1]))
        x = np.moveaxis(acc, -1, axis)
    return x
