"""Reference implementation: IGridSampleLayer, 4-D and 5-D, every interpolation and sample mode.

The input is (N, C, *spatial) and the grid (N, *out, k) holds normalized coordinates
in [-1, 1], x first (the last spatial axis), as ONNX GridSample and
``torch.nn.functional.grid_sample`` define them (TensorRT's ONNX parser maps the
one onto this layer). A coordinate is unnormalized to ``(g + 1) / 2 · (size - 1)``
with ``align_corners``, else ``((g + 1) · size - 1) / 2``. Sample mode FILL reads
zeros outside the input, CLAMP clips coordinates to the border, REFLECT mirrors them
about the border (the corner pixels' centres with ``align_corners``, else their
outer edges). Linear and nearest modes move the coordinate first; cubic (4-D only)
moves each of its 4 x 4 taps, as torch and ONNX do.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import UnsupportedLayerError
from .registry import Node, interprets

_A = -0.75  # the cubic convolution coefficient of ONNX GridSample and torch's bicubic


def _unnormalize(g: np.ndarray, size: int, align: bool) -> np.ndarray:
    return (g + 1) / 2 * (size - 1) if align else ((g + 1) * size - 1) / 2


def _reflect(c: np.ndarray, lo2: float, hi2: float) -> np.ndarray:
    """Mirror ``c`` into [lo2/2, hi2/2] (bounds given doubled, as torch's reflect_coordinates takes them)."""
    if lo2 == hi2:
        return np.zeros_like(c)
    low, span = lo2 / 2, (hi2 - lo2) / 2
    c = np.abs(c - low)
    extra = np.fmod(c, span)
    flips = np.floor(c / span)
    return np.where(flips % 2 == 0, extra + low, span - extra + low)


def _pad(c: np.ndarray, size: int, mode: str, align: bool) -> np.ndarray:
    """Move a coordinate as the sample mode says (FILL leaves it)."""
    if mode == "CLAMP":
        return np.clip(c, 0, size - 1)
    if mode == "REFLECT":
        c = _reflect(c, 0, 2 * (size - 1)) if align else _reflect(c, -1, 2 * size - 1)
        return np.clip(c, 0, size - 1)
    return c


def _cubic(t: np.ndarray) -> list[np.ndarray]:
    """The weights of taps floor-1 .. floor+2 at fraction ``t``."""

    def near(d):
        return ((_A + 2) * d - (_A + 3)) * d * d + 1

    def far(d):
        return ((_A * d - 5 * _A) * d + 8 * _A) * d - 4 * _A

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _gather(flat: np.ndarray, spatial: tuple[int, ...], idx: list[np.ndarray]) -> np.ndarray:
    """x values (N, C, P) at integer taps ``idx`` (one (N, P) array per spatial axis); zero outside."""
    inside = np.ones(idx[0].shape, bool)
    pos = np.zeros(idx[0].shape, np.int64)
    for i, size in zip(idx, spatial, strict=True):
        inside &= (i >= 0) & (i < size)  # False for NaN, from a NaN or infinite grid value
        pos = pos * size + np.clip(np.nan_to_num(i, nan=0.0), 0, size - 1).astype(np.int64)
    vals = np.take_along_axis(flat, pos[:, None, :], axis=2)
    return vals * inside[:, None, :]


@interprets("grid_sample", fresh=True)
def grid_sample(node: Node, x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # NaN/inf grid values read nothing (zero), without warnings
        return _sample(node, x, grid)


def _sample(node: Node, x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    layer = node.layer
    mode, pad, align = layer.interpolation_mode.name, layer.sample_mode.name, bool(layer.align_corners)
    n, c, *spatial = x.shape
    k = len(spatial)
    out_shape = grid.shape[1:-1]
    if grid.shape[-1] != k or grid.shape[0] != n:
        raise UnsupportedLayerError(f"grid_sample {node.name!r}: grid {grid.shape} does not fit input {x.shape}")
    if pad not in ("FILL", "CLAMP", "REFLECT"):
        raise UnsupportedLayerError(
            f"grid_sample {node.name!r}: sample mode {pad} (TensorRT takes FILL, CLAMP, REFLECT)"
        )
    g = grid.reshape(n, -1, k).astype(np.float64)
    # Spatial axis a (D, H, W order) reads grid component k - 1 - a: x is the last axis.
    coords = [_unnormalize(g[..., k - 1 - a], spatial[a], align) for a in range(k)]
    flat = x.reshape(n, c, -1)
    if mode == "NEAREST":
        idx = [np.rint(_pad(co, s, pad, align)) for co, s in zip(coords, spatial, strict=True)]
        out = _gather(flat, tuple(spatial), idx)
    elif mode == "LINEAR":
        coords = [_pad(co, s, pad, align) for co, s in zip(coords, spatial, strict=True)]
        base = [np.floor(co) for co in coords]
        frac = [co - b for co, b in zip(coords, base, strict=True)]
        out = np.zeros((n, c, g.shape[1]))
        for corner in itertools.product((0, 1), repeat=k):
            w = np.ones(g.shape[:2])
            for bit, f in zip(corner, frac, strict=True):
                w = w * (f if bit else 1 - f)
            out += _gather(flat, tuple(spatial), [b + bit for b, bit in zip(base, corner, strict=True)]) * w[:, None]
    elif mode == "CUBIC":
        if k != 2:
            raise UnsupportedLayerError(
                f"grid_sample {node.name!r}: cubic interpolation takes 4-D input, got {x.shape}"
            )
        base = [np.floor(co) for co in coords]
        weights = [_cubic(co - b) for co, b in zip(coords, base, strict=True)]
        out = np.zeros((n, c, g.shape[1]))
        for ty in range(4):
            for tx in range(4):
                taps = [_pad(base[0] + ty - 1, spatial[0], pad, align), _pad(base[1] + tx - 1, spatial[1], pad, align)]
                w = weights[0][ty] * weights[1][tx]
                # CLAMP and REFLECT move each integer tap to an integer inside; FILL reads zero outside.
                out += _gather(flat, tuple(spatial), taps) * w[:, None]
    else:
        raise UnsupportedLayerError(f"grid_sample {node.name!r}: interpolation mode {mode}")
    return out.reshape(n, c, *out_shape).astype(x.dtype, copy=False)
