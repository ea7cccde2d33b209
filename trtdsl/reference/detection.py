"""Reference implementation: INMSLayer (non-maximum suppression), as NvInfer.h documents it.

Per batch item, every (box, class) whose score exceeds the score threshold is a
candidate; candidates are sorted by score without regard to class and only the
first ``topk_box_limit`` are kept. Then, per class, candidates are visited in
decreasing score and a box is selected when its IoU with every box already
selected for that class is at most the IoU threshold, up to
``max_output_boxes_per_class``. The output rows (batch, class, box) are sorted by
increasing batch and then decreasing score (equal scores: by class, then box
index; NvInfer.h leaves that order unspecified), and the second output is the
row count. Boxes are CORNER_PAIRS (any two diagonal corners) or CENTER_SIZES
(centre x, centre y, width, height).
"""

from __future__ import annotations

import numpy as np

from .registry import Node, interprets


def _corners(boxes: np.ndarray, fmt: str) -> np.ndarray:
    """(..., 4) boxes as (lo0, lo1, hi0, hi1) corners."""
    b = boxes.astype(np.float64)
    if fmt == "CENTER_SIZES":
        half = np.abs(b[..., 2:]) / 2
        return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)
    return np.concatenate([np.minimum(b[..., :2], b[..., 2:]), np.maximum(b[..., :2], b[..., 2:])], axis=-1)


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one corner box with each of ``others`` (0 where the union is empty)."""
    lo = np.maximum(box[:2], others[:, :2])
    hi = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    union = area + np.prod(others[:, 2:] - others[:, :2], axis=1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def _greedy(corners: np.ndarray, iou_threshold: float, limit: int) -> list[int]:
    """Positions (into ``corners``, sorted by decreasing score) that survive suppression."""
    alive = np.ones(len(corners), bool)
    kept: list[int] = []
    for i in range(len(corners)):
        if len(kept) >= limit:
            break
        if not alive[i]:
            continue
        kept.append(i)
        rest = slice(i + 1, None)
        alive[rest] &= _iou(corners[i], corners[rest]) <= iou_threshold
    return kept


def _scalar(value: np.ndarray | None, default: float) -> float:
    return default if value is None else float(np.asarray(value).reshape(-1)[0])


@interprets("nms", fresh=True)
def nms(
    node: Node,
    boxes: np.ndarray,
    scores: np.ndarray,
    max_per_class: np.ndarray,
    iou_threshold: np.ndarray | None = None,
    score_threshold: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    layer = node.layer
    corners = _corners(boxes, layer.bounding_box_format.name)
    per_class = corners.ndim == 4  # [B, N, C, 4] rather than one box for all classes
    limit = int(np.asarray(max_per_class).reshape(-1)[0])
    iou_t, score_t = _scalar(iou_threshold, 0.0), _scalar(score_threshold, 0.0)
    topk = int(layer.topk_box_limit)
    rows: list[tuple[int, int, int]] = []
    for b in range(scores.shape[0]):
        s = scores[b].astype(np.float64)  # (N, C)
        box_i, cls_i = np.nonzero(s > score_t)
        val = s[box_i, cls_i]
        # Decreasing score, then class, then box index: one total order, so runs repeat.
        order = np.lexsort((box_i, cls_i, -val))[:topk]
        box_i, cls_i, val = box_i[order], cls_i[order], val[order]
        picked: list[tuple[float, int, int]] = []
        for c in np.unique(cls_i):
            mine = np.flatnonzero(cls_i == c)  # still in decreasing score
            ids = box_i[mine]
            cb = corners[b, ids, c] if per_class else corners[b, ids]
            for pos in _greedy(cb, iou_t, limit):
                picked.append((val[mine[pos]], int(c), int(ids[pos])))
        picked.sort(key=lambda t: (-t[0], t[1], t[2]))
        rows.extend((b, c, n) for _, c, n in picked)
    indices = np.asarray(rows, np.int64).reshape(-1, 3)
    return indices, np.asarray(len(rows), np.int32)
