"""Detection post-processing: ``nms`` on one ``INMSLayer``.

Thresholds and the per-class output limit are runtime inputs of the layer: give
Python numbers (they become constants) or 0-D Tensors. The number of selected
boxes depends on the data, so the indices come back with shape (-1, 3) together
with a scalar count; on a GPU the output needs an ``IOutputAllocator``.

TensorRT-RTX's CPU build has no NMS implementation ("nms has no runners that
implement it"), so such a network builds only with full TensorRT on a GPU; the
reference interpreter runs it anywhere.
"""

from __future__ import annotations

import numpy as np

from .. import _trt, dtypes
from ..errors import ShapeError
from ..tensor import Tensor

__all__ = ["nms"]

_FORMATS = {
    "xyxy": "CORNER_PAIRS", "corners": "CORNER_PAIRS", "corner_pairs": "CORNER_PAIRS",
    "cxcywh": "CENTER_SIZES", "center": "CENTER_SIZES", "center_sizes": "CENTER_SIZES",
}  # fmt: skip


def _scalar(net, value: float | int | Tensor, dtype: str, role: str, base: str) -> Tensor:
    what = f"nms {base!r}"
    if isinstance(value, Tensor):
        if value.ndim != 0 or value.dtype != dtype:
            raise ShapeError(f"{what}: {role} {value.name!r} is {value.dtype} {value.shape}; expected a 0-D {dtype}")
        return value
    if np.ndim(value) != 0:
        raise ShapeError(f"{what}: {role} must be a number or a 0-D Tensor, got shape {np.shape(value)}")
    return net.constant(np.asarray(value, dtypes.to_numpy(dtype)), f"{base}.{role}", dtype=dtype)


def nms(
    boxes: Tensor,
    scores: Tensor,
    max_output_boxes_per_class: int | Tensor,
    iou_threshold: float | Tensor | None = None,
    score_threshold: float | Tensor | None = None,
    *,
    box_format: str = "xyxy",
    topk_box_limit: int | None = None,
    indices_dtype: str = "int32",
    name: str | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-class non-maximum suppression; returns ``(indices, count)``.

    Args:
        boxes: (B, N, 4), shared by all classes, or (B, N, C, 4) per class.
        scores: (B, N, C).
        max_output_boxes_per_class: at most this many boxes per batch item and class.
        iou_threshold: a box is dropped when its IoU with a selected box of its class exceeds
            this (TensorRT's default when None: 0).
        score_threshold: only scores strictly above this are candidates (default 0).
        box_format: ``"xyxy"`` (any two diagonal corners) or ``"cxcywh"`` (centre and size).
        topk_box_limit: only the best this many (box, class) candidates per batch item are
            considered (TensorRT's default: 5000, its maximum).

    ``indices`` is (K, 3) rows of (batch, class, box), sorted by batch and then by
    decreasing score; ``count`` is the int32 scalar K.

    Example::

        keep, count = ops.nms(boxes, scores, 100, iou_threshold=0.5, score_threshold=0.05)
    """
    trt = _trt.load()
    net = boxes.net
    base = net.op_name(name, "nms", boxes)
    what = f"nms {base!r}"
    if box_format not in _FORMATS:
        raise ShapeError(f"{what}: unknown box_format {box_format!r}; expected one of {', '.join(_FORMATS)}")
    boxes = net.to_compute(boxes)
    dt = boxes.dtype
    scores = net.to_compute(scores)
    if not dtypes.is_float(dt) or scores.dtype != dt:
        raise ShapeError(f"{what}: boxes ({boxes.dtype}) and scores ({scores.dtype}) must share one float dtype")
    if boxes.ndim not in (3, 4) or boxes.shape[-1] != 4:
        raise ShapeError(f"{what}: boxes {boxes.name!r} has shape {boxes.shape}; expected (B, N, 4) or (B, N, C, 4)")
    if scores.ndim != 3:
        raise ShapeError(f"{what}: scores {scores.name!r} has shape {scores.shape}; expected (B, N, C)")
    want = boxes.shape[:2] if boxes.ndim == 3 else (*boxes.shape[:2], boxes.shape[2])
    have = scores.shape[:2] if boxes.ndim == 3 else scores.shape
    if any(a >= 0 and b >= 0 and a != b for a, b in zip(want, have, strict=True)):
        raise ShapeError(f"{what}: boxes {boxes.shape} and scores {scores.shape} disagree on (B, N[, C])")
    if indices_dtype not in ("int32", "int64"):
        raise ShapeError(f"{what}: indices_dtype must be 'int32' or 'int64', got {indices_dtype!r}")
    limit = _scalar(net, max_output_boxes_per_class, "int32", "max_output_boxes_per_class", base)
    layer = net.trt.add_nms(boxes.trt, scores.trt, limit.trt, dtypes.to_trt(indices_dtype))
    layer.bounding_box_format = getattr(trt.BoundingBoxFormat, _FORMATS[box_format])
    if topk_box_limit is not None:
        if not 0 < int(topk_box_limit) <= 5000:
            raise ShapeError(f"{what}: topk_box_limit must be in 1..5000 (TensorRT's maximum), got {topk_box_limit}")
        layer.topk_box_limit = int(topk_box_limit)
    for index, value, role in ((3, iou_threshold, "iou_threshold"), (4, score_threshold, "score_threshold")):
        if value is not None:
            layer.set_input(index, _scalar(net, value, "float32", role, base).trt)
    indices = net.register(layer, "nms", base, resolved=True)
    return indices, Tensor(layer.get_output(1), net)
