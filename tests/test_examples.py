"""The examples are real uses: the main job and the hand-written network script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trtdsl
from trtdsl import golden, reference
from trtdsl.cli import load_network, main

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("trt")


def test_main_job_end_to_end_on_the_cpu(tmp_path):
    """`trtdsl demo`, as the README's first command runs it, checked against what the training frameworks recorded."""
    r = subprocess.run(
        [sys.executable, "-m", "trtdsl", "demo", "--out", str(tmp_path), "--no-progress"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {(x["model"], x["precision"]): x for x in json.loads((tmp_path / "results.json").read_text())["rows"]}
    assert set(rows) == {(m, p) for m in ("digits_cnn", "keras") for p in ("fp32", "fp16", "int8", "fp8")}
    outputs, _ = golden.load(tmp_path / "golden.npz")
    with np.load(ROOT / "weights" / "digits_test.npz", allow_pickle=False) as data:
        labels, torch_logits = data["labels"], data["torch_logits"]
    with np.load(ROOT / "weights" / "digits_keras_test.npz", allow_pickle=False) as data:
        keras_logits = data["keras_logits"]
    for model, recorded in (("digits_cnn", torch_logits), ("keras", keras_logits)):
        # FP32 as trained: the accuracy of the framework's own logits, and the logits themselves.
        trained = 100 * float((recorded.argmax(1) == labels).mean())
        assert rows[model, "fp32"]["accuracy"] == pytest.approx(trained)
        got = outputs[f"{model}.fp32"]
        assert np.abs(got - recorded).max() <= 1e-4 * np.abs(recorded).max()
        for precision, bound in (("fp16", 0.5), ("fp8", 0.5), ("int8", 1.0)):
            row = rows[model, precision]
            accuracy = 100 * float((outputs[f"{model}.{precision}"].argmax(1) == labels).mean())
            assert row["accuracy"] == pytest.approx(accuracy)
            assert accuracy >= trained - bound, (model, precision, accuracy, trained)
        for precision in ("fp32", "fp16", "int8", "fp8"):
            assert (tmp_path / f"{model}_{precision}.plan").is_file()
            assert trtdsl.Plan.load(tmp_path / f"{model}_{precision}.plan").inputs["images"].shape[0] == "batch"
            assert rows[model, precision]["ran_on"].startswith(("GPU", "interpreter"))
        for precision in ("int8", "fp8"):
            assert (tmp_path / f"{model}_{precision}.calib").is_file()
            assert (tmp_path / f"{model}_{precision}_quantization.txt").is_file()
    table = r.stdout
    assert "model" in table and "agree fp32" in table and "8/8 rows within their bounds" in table
    assert json.loads((tmp_path / "results.json").read_text())["seconds"] < 120


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


def test_demo_cli_choices_are_the_scripts():
    """trtdsl demo checks --models/--precisions before running the script; both lists must agree."""
    import argparse
    import runpy

    from trtdsl import demo

    script = runpy.run_path(str(ROOT / "examples" / "main.py"), run_name="x")
    p = argparse.ArgumentParser()
    demo._add_demo(p)
    choices = {a.dest: list(a.choices) for a in p._actions if a.choices}
    assert choices == {"models": list(script["MODELS"]), "precisions": list(script["PRECISIONS"])}


def test_main_job_exits_non_zero_when_a_row_misses_its_bound(tmp_path, capsys):
    import runpy

    main = runpy.run_path(str(ROOT / "examples" / "main.py"), run_name="x")["main"]
    main.__globals__["BOUNDS"]["fp16"] = -1.0  # FP16 would have to beat FP32 by a point
    try:
        code = main(["--out", str(tmp_path), "--models", "digits_cnn", "--precisions", "fp16", "--no-progress"])
    finally:
        main.__globals__["BOUNDS"]["fp16"] = 0.5
    out = capsys.readouterr().out
    assert code == 1 and "MISSED: digits_cnn fp16" in out and "1/2 rows within their bounds" in out


def test_keras_handwritten_matches_keras_prediction():
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "keras_handwritten.py")], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MATCH" in r.stdout.splitlines()[-1]
    assert load_network(ROOT / "examples" / "keras_handwritten.py").outputs.keys() == {"logits"}
