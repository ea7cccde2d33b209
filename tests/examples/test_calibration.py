"""examples/calibration.py: a custom Calibrator subclass and a TensorRT-format (<= 10) calibration cache."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from trtdsl import reference

from ._load import ROOT, example

pytestmark = pytest.mark.usefixtures("trt")


def test_custom_calibrator_writes_a_tensorrt_cache_that_quantizes_the_same(tmp_path):
    ex = example("calibration")
    cache = tmp_path / "digits.cache"
    calibrator = ex["DigitsCalibrator"](cache=cache, progress=False)
    assert calibrator.get_batch()["images"].shape == (32, 1, 8, 8)
    calibrated = ex["calibrate"](cache)
    lines = cache.read_text().splitlines()
    assert lines[0] == "TRT-100000-EntropyCalibration2"
    # Parsed here from TensorRT's format (big-endian float32 scale = amax / 127), not by trtdsl.
    scales = {}
    for line in lines[1:]:
        name, _, hexval = line.rpartition(": ")
        scales[name] = struct.unpack(">f", bytes.fromhex(hexval))[0]
    with np.load(ROOT / "weights" / "digits_calib.npz") as data:
        amax = float(np.abs(data["images"]).max())
    assert scales["images"] * 127 == pytest.approx(amax, rel=1e-6)  # inputs take the data's max
    assert all(0 < s < 1 for s in scales.values()) and len(scales) >= 4
    assert sum(layer.type.name == "QUANTIZE" for layer in calibrated.layers()) >= len(scales)
    cached = ex["from_cache"](cache)
    with np.load(ROOT / "weights" / "digits_test.npz") as data:
        x = data["images"][:64]
    np.testing.assert_array_equal(
        reference.run(cached, {"images": x})["logits"], reference.run(calibrated, {"images": x})["logits"]
    )
    assert ex["accuracy"](cached) >= 0.98  # 99.0% in FP32; INT8 within a point
