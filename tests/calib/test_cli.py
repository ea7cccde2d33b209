"""``trtdsl build --int8/--fp8 --calib ...`` and ``trtdsl calib report``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trtdsl.cli import main

pytestmark = pytest.mark.usefixtures("trt")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def calib_npz(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "calib.npz"
    np.savez(p, images=rng.uniform(0, 1, (64, 1, 8, 8)).astype(np.float32))
    return p


def test_build_int8_writes_plan_cache_and_report(tmp_path, calib_npz, capsys):
    plan, cache, report = tmp_path / "d.plan", tmp_path / "d.cache", tmp_path / "r.json"
    rc = main(["build", str(EXAMPLES / "digits_cnn.py"), "--int8", "--calib", str(calib_npz), "--calib-cache", str(cache),
               "--exclude", "classifier.3*", "--calib-report", str(report), "-o", str(plan), "--no-progress"])  # fmt: skip
    assert rc == 0 and plan.stat().st_size > 0
    out = capsys.readouterr().out
    assert "quantization of 'digits_cnn': int8, entropy" in out and "excluded: classifier.3.linear.matmul" in out
    assert cache.read_text().startswith("TRT-100000-EntropyCalibration2\n")
    rep = json.loads(report.read_text())
    acts = [t for t in rep["tensors"] if t["kind"] == "activation"]
    # The network input and the inputs of features.3, features.6 and classifier.1 (classifier.3 is excluded).
    assert acts[0]["tensor"] == "images"
    readers = {t["readers"][0] for t in acts}
    assert readers == {"features.0.conv", "features.3.conv", "features.6.conv2d", "classifier.1.linear.matmul"}
    # The cache now exists: a second build takes its ranges without data.
    rc = main(["build", str(EXAMPLES / "digits_cnn.py"), "--int8", "--calib-cache", str(cache), "-o", str(plan),
               "--exclude", "classifier.3*", "--no-progress"])  # fmt: skip
    assert rc == 0 and "cache (EntropyCalibration2)" in capsys.readouterr().out
    assert main(["calib", "report", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "legacy cache TRT-100000-EntropyCalibration2, 4 tensors" in out
    assert all(t["tensor"] in out for t in acts)


def test_build_fp8_with_mse(tmp_path, calib_npz, capsys):
    plan = tmp_path / "d8.plan"
    rc = main(["build", str(EXAMPLES / "digits_cnn.py"), "--fp8", "--calib", str(calib_npz), "--algo", "mse",
               "--calib-cache", str(tmp_path / "c.json"), "-o", str(plan), "--no-progress"])  # fmt: skip
    assert rc == 0 and plan.is_file()
    assert "fp8, mse" in capsys.readouterr().out
    assert json.loads((tmp_path / "c.json").read_text())["dtype"] == "fp8"


def test_cli_errors_are_clear(tmp_path, calib_npz, capsys):
    script = str(EXAMPLES / "digits_cnn.py")
    assert main(["build", script, "--int8", "-o", str(tmp_path / "x.plan")]) == 2
    assert "needs calibration data (--calib data.npz)" in capsys.readouterr().err
    assert (
        main(["build", script, "--fp8", "--calib", str(calib_npz), "--algo", "entropy", "-o", str(tmp_path / "x.plan")])
        == 2
    )
    assert "integer levels only" in capsys.readouterr().err
    assert main(["build", script, "--calib", str(calib_npz), "-o", str(tmp_path / "x.plan")]) == 2
    assert "--calib needs --int8 or --fp8" in capsys.readouterr().err
    bad = tmp_path / "ort.cache"
    bad.write_text("images 1.0\nrelu.out 3.5\n")
    assert main(["calib", "report", str(bad)]) == 2
    assert "ONNX Runtime" in capsys.readouterr().err
