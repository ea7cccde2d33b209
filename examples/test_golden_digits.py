"""Golden-output tests in pytest, for a hand-written network (copy this file into your own tests/).

    pytest examples/test_golden_digits.py            # TRTDSL_UPDATE_GOLDEN=1 rewrites golden files

The golden outputs are the training framework's own logits (PyTorch,
recorded by examples/train_digits.py), never trtdsl's: the tests prove the
network definition, and on a GPU the same assertions run against the engine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from digits_cnn import build_network

import trtdsl
from trtdsl import golden, reference

DATA = Path(__file__).resolve().parent.parent / "weights" / "digits_test.npz"
pytestmark = pytest.mark.skipif(not trtdsl._trt.available(), reason="TensorRT (trtdsl[rtx]) is not installed")


@pytest.fixture(scope="module")
def data():
    with np.load(DATA, allow_pickle=False) as d:
        return d["images"][:128], d["torch_logits"][:128]


def test_fp32_matches_pytorch(data):
    images, torch_logits = data
    out = reference.run(build_network("float32"), {"images": images})
    golden.assert_golden(out, {"logits": torch_logits}, "float32")  # report table on failure


def test_fp16_policy_within_fp16_tolerance(data):
    images, torch_logits = data
    out = reference.run(build_network("float16"), {"images": images})
    # float16's default (atol 1e-3, rtol 1e-2) suits unit-scale tensors; these logits reach ~20
    # after five fp16 layers, so the absolute part scales with them.
    scale = float(np.abs(torch_logits).max())
    golden.assert_golden(out, {"logits": torch_logits}, golden.Tolerance(atol=2e-3 * scale, rtol=1e-2))
    assert (out["logits"].argmax(1) == torch_logits.argmax(1)).all()


def test_golden_file_written_once_then_compared(data, tmp_path):
    images, torch_logits = data
    path = tmp_path / "digits_golden.npz"
    golden.record({"logits": torch_logits}, path, metadata={"precision": "float32", "source": "PyTorch"})
    golden.assert_golden(reference.run(build_network(), {"images": images}), path)  # tolerance from the metadata


def test_a_wrong_weight_is_caught_and_localized(data, tmp_path):
    images, torch_logits = data
    w = dict(np.load(Path(DATA).parent / "digits_cnn.npz"))
    w["features.6.bias"] = w["features.6.bias"] + 0.5  # a bug: a bias loaded with an offset
    np.savez(tmp_path / "bad.npz", **w)
    bad = build_network(weights_path=tmp_path / "bad.npz")
    with pytest.raises(trtdsl.GoldenMismatch, match="logits"):
        golden.assert_golden(reference.run(bad, {"images": images}), {"logits": torch_logits}, "float32")
    diff = golden.layerwise_diff(bad, {"images": images[:8]}, build_network())
    assert "features.6" in str(diff)  # the first layer whose output parts from the good network
