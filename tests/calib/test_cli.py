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


def _conv_onnx(path):
    """A static batch-1 ONNX model, x (1, 1, 8, 8) -> relu(conv(x)), as exporters write them."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 1, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_build_int8_of_a_static_batch_onnx_model_calibrates_one_sample_at_a_time(tmp_path, capsys):
    model = _conv_onnx(tmp_path / "conv.onnx")
    data = tmp_path / "calib.npz"
    np.savez(data, x=np.random.default_rng(1).uniform(0, 1, (5, 1, 8, 8)).astype(np.float32))
    plan = tmp_path / "conv.plan"
    assert main(["build", str(model), "--int8", "--calib", str(data), "-o", str(plan), "--no-progress"]) == 0
    assert plan.stat().st_size > 0 and "int8, entropy" in capsys.readouterr().out
    # An explicit batch the network cannot take is still the user's to fix, with the shapes named.
    assert main(["build", str(model), "--int8", "--calib", str(data), "--calib-batch", "5", "-o", str(plan)]) == 2
    err = capsys.readouterr().err
    assert "input 'x' expects shape (1, 1, 8, 8), got (5, 1, 8, 8): the network's batch is static (1)" in err
    assert "--calib-batch 1" in err


def test_default_calibration_batch_follows_the_network():
    import trtdsl
    from trtdsl.calib.cli import DEFAULT_BATCH, default_batch

    def net(first, dim=None):
        n = trtdsl.Network("n")
        if dim:
            n.dim("batch", *dim)
        n.input("x", "float32", (first, 3))
        return n

    assert default_batch(net(1)) == 1 and default_batch(net(8)) == 8
    assert default_batch(net("batch", (1, 8, 16))) == 16  # within the profile
    assert default_batch(net("batch", (1, 8, 64))) == DEFAULT_BATCH
    assert default_batch(net("batch", (40, 48, 64))) == 40
