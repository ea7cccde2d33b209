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


ARGS_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import trtdsl
    from trtdsl import ops

    SEEN = {}

    def build_network(width=3, scale=1.0, name="tiny"):
        SEEN.update(argv=list(sys.argv))
        net = trtdsl.Network(name)
        x = net.input("x", "float32", (1, width))
        net.output(x * np.float32(scale), "y")
        return net

    def configure_builder(config):
        config.avg_timing_iterations = 2
    """
)


def test_script_arguments_reach_build_network(tmp_path, capsys):
    script = tmp_path / "args.py"
    script.write_text(ARGS_SCRIPT)
    plan = tmp_path / "a.plan"
    argv = ["build", str(script), "-o", str(plan), "--no-progress", "--arg", "name='wide'", "--", "5", "--scale=2.5"]
    assert main(argv) == 0
    import json

    meta = json.loads((tmp_path / "a.plan.json").read_text())
    assert meta["network"] == "wide" and meta["inputs"][0]["shape"] == [1, 5]
    assert meta["options"]["configure"] == "configure_builder"  # the script's hook edited the config
    capsys.readouterr()
    x = np.ones((1, 4), np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(script), "--reference", "--input", f"x={tmp_path / 'x.npy'}", "--arg", "width=4",
                 "--arg", "scale=3"]) == 0  # fmt: skip
    assert "y: float32 (1, 4) [3., 3., 3., 3.]" in capsys.readouterr().out


def test_builder_options_reach_the_config(script, tmp_path):
    plan = tmp_path / "o.plan"
    argv = ["build", str(script), "-o", str(plan), "--no-progress", "--profiling-verbosity", "detailed",
            "--aux-streams", "0", "--workspace", "64"]  # fmt: skip
    assert main(argv) == 0
    import json

    options = json.loads((tmp_path / "o.plan.json").read_text())["options"]
    assert options["profiling_verbosity"] == "detailed" and options["max_aux_streams"] == 0
    assert options["memory_pools"] == {"WORKSPACE": 64 << 20}


EMBED_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import trtdsl
    from trtdsl import ops

    def build_network():
        net = trtdsl.Network("embed")
        b, s = net.dim("batch", 1, 2, 4), net.dim("seq", 1, 5, 64)
        net.add_profile(batch=(1, 1, 1), seq=(60, 61, 64))
        ids = net.input("ids", "int32", (b, s))
        mask = net.input("mask", "float32", (b, s))
        table = np.arange(1000 * 2, dtype=np.float32).reshape(1000, 2)
        y = ops.embedding(ops.cast(ids, "int64"), table) * ops.unsqueeze(mask, 2)
        net.output(y, "y")
        net.output(ids, "ids_out")
        return net
    """
)


def test_run_random_inputs_follow_the_given_shapes_and_the_embedding_size(tmp_path, capsys):
    script = tmp_path / "embed.py"
    script.write_text(EMBED_SCRIPT)
    out = tmp_path / "o.npz"
    assert main(["run", str(script), "--shapes", "ids:3x7", "--save", str(out)]) == 0
    with np.load(out) as data:
        assert data["y"].shape == (3, 7, 2)  # the mask was made 3x7 like the ids, not at the opt shape
        ids = data["ids_out"]
    assert ids.shape == (3, 7) and ids.min() >= 0 and ids.max() < 1000 and ids.max() >= 10  # the table's range
    capsys.readouterr()
    assert main(["run", str(script), "--profile", "1", "--save", str(out)]) == 0
    with np.load(out) as data:
        assert data["y"].shape == (1, 61, 2)  # profile 1's opt shape


def test_run_accepts_npz_inputs_by_name(script, tmp_path, capsys):
    x = np.array([[0.0, 1.0, 2.0]], np.float32)
    np.savez(tmp_path / "feeds.npz", x=x)
    assert main(["run", str(script), "--input", str(tmp_path / "feeds.npz"), "--reference"]) == 0
    assert "y: float32 (1, 3)" in capsys.readouterr().out
    np.savez(tmp_path / "one.npz", whatever=x)
    assert main(["run", str(script), "--input", f"x={tmp_path / 'one.npz'}", "--reference"]) == 0


def test_compare_tolerance_presets(tmp_path, capsys):
    from trtdsl import golden

    golden.record({"y": np.array([1.0, 2.0], np.float32)}, tmp_path / "a.npz")
    golden.record({"y": np.array([1.0, 2.005], np.float32)}, tmp_path / "b.npz")
    assert main(["compare", str(tmp_path / "b.npz"), str(tmp_path / "a.npz")]) == 1  # float32 default
    assert main(["compare", str(tmp_path / "b.npz"), str(tmp_path / "a.npz"), "--tolerance", "float16"]) == 0
    assert "atol" in capsys.readouterr().out
    # a preset with one value overridden
    assert main(["compare", str(tmp_path / "b.npz"), str(tmp_path / "a.npz"), "--tolerance", "float16",
                 "--rtol", "0"]) == 1  # fmt: skip


def test_info_prints_named_dims(script, tmp_path, capsys):
    plan = tmp_path / "tiny.plan"
    assert main(["build", str(script), "-o", str(plan), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["info", str(plan)]) == 0
    out = capsys.readouterr().out
    assert "x: float32 (batch, 3)" in out and "y: float32 (batch, 3)" in out and "-1" not in out


def test_subcommands_are_one_registration_each():
    import argparse

    from trtdsl import cli

    seen = {}

    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("thing")

    cli.register("echo-test", "print a thing", add, lambda args: seen.setdefault("thing", args.thing) and 0)
    try:
        assert main(["echo-test", "hello"]) == 0 and seen == {"thing": "hello"}
        with pytest.raises(Exception, match="registered twice"):
            cli.register("echo-test", "again", add, lambda args: 0)
    finally:
        del cli.COMMANDS["echo-test"]


def test_plans_keep_index_ranges_for_random_ids(tmp_path):
    import json

    script = tmp_path / "embed.py"
    script.write_text(EMBED_SCRIPT)
    plan = tmp_path / "e.plan"
    assert main(["build", str(script), "-o", str(plan), "--no-progress"]) == 0
    assert json.loads((tmp_path / "e.plan.json").read_text())["options"]["index_ranges"] == {"ids": 1000}


def _onnx_model(path):
    """x (N, 3) -> relu(x @ W + b), with a dynamic batch dim N; written with onnx.helper."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]  # fmt: skip
    graph = helper.make_graph(
        nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w, b],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_run_and_build_an_onnx_model(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    model = _onnx_model(tmp_path / "dense.onnx")
    x = np.random.default_rng(1).standard_normal((3, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    assert main(["run", str(model), "--dim", "N=1,2,4", "--input", f"x={tmp_path / 'x.npy'}", "--save", str(out)]) == 0
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(np.load(out)["y"], expected, rtol=1e-6, atol=1e-6)
    plan = tmp_path / "dense.plan"
    assert main(["build", str(model), "--dim", "N=1,2,4", "-o", str(plan), "--no-progress", "--opt-level", "0"]) == 0
    capsys.readouterr()
    assert main(["info", str(plan)]) == 0
    assert "N" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["run", "{onnx}"], "dim 'N'"),
     (["run", "{onnx}", "--dim", "N=4,2,8"], "expected 1 <= min <= opt <= max"),
     (["run", "{onnx}", "--dim", "N"], "expected NAME=MIN,OPT,MAX or NAME=N"),
     (["build", "{onnx}", "--arg", "width=4"], "--arg and arguments after -- are for network scripts"),
     (["run", "{script}", "--dim", "batch=1,2,4"], "--dim is for ONNX models"),
     (["build", "{binary}"], "is a binary file, not a network script; expected SCRIPT.py")],
)  # fmt: skip
def test_onnx_and_script_targets_refuse_the_other_ones_options(tmp_path, script, capsys, argv, message):
    files = {"onnx": _onnx_model(tmp_path / "dense.onnx"), "script": script, "binary": tmp_path / "model.plan"}
    files["binary"].write_bytes(b"\x00\x01trt plan")
    assert main([a.format(**files) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_info_on_a_network_lists_its_inputs_outputs_and_profiles(tmp_path, script, capsys):
    assert main(["info", str(_onnx_model(tmp_path / "dense.onnx")), "--dim", "N=1,2,4", "--layers"]) == 0
    out = capsys.readouterr().out
    assert "network 'dense' (float32): 6 layers" in out  # MatMul, Add, Relu and the weights' constants
    assert "  x: float32 (N, 3)" in out and "  y: float32 (-1, 4)" in out and "profile 0: N 1..2..4" in out
    assert "matrix_multiply" in out  # the --layers table
    assert main(["info", str(script)]) == 0
    out = capsys.readouterr().out
    assert "network 'tiny' (float32)" in out and "  x: float32 (batch, 3)" in out and "profile 0: batch 1..2..4" in out


def test_a_closed_pipe_ends_the_command_quietly(script, monkeypatch, capsys):
    import io
    import os
    import sys

    class Closed(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            return 99

    redirected = []
    monkeypatch.setattr(os, "dup2", lambda fd, to: redirected.append(to))
    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["info", str(script)]) == 141  # as a shell reports a process ended by SIGPIPE
    assert redirected == [99] and capsys.readouterr().err == ""


def test_warnings_are_one_line_like_errors(tmp_path, capsys):
    import warnings

    from trtdsl.cli import register
    from trtdsl.errors import CalibrationWarning

    def run(args):
        warnings.warn("exclude pattern 'x*' matches no layer.\n  second line", CalibrationWarning, stacklevel=2)
        return 0

    register("warn-test", "emits a warning", lambda p: None, run)
    try:
        assert main(["warn-test"]) == 0
    finally:
        from trtdsl.cli import COMMANDS

        COMMANDS.pop("warn-test")
    err = capsys.readouterr().err
    assert err == "trtdsl warn-test: CalibrationWarning: exclude pattern 'x*' matches no layer. second line\n"
    assert warnings.showwarning.__module__ == "warnings"  # the CLI's display is undone when the command ends
