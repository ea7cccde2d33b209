"""Sampling an input at given coordinates: ``grid_sample`` on one ``IGridSampleLayer``.

Names and meaning follow ``torch.nn.functional.grid_sample`` (and ONNX GridSample):

===============  =================
torch            TensorRT
===============  =================
``bilinear``     LINEAR (trilinear on 5-D input)
``nearest``      NEAREST
``bicubic``      CUBIC (4-D input only)
``zeros``        SampleMode.FILL
``border``       SampleMode.CLAMP
``reflection``   SampleMode.REFLECT
===============  =================
"""

from __future__ import annotations

from .. import _trt, dtypes
from ..errors import ShapeError
from ..tensor import Tensor

__all__ = ["grid_sample"]

_MODES = {"bilinear": "LINEAR", "linear": "LINEAR", "nearest": "NEAREST", "bicubic": "CUBIC"}
_PADDING = {"zeros": "FILL", "border": "CLAMP", "reflection": "REFLECT"}


def grid_sample(
    x: Tensor,
    grid: Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = False,
    *,
    name: str | None = None,
) -> Tensor:
    """Sample (N, C, H, W) or (N, C, D, H, W) ``x`` at ``grid`` (N, Ho, Wo, 2) or (N, Do, Ho, Wo, 3).

    The grid holds normalized (x, y[, z]) coordinates: -1 and 1 are the centres of the
    corner pixels with ``align_corners=True``, their outer edges otherwise.

    Example::

        warped = ops.grid_sample(image, flow_grid, mode="bilinear", padding_mode="border")
    """
    trt = _trt.load()
    net = x.net
    what = f"grid_sample {name!r}" if name else "grid_sample"
    if mode not in _MODES:
        raise ShapeError(f"{what}: unknown mode {mode!r}; expected one of {', '.join(_MODES)}")
    if padding_mode not in _PADDING:
        raise ShapeError(f"{what}: unknown padding_mode {padding_mode!r}; expected one of {', '.join(_PADDING)}")
    x = net.to_compute(x)
    dt = x.dtype
    if not dtypes.is_float(dt):
        raise ShapeError(f"{what}: input {x.name!r} has dtype {dt}; grid_sample takes float tensors")
    grid = net.to_compute(grid)
    if x.ndim not in (4, 5):
        raise ShapeError(f"{what}: input {x.name!r} has shape {x.shape}; expected 4-D (N, C, H, W) or 5-D")
    k = x.ndim - 2
    if grid.ndim != x.ndim or grid.shape[-1] != k:
        raise ShapeError(
            f"{what}: grid {grid.name!r} has shape {grid.shape}; expected (N, *out, {k}) of rank {x.ndim} "
            f"for input {x.shape}"
        )
    if grid.shape[0] >= 0 and x.shape[0] >= 0 and grid.shape[0] != x.shape[0]:
        raise ShapeError(f"{what}: grid batch {grid.shape[0]} differs from input batch {x.shape[0]}")
    if mode == "bicubic" and k != 2:
        raise ShapeError(f"{what}: mode 'bicubic' takes 4-D input (as torch), got {x.shape}")
    layer = net.trt.add_grid_sample(x.trt, grid.trt)
    layer.interpolation_mode = getattr(trt.InterpolationMode, _MODES[mode])
    layer.align_corners = bool(align_corners)
    layer.sample_mode = getattr(trt.SampleMode, _PADDING[padding_mode])
    return net.register(layer, "grid_sample", name)
