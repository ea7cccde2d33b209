"""The trtdsl command: build and info on a network script."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from trtdsl.cli import main

pytestmark = pytest.mark.usefixtures("trt")

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import trtdsl
    from trtdsl import ops

    def build_network():
        net = trtdsl.Network("tiny")
        net.dim("batch", 1, 2, 4)
        x = net.input("x", "float32", ("batch", 3))
        net.output(ops.exp(x) + np.float32(1), "y")
        return net
    """
)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(SCRIPT)
    return path


def test_build_then_info(script, tmp_path, capsys):
    plan = tmp_path / "tiny.plan"
    assert main(["build", str(script), "-o", str(plan), "--no-progress", "--opt-level", "0"]) == 0
    assert plan.is_file() and (tmp_path / "tiny.plan.json").is_file()
    capsys.readouterr()
    assert main(["info", str(plan)]) == 0
    out = capsys.readouterr().out
    assert "x: float32 (batch, 3)" in out and "profile 0: batch 1..2..4" in out


def test_run_script_on_reference_and_save(script, tmp_path, capsys):
    x = np.array([[0.0, 1.0, 2.0]], np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    assert main(["run", str(script), "--input", f"x={tmp_path / 'x.npy'}", "--reference", "--save", str(out)]) == 0
    with np.load(out, allow_pickle=False) as data:
        np.testing.assert_allclose(data["y"], np.exp(x) + 1, rtol=1e-6)


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    assert main(["build", str(bad)]) == 2
    assert "bad.py defines no build_network() function" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "nope.plan")]) == 2
    assert "no plan file" in capsys.readouterr().err


def test_compare_exit_code_and_report(tmp_path, capsys):
    from trtdsl import golden

    golden.record({"y": np.array([1.0, 2.0, 3.0], np.float32)}, tmp_path / "a.npz")
    golden.record({"y": np.array([1.0, 2.0, 3.5], np.float32)}, tmp_path / "b.npz")
    assert main(["compare", str(tmp_path / "a.npz"), str(tmp_path / "a.npz")]) == 0
    assert main(["compare", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 1
    out = capsys.readouterr().out
    assert "1 of 3 elements" in out
    assert main(["compare", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--atol", "0.6"]) == 0
