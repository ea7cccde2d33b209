"""The examples are real uses: the main job and the hand-written network script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trtdsl
from trtdsl import reference
from trtdsl.cli import load_network, main

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("trt")


def test_main_job_matches_pytorch_on_real_digits(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "main.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[float32] reference interpreter: accuracy 0.9900" in r.stdout
    assert "MATCH (fp32 tolerance)" in r.stdout
    assert (tmp_path / "digits_float32.plan").is_file() and (tmp_path / "digits_float16.plan.json").is_file()


def test_digits_script_builds_and_matches_recorded_torch_logits(tmp_path):
    net = load_network(ROOT / "examples" / "digits_cnn.py")
    with np.load(ROOT / "weights" / "digits_test.npz", allow_pickle=False) as data:
        images, torch_logits = data["images"][:32], data["torch_logits"][:32]
    got = reference.run(net, {"images": images})["logits"]
    np.testing.assert_allclose(got, torch_logits, rtol=1e-4, atol=1e-4)
    # Names come from the checkpoint's scopes, never "(Unnamed Layer* N)".
    names = [layer.name for layer in net.layers()]
    assert "features.0.conv" in names and "classifier.3.linear" in names
    assert (
        main(["build", str(ROOT / "examples" / "digits_cnn.py"), "-o", str(tmp_path / "d.plan"), "--no-progress"]) == 0
    )
    assert trtdsl.Plan.load(tmp_path / "d.plan").inputs["images"].shape == ("batch", 1, 8, 8)


def test_keras_handwritten_matches_keras_prediction():
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "keras_handwritten.py")], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MATCH" in r.stdout.splitlines()[-1]
    assert load_network(ROOT / "examples" / "keras_handwritten.py").outputs.keys() == {"logits"}
