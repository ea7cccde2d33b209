"""End-to-end: calibrate on scikit-learn's digits training split, measure top-1 on the test split.

Two real models with committed weights: the digits CNN (examples/digits_cnn.py, 8x8) and
a MobileNetV3-style network (examples/digits_mobilenet.py: depthwise convolutions,
squeeze-excite, hard-swish, residual adds) trained on the digits upscaled to 32x32. The
split is the training scripts' (a fixed permutation; the 400 test images are the ones
committed in weights/digits_test.npz). Calibration never sees a test image. INT8 must
stay within 1 point of FP32 top-1, FP8 within 0.5.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from trtdsl import calib, reference

pytestmark = pytest.mark.usefixtures("trt")
sklearn = pytest.importorskip("sklearn")
ROOT = Path(__file__).resolve().parents[2]


def _example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _digits(size):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    if size != 8:
        import torch

        x = torch.nn.functional.interpolate(
            torch.from_numpy(x), size=(size, size), mode="bilinear", align_corners=False
        ).numpy()
    order = np.random.default_rng(0).permutation(len(x))
    test, train = order[:400], order[400:]
    return x[train], x[test], d.target[test]


def _top1(net, x, y):
    logits = np.concatenate([reference.run(net, {"images": x[i : i + 200]})["logits"] for i in range(0, len(x), 200)])
    return 100.0 * float((logits.argmax(1) == y).mean())


# (dtype, algorithm, bound in points of top-1 below FP32; None: reported, not bounded)
CONFIGS = [("int8", "entropy", 1.0), ("int8", "mse", 1.0), ("int8", "entropy-legacy", None), ("fp8", "max", 0.5),
           ("fp8", "mse", 0.5)]  # fmt: skip
MORE = [("int8", "percentile", 1.0), ("int8", "max", 1.0), ("fp8", "percentile", 0.5)]


def _table(model, fp32, rows):
    lines = [f"{model}: FP32 top-1 {fp32:.2f}%", f"{'dtype':6} {'algorithm':15} {'top-1':>7} {'delta':>7}"]
    lines += [f"{d:6} {a:15} {acc:7.2f} {acc - fp32:+7.2f}" for d, a, acc in rows]
    print("\n" + "\n".join(lines))


def _check_model(model, size, configs):
    mod = _example(model)
    train, test, labels = _digits(size)
    if model == "digits_cnn":  # the committed test split is this split
        np.testing.assert_array_equal(np.load(ROOT / "weights" / "digits_test.npz")["images"], test)
    else:  # the trtdsl definition computes what the trained torch model did on the test split
        ref = np.load(ROOT / "weights" / "digits_mobilenet_test.npz")
        np.testing.assert_array_equal(ref["labels"], labels)
        logits = np.concatenate(
            [reference.run(mod.build_network(), {"images": test[i : i + 200]})["logits"] for i in (0, 200)]
        )
        np.testing.assert_allclose(logits, ref["torch_logits"], atol=1e-4)
    fp32 = _top1(mod.build_network(), test, labels)
    assert fp32 > 90
    # The calibrator path once (INT8 entropy, the default); the other configurations take ranges
    # from one pass of the same collector over the same training batches.
    net = mod.build_network()
    calib.quantize(net, calib.ArrayCalibrator(train, batch_size=256, progress=False), report=False)
    assert net.quant_report.batches == 6  # 1397 training images
    placement = calib.plan(mod.build_network())
    col = calib.Collector(placement.tensors)
    interp = reference.prepare(mod.build_network())
    for i in range(0, len(train), 256):
        col.run(interp, {"images": train[i : i + 256]})
    inputs = [n for n in placement.tensors if n == "images"]
    rows = []
    for dtype, algo, _ in configs:
        ranges = col.ranges(algo, dtype=dtype)
        ranges.update(col.ranges("max", dtype=dtype, names=inputs))  # quantize's input_algorithm default
        if (dtype, algo) == ("int8", "entropy"):
            assert ranges == net.quant_report.ranges
            q = net
        else:
            q = calib.quantize(mod.build_network(), ranges, dtype=dtype, report=False)
        rows.append((dtype, algo, _top1(q, test, labels)))
    _table(model, fp32, rows)
    for (dtype, algo, bound), (_, _, acc) in zip(configs, rows):
        if bound is not None:
            assert acc >= fp32 - bound, (model, dtype, algo, acc, fp32)


@pytest.mark.parametrize(("model", "size"), [("digits_cnn", 8), ("digits_mobilenet", 32)])
def test_quantized_accuracy_on_real_digits(model, size):
    _check_model(model, size, CONFIGS)


@pytest.mark.slow
@pytest.mark.parametrize(("model", "size"), [("digits_cnn", 8), ("digits_mobilenet", 32)])
def test_quantized_accuracy_more_algorithms(model, size):
    _check_model(model, size, MORE)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_network_int8(dtype):
    # The input reaches the first convolution through a cast: it still counts as an input
    # (max range), where the entropy search on 17 grey levels would keep one.
    mod = _example("digits_cnn")
    train, test, labels = _digits(8)
    fp32 = _top1(mod.build_network(), test, labels)
    net = mod.build_network(dtype=dtype)
    calib.quantize(net, calib.ArrayCalibrator(train, batch_size=256, progress=False), report=False)
    assert net.quant_report.rows[0].tensor == f"images.to_{dtype}.out"
    assert net.quant_report.rows[0].algorithm == "max"
    assert _top1(net, test, labels) >= fp32 - 1.0
