"""ops.nms against torchvision.ops.batched_nms, through the reference interpreter.

torchvision decides which boxes survive suppression; the test adds what NvInfer.h
documents around it: candidates need a score above the threshold, only the best
``topk_box_limit`` (box, class) candidates per batch item are considered, at most
``max_output_boxes_per_class`` are kept per class, and rows are ordered by batch, then
by decreasing score. Scores are distinct, so that order is total.
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ops, reference
from trtdsl.errors import ShapeError

torch = pytest.importorskip("torch")
tv_ops = pytest.importorskip("torchvision.ops")

pytestmark = pytest.mark.usefixtures("trt")


def _boxes(rng, b, n, c=None, fmt="xyxy"):
    shape = (b, n) if c is None else (b, n, c)
    centre = rng.uniform(0, 12, (*shape, 2))
    size = rng.uniform(1, 5, (*shape, 2))
    if fmt == "cxcywh":
        return np.concatenate([centre, size], -1).astype(np.float32)
    lo, hi = centre - size / 2, centre + size / 2
    swap = rng.random(shape)[..., None] < 0.5  # any two diagonal corners: some boxes give (x2, y2, x1, y1)
    return np.concatenate([np.where(swap, hi, lo), np.where(swap, lo, hi)], -1).astype(np.float32)


def _reference(boxes, scores, limit, iou, score_t, topk, fmt):
    rows = []
    for b in range(scores.shape[0]):
        n_idx, c_idx = np.nonzero(scores[b] > score_t)
        val = scores[b][n_idx, c_idx]
        order = np.argsort(-val, kind="stable")[:topk]
        n_idx, c_idx, val = n_idx[order], c_idx[order], val[order]
        bx = boxes[b][n_idx, c_idx] if boxes.ndim == 4 else boxes[b][n_idx]
        bx = torch.from_numpy(bx.astype(np.float64))
        if fmt == "cxcywh":
            bx = tv_ops.box_convert(bx, "cxcywh", "xyxy")
        else:
            bx = torch.cat([torch.minimum(bx[:, :2], bx[:, 2:]), torch.maximum(bx[:, :2], bx[:, 2:])], 1)
        keep = tv_ops.batched_nms(bx, torch.from_numpy(val.astype(np.float64)), torch.from_numpy(c_idx), iou).numpy()
        per_class: dict[int, int] = {}
        for k in keep:  # batched_nms returns decreasing score
            c = int(c_idx[k])
            if per_class.get(c, 0) < limit:
                per_class[c] = per_class.get(c, 0) + 1
                rows.append((b, c, int(n_idx[k])))
    return np.asarray(rows, np.int64).reshape(-1, 3)


def _run(boxes, scores, limit, iou, score_t, *, topk=None, fmt="xyxy", runtime=False, indices_dtype="int32"):
    net = trtdsl.Network("nms")
    tb, ts = net.input("boxes", "float32", boxes.shape), net.input("scores", "float32", scores.shape)
    feeds = {"boxes": boxes, "scores": scores}
    args = [limit, iou, score_t]
    if runtime:  # the three scalars as network inputs, changed per run
        args = [net.input("limit", "int32", ()), net.input("iou", "float32", ()), net.input("thr", "float32", ())]
        feeds.update(limit=np.array(limit, np.int32), iou=np.array(iou, np.float32), thr=np.array(score_t, np.float32))
    idx, count = ops.nms(tb, ts, *args, box_format=fmt, topk_box_limit=topk, indices_dtype=indices_dtype)
    assert idx.shape == (-1, 3) and count.shape == () and count.dtype == "int32"
    net.output(idx, "idx")
    net.output(count, "count")
    out = reference.run(net, feeds)
    assert out["idx"].dtype == np.dtype(indices_dtype)
    assert int(out["count"]) == len(out["idx"])
    return out["idx"], net


CASES = [
    # (batch, boxes, classes, per-class boxes, limit, iou, score threshold, topk)
    (1, 20, 1, False, 100, 0.5, 0.0, None),
    (2, 30, 3, False, 5, 0.4, 0.2, None),
    (3, 25, 4, True, 3, 0.3, 0.5, None),
    (2, 40, 2, False, 100, 0.7, 0.1, 15),
    (1, 30, 3, True, 10, 0.0, 0.0, 12),
    (2, 10, 2, False, 0, 0.5, 0.0, None),
    (2, 15, 3, False, 4, 1.0, 0.9, None),
]


@pytest.mark.parametrize("runtime", [False, True])
@pytest.mark.parametrize("fmt", ["xyxy", "cxcywh"])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_nms_matches_torchvision(case, fmt, runtime, rng):
    b, n, c, per_class, limit, iou, score_t, topk = case
    boxes = _boxes(rng, b, n, c if per_class else None, fmt)
    scores = rng.random((b, n, c)).astype(np.float32)
    got, _ = _run(boxes, scores, limit, iou, score_t, topk=topk, fmt=fmt, runtime=runtime)
    ref = _reference(boxes, scores, limit, iou, score_t, topk or 5000, fmt)
    np.testing.assert_array_equal(got, ref)


def test_output_order_is_batch_then_decreasing_score(rng):
    boxes, scores = _boxes(rng, 3, 30), rng.random((3, 30, 4)).astype(np.float32)
    got, _ = _run(boxes, scores, 100, 0.5, 0.0)
    assert np.all(np.diff(got[:, 0]) >= 0)
    for b in range(3):
        s = scores[b][got[got[:, 0] == b, 2], got[got[:, 0] == b, 1]]
        assert np.all(np.diff(s) < 0)


def test_score_threshold_is_strict_and_int64_indices(rng):
    boxes = np.array([[[0, 0, 1, 1], [5, 5, 6, 6], [10, 10, 11, 11]]], np.float32)
    scores = np.array([[[0.5], [0.3], [0.7]]], np.float32)
    got, _ = _run(boxes, scores, 10, 0.5, 0.5, indices_dtype="int64")
    np.testing.assert_array_equal(got, [[0, 0, 2]])  # 0.5 does not exceed 0.5


def test_nms_has_no_runner_in_rtx_cpu_build(trt, rng):
    if not trt.__name__.startswith("tensorrt_rtx"):
        pytest.skip("full TensorRT builds NMS; only TensorRT-RTX's CPU build lacks it")
    _, net = _run(_boxes(rng, 1, 5), rng.random((1, 5, 1)).astype(np.float32), 3, 0.5, 0.1)
    with pytest.raises(trtdsl.TrtdslError, match="nms has no runners"):
        trtdsl.build(net, progress=False)
    pytest.skip("INMSLayer has no runner in TensorRT-RTX's CPU build: the plan cannot be built here")


def test_nms_bad_inputs_raise():
    net = trtdsl.Network("bad")
    b, s = net.input("b", "float32", (1, 5, 4)), net.input("s", "float32", (1, 5, 2))
    with pytest.raises(ShapeError, match="unknown box_format 'xywh'"):
        ops.nms(b, s, 3, box_format="xywh")
    with pytest.raises(ShapeError, match=r"boxes 'b5'.*expected \(B, N, 4\)"):
        ops.nms(net.input("b5", "float32", (1, 5, 5)), s, 3)
    with pytest.raises(ShapeError, match="disagree on"):
        ops.nms(net.input("b6", "float32", (1, 6, 4)), s, 3)
    with pytest.raises(ShapeError, match="max_output_boxes_per_class.*expected a 0-D int32"):
        ops.nms(b, s, net.input("m", "int64", ()))
    with pytest.raises(ShapeError, match="topk_box_limit must be in 1..5000"):
        ops.nms(b, s, 3, topk_box_limit=6000)
    with pytest.raises(ShapeError, match="iou_threshold must be a number"):
        ops.nms(b, s, 3, iou_threshold=[0.5])
