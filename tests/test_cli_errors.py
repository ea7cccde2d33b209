"""Every ``trtdsl`` subcommand with bad input: one line on stderr, no traceback, a non-zero exit.

The table is the spec: one row per case, ``(id, argv, exit status, stderr pattern)``.
A subcommand added by another package joins with rows of its own in ``CASES``.

Each case runs as its own process, the way ``python -m trtdsl`` runs
(``runpy.run_module("trtdsl")`` with the case's ``sys.argv``, stdout and stderr
on real file descriptors, so C-level output would count too). To keep the suite
fast, one worker process (``sys.executable``) imports trtdsl and TensorRT once and
forks a child per case; a few cases also run through ``sys.executable -m trtdsl``
itself to check the entry point.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = [
    pytest.mark.usefixtures("trt"),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="the case runner forks (POSIX)"),
]

ROOT = Path(__file__).resolve().parents[1]
KERAS_FILE = str(ROOT / "tests" / "fixtures" / "weights" / "keras3_convnet.keras")

TINY = """
import numpy as np
import trtdsl
from trtdsl import ops

def build_network(width=3):
    net = trtdsl.Network("tiny")
    x = net.input("x", "float32", (net.dim("batch", 1, 2, 4), width))
    net.output(ops.exp(x) + np.float32(1), "y")
    return net
"""

# build_network leaves a marker: a check that must come before the work finds no marker.
MARKER = """
import pathlib, trtdsl
from trtdsl import ops

def build_network():
    pathlib.Path("built.marker").write_text("built")
    net = trtdsl.Network("m")
    net.output(ops.relu(net.input("x", "float32", (1, 2))), "y")
    return net
"""

RAISES = """
def build_network():
    raise RuntimeError("the script's own bug")
"""

EMBED = """
import numpy as np
import trtdsl
from trtdsl import ops

def build_network():
    net = trtdsl.Network("embed")
    b, s = net.dim("batch", 1, 2, 4), net.dim("seq", 1, 5, 8)
    ids = net.input("ids", "int32", (b, s))
    mask = net.input("mask", "float32", (b, s))
    table = np.arange(7 * 4, dtype=np.float32).reshape(7, 4)
    y = ops.embedding(ids, table) * ops.unsqueeze(mask, 2)
    net.output(y, "y")
    return net
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Scripts, good and bad input files, a plan and golden files, written once."""
    d = tmp_path_factory.mktemp("cli")
    for name, text in {"tiny.py": TINY, "marker.py": MARKER, "raises.py": RAISES, "embed.py": EMBED}.items():
        (d / name).write_text(textwrap.dedent(text))
    (d / "syntax.py").write_text("def build_network(:\n")
    (d / "nofn.py").write_text("x = 1\n")
    (d / "folder").mkdir()
    np.save(d / "x.npy", np.ones((2, 3), np.float32))
    np.save(d / "x_rank1.npy", np.ones(3, np.float32))
    np.save(d / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (d / "garbage.npy").write_bytes(os.urandom(256))
    (d / "empty.npy").write_bytes(b"")
    full = (d / "x.npy").read_bytes()
    (d / "truncated.npy").write_bytes(full[: len(full) - 7])
    (d / "x.txt").write_text("1 2 3")
    np.savez(d / "two.npz", a=np.ones(3, np.float32), b=np.zeros(3, np.float32))
    np.savez(d / "objz.npz", a=np.array([None], dtype=object))
    (d / "garbage.npz").write_bytes(b"PK\x03\x04" + os.urandom(300))
    whole = (d / "two.npz").read_bytes()
    (d / "truncated.npz").write_bytes(whole[: len(whole) // 2])

    from trtdsl import build, golden
    from trtdsl.cli import load_network

    plan = build(load_network(d / "tiny.py"), progress=False)
    plan.save(d / "tiny.plan")
    (d / "nometa.plan").write_bytes(plan.engine)
    (d / "badmeta.plan").write_bytes(plan.engine)
    (d / "badmeta.plan.json").write_text("{not json")
    (d / "listmeta.plan").write_bytes(plan.engine)
    (d / "listmeta.plan.json").write_text("[1, 2]")
    golden.record({"y": np.ones(3, np.float32)}, d / "a.npz", metadata={"precision": "float32"})
    golden.record({"y": np.ones(3, np.float32)}, d / "oddprec.npz", metadata={"precision": "float7"})
    with zipfile.ZipFile(d / "a.npz") as z:  # the same outputs with damaged metadata
        y = z.read("y.npy")
    with zipfile.ZipFile(d / "badjson.npz", "w") as z:
        z.writestr("y.npy", y)
        buf = d / "_m.npy"
        np.save(buf, np.array("{broken"))
        z.write(buf, "__metadata__.npy")
    with zipfile.ZipFile(d / "listjson.npz", "w") as z:
        z.writestr("y.npy", y)
        np.save(buf, np.array("[1, 2]"))
        z.write(buf, "__metadata__.npy")
    np.savez(d / "strings.npz", y=np.array(["a", "b"]))
    return d


# (id, argv, expected exit status, pattern the one stderr line must match). Paths are relative
# to the fixture folder, where each case runs.
CASES: list[tuple[str, list[str], int, str]] = [
    # the command itself
    ("no-subcommand", [], 2, r"^trtdsl: error: the following arguments are required: command"),
    ("unknown-subcommand", ["frobnicate"], 2, r"invalid choice: 'frobnicate'"),
    # build
    ("build-missing-script", ["build", "nope.py"], 2, r"no network script 'nope.py'"),
    ("build-script-is-dir", ["build", "folder"], 2, r"network script 'folder' is a directory"),
    ("build-syntax-error", ["build", "syntax.py"], 2, r"syntax\.py: syntax error at line 1"),
    ("build-no-build-network", ["build", "nofn.py"], 2, r"nofn\.py defines no build_network\(\) function"),
    ("build-script-raises", ["build", "raises.py"], 70, r"unexpected RuntimeError: the script's own bug .*--traceback"),
    (
        "build-output-missing-dir",
        ["build", "marker.py", "-o", "missing/x.plan"],
        2,
        r"-o 'missing/x.plan': folder 'missing' does not exist",
    ),
    ("build-output-is-dir", ["build", "marker.py", "-o", "folder"], 2, r"-o 'folder' is a directory"),
    (
        "build-timing-cache-missing-dir",
        ["build", "tiny.py", "-o", "t.plan", "--timing-cache", "nodir/c.bin"],
        2,
        r"BuildError: timing cache 'nodir/c.bin': folder 'nodir' does not exist",
    ),
    (
        "build-timing-cache-is-dir",
        ["build", "tiny.py", "-o", "t.plan", "--timing-cache", "folder"],
        2,
        r"timing cache 'folder' is a directory",
    ),
    (
        "build-workspace-negative",
        ["build", "tiny.py", "--workspace", "-1"],
        2,
        r"argument --workspace: '-1' must be a finite size in MiB",
    ),
    ("build-workspace-nan", ["build", "tiny.py", "--workspace", "nan"], 2, r"argument --workspace: 'nan' must be"),
    ("build-workspace-huge", ["build", "tiny.py", "--workspace", "1e30"], 2, r"argument --workspace: '1e30' must be"),
    ("build-workspace-word", ["build", "tiny.py", "--workspace", "lots"], 2, r"'lots' is not a number of MiB"),
    ("build-opt-level", ["build", "tiny.py", "--opt-level", "9"], 2, r"argument --opt-level: invalid choice: 9"),
    ("build-aux-streams", ["build", "tiny.py", "--aux-streams", "-2"], 2, r"argument --aux-streams: '-2' must be"),
    ("build-verbosity", ["build", "tiny.py", "--profiling-verbosity", "loud"], 2, r"invalid choice: 'loud'"),
    ("build-arg-no-equals", ["build", "tiny.py", "--arg", "width"], 2, r"--arg 'width': expected key=value"),
    (
        "build-arg-unknown",
        ["build", "tiny.py", "--arg", "depth=2"],
        2,
        r"build_network\(width=3\) cannot take these arguments: got an unexpected keyword argument 'depth'",
    ),
    ("build-extra-positional", ["build", "tiny.py", "--", "3", "4"], 2, r"cannot take these arguments"),
    # info
    ("info-missing", ["info", "nope.plan"], 2, r"no plan file 'nope.plan'"),
    ("info-dir", ["info", "folder"], 2, r"plan"),
    ("info-no-metadata", ["info", "nometa.plan"], 2, r"has no metadata file"),
    ("info-garbage-metadata", ["info", "badmeta.plan"], 2, r"metadata .*malformed"),
    ("info-list-metadata", ["info", "listmeta.plan"], 2, r"metadata .*malformed"),
    # run: input files
    ("run-input-missing", ["run", "tiny.py", "--input", "x=nope.npy"], 2, r"--input 'x=nope.npy': no such file"),
    (
        "run-keras-model",
        ["run", "model.keras"],
        2,
        r"model\.keras: is a Keras model: trtdsl keras model\.keras converts it",
    ),
    ("info-keras-model", ["info", "model.h5"], 2, r"model\.h5: is a Keras model: trtdsl keras model\.h5 converts it"),
    ("build-keras-model", ["build", "model.keras"], 2, r"model\.keras: is a Keras model: trtdsl keras model\.keras"),
    ("run-input-dir", ["run", "tiny.py", "--input", "x=folder"], 2, r"'folder' is a directory"),
    ("run-input-garbage", ["run", "tiny.py", "--input", "x=garbage.npy"], 2, r"--input 'x=garbage.npy': "),
    ("run-input-empty", ["run", "tiny.py", "--input", "x=empty.npy"], 2, r"--input 'x=empty.npy': "),
    ("run-input-truncated", ["run", "tiny.py", "--input", "x=truncated.npy"], 2, r"--input 'x=truncated.npy': "),
    ("run-input-object", ["run", "tiny.py", "--input", "x=obj.npy"], 2, r"--input 'x=obj.npy': .*(object|pickle)"),
    ("run-input-text", ["run", "tiny.py", "--input", "x=x.txt"], 2, r"x\.txt is not a \.npy or \.npz file"),
    ("run-input-no-file", ["run", "tiny.py", "--input", "x="], 2, r"expected name=file\.npy"),
    ("run-npz-garbage", ["run", "tiny.py", "--input", "garbage.npz"], 2, r"--input 'garbage.npz': "),
    ("run-npz-truncated", ["run", "tiny.py", "--input", "truncated.npz"], 2, r"--input 'truncated.npz': "),
    ("run-npz-object", ["run", "tiny.py", "--input", "objz.npz"], 2, r"--input 'objz.npz': .*(object|pickle)"),
    (
        "run-npz-no-such-array",
        ["run", "tiny.py", "--input", "x=two.npz"],
        2,
        r"two\.npz holds 2 arrays \(a, b\) and none is named 'x'",
    ),
    ("run-npz-names-not-inputs", ["run", "tiny.py", "--input", "two.npz"], 2, r"'a' is not an input"),
    ("run-input-not-an-input", ["run", "tiny.py", "--input", "z=x.npy"], 2, r"'z' is not an input"),
    ("run-input-wrong-rank", ["run", "tiny.py", "--input", "x=x_rank1.npy"], 2, r"input 'x' has rank 2"),
    # run: shapes, profiles, outputs
    ("run-shapes-garbage", ["run", "tiny.py", "--shapes", "x:axb"], 2, r"--shapes entry 'x:axb' must look like"),
    ("run-shapes-unknown", ["run", "tiny.py", "--shapes", "q:1x3"], 2, r"--input/--shapes: 'q' is not an input"),
    (
        "run-shapes-vs-input",
        ["run", "tiny.py", "--input", "x=x.npy", "--shapes", "x:1x3"],
        2,
        r"--shapes x: \(1, 3\) disagrees with --input x of shape \(2, 3\)",
    ),
    ("run-shapes-fixed-axis", ["run", "tiny.py", "--shapes", "x:2x4"], 2, r"input 'x' axis 1 is fixed at 3, got 4"),
    (
        "run-shapes-disagree",
        ["run", "embed.py", "--shapes", "ids:2x5", "--shapes", "mask:2x6"],
        2,
        r"dim 'seq' is 5 in input 'ids' but 6 in input 'mask'",
    ),
    ("run-shapes-outside-profile", ["run", "tiny.py", "--shapes", "x:9x3"], 2, r"ProfileError: .*batch.*1\.\.4"),
    (
        "run-shapes-huge",
        ["run", "tiny.py", "--shapes", "x:99999999999x3"],
        2,
        r"ProfileError: dim 'batch' = 99999999999 \(from --input/--shapes\) is outside profile 0: 1\.\.4",
    ),
    ("run-profile-out-of-range", ["run", "tiny.py", "--profile", "3"], 2, r"--profile 3: the network has 1 profile"),
    ("run-profile-negative", ["run", "tiny.py", "--profile", "-1"], 2, r"argument --profile: '-1' must be"),
    ("run-save-dir", ["run", "tiny.py", "--save", "folder"], 2, r"--save 'folder' is a directory"),
    ("run-save-missing-dir", ["run", "tiny.py", "--save", "nodir/out.npz"], 2, r"folder 'nodir' does not exist"),
    (
        "run-reference-on-plan",
        ["run", "tiny.plan", "--reference"],
        2,
        r"--reference needs the network \(SCRIPT.py or MODEL.onnx\)",
    ),
    ("run-missing-script", ["run", "nope.py"], 2, r"no network script 'nope.py'"),
    ("run-missing-plan", ["run", "nope.plan"], 2, r"no plan file 'nope.plan'"),
    # compare
    ("compare-missing", ["compare", "nope.npz", "a.npz"], 2, r"golden file 'nope.npz' does not exist"),
    ("compare-dir", ["compare", "folder", "a.npz"], 2, r"golden file 'folder' is not a file"),
    ("compare-garbage", ["compare", "garbage.npz", "a.npz"], 2, r"golden file 'garbage.npz' is not a readable"),
    ("compare-truncated", ["compare", "a.npz", "truncated.npz"], 2, r"golden file 'truncated.npz'"),
    ("compare-bare-npy", ["compare", "x.npy", "a.npz"], 2, r"holds one bare array \(\.npy\)"),
    ("compare-object", ["compare", "objz.npz", "a.npz"], 2, r"'a' is a pickled object array"),
    ("compare-strings", ["compare", "strings.npz", "a.npz"], 2, r"array 'y' has dtype <U1"),
    ("compare-bad-metadata", ["compare", "a.npz", "badjson.npz"], 2, r"metadata is not valid JSON"),
    ("compare-list-metadata", ["compare", "a.npz", "listjson.npz"], 2, r"metadata must be a JSON object, got list"),
    (
        "compare-unknown-precision",
        ["compare", "a.npz", "oddprec.npz", "--atol", "0.1"],
        2,
        r"metadata precision 'float7' has no preset; pass --tolerance",
    ),
    ("compare-atol-nan", ["compare", "a.npz", "a.npz", "--atol", "nan"], 2, r"argument --atol: 'nan' must be a finite"),
    ("compare-atol-negative", ["compare", "a.npz", "a.npz", "--atol", "-1"], 2, r"argument --atol: '-1' must be"),
    ("compare-rtol-inf", ["compare", "a.npz", "a.npz", "--rtol", "inf"], 2, r"argument --rtol: 'inf' must be"),
    ("compare-tolerance-preset", ["compare", "a.npz", "a.npz", "--tolerance", "float13"], 2, r"invalid choice"),
    # info --layers, export triton, demo (the main-job branch)
    ("info-layers-missing", ["info", "nope.plan", "--layers"], 2, r"no plan file 'nope.plan'"),
    ("info-layers-no-metadata", ["info", "nometa.plan", "--layers"], 2, r"has no metadata file"),
    ("export-no-target", ["export"], 2, r"the following arguments are required: target"),
    ("export-unknown-target", ["export", "kserve", "tiny.plan"], 2, r"invalid choice: 'kserve'"),
    ("export-triton-no-repository", ["export", "triton", "tiny.plan"], 2, r"required: --repository"),
    (
        "export-triton-missing-plan",
        ["export", "triton", "nope.plan", "--repository", "r"],
        2,
        r"no plan file 'nope.plan'",
    ),
    ("export-triton-no-metadata", ["export", "triton", "nometa.plan", "--repository", "r"], 2, r"has no metadata file"),
    (
        "export-triton-bad-metadata",
        ["export", "triton", "badmeta.plan", "--repository", "r"],
        2,
        r"metadata .*malformed",
    ),
    (
        "export-triton-instances-word",
        ["export", "triton", "tiny.plan", "--repository", "r", "--instances", "many"],
        2,
        r"argument --instances: 'many' is not an int",
    ),
    (
        "export-triton-instances-zero",
        ["export", "triton", "tiny.plan", "--repository", "r", "--instances", "0"],
        2,
        r"instances must be at least 1",
    ),
    (
        "export-triton-max-batch-negative",
        ["export", "triton", "tiny.plan", "--repository", "r", "--max-batch", "-1"],
        2,
        r"argument --max-batch: '-1' must be a finite number >= 0",
    ),
    (
        "export-triton-max-batch-too-large",
        ["export", "triton", "tiny.plan", "--repository", "r", "--max-batch", "99"],
        2,
        r"max_batch 99 is larger than the plan allows: dim 'batch' goes up to 4",
    ),
    (
        "export-triton-strict-rtx",
        ["export", "triton", "tiny.plan", "--repository", "r", "--strict"],
        2,
        r"TensorRT-RTX plan.*refused: strict",
    ),
    (
        "export-triton-bad-name",
        ["export", "triton", "tiny.plan", "--repository", "r", "--name", "../up"],
        2,
        r"model name '../up'",
    ),
    (
        "export-triton-repository-is-file",
        ["export", "triton", "tiny.plan", "--repository", "x.npy"],
        2,
        r"repository 'x.npy' is a file, not a folder",
    ),
    ("demo-bad-model", ["demo", "--models", "resnet"], 2, r"argument --models: invalid choice: 'resnet'"),
    ("demo-bad-precision", ["demo", "--precisions", "int4"], 2, r"argument --precisions: invalid choice: 'int4'"),
    ("demo-out-is-file", ["demo", "--out", "x.npy"], 2, r"--out 'x.npy' is not a folder"),
    # bench
    ("bench-missing", ["bench", "nope.plan"], 2, r"no plan file 'nope.plan'"),
    ("bench-iterations", ["bench", "tiny.plan", "--iterations", "-5"], 2, r"argument --iterations: '-5' must be"),
    ("bench-iterations-word", ["bench", "tiny.plan", "--iterations", "many"], 2, r"'many' is not an int"),
    # keras (trtdsl.keras.cli)
    ("keras-missing-model", ["keras", "nope.h5"], 2, r"no Keras model file 'nope.h5'"),
    ("keras-not-a-model", ["keras", "x.txt"], 2, r"x\.txt: neither a Keras \.h5 \(HDF5\) nor a \.keras \(zip\) file"),
    (
        "keras-directory",
        ["keras", "folder"],
        2,
        r"folder: is a directory without 'config.json', so not a Keras 3 model saved with zipped=False; it holds nothing",
    ),
    ("keras-garbage-zip", ["keras", "garbage.npz"], 2, r"garbage\.npz: cannot read the zip archive"),
    ("keras-bad-batch", ["keras", KERAS_FILE, "--batch", "1,2"], 2, r"--batch '1,2': expected MIN,OPT,MAX or one int"),
    ("keras-output-missing-dir", ["keras", KERAS_FILE, "-o", "missing/x.plan"], 2, r"folder 'missing' does not exist"),
    ("keras-bad-layout", ["keras", KERAS_FILE, "--layout", "NHWC"], 2, r"invalid choice: 'NHWC'"),
    (
        "keras-bad-input-shape",
        ["keras", KERAS_FILE, "--input-shape", "foo"],
        2,
        r"--input-shape 'foo': expected NAME=D1xD2",
    ),
]

# Forks one child per case from a process that imported trtdsl once; each child runs the
# package's __main__ as `python -m trtdsl` would, on its own stdout/stderr files.
WORKER = r"""
import json, os, runpy, sys, traceback
import logging
import trtdsl, trtdsl.cli, trtdsl.build, trtdsl.reference  # imported once, before forking
cases = json.load(sys.stdin)
results = []
for argv, cwd, out, err in cases:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.chdir(cwd)
            fo, fe = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fo, 1)
            os.dup2(fe, 2)
            sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)
            logging.getLogger().handlers.clear()
            sys.argv = ["trtdsl", *argv]
            runpy.run_module("trtdsl", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    results.append(os.waitstatus_to_exitcode(status))
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def results(files):
    """Run every case once; {id: (exit status, stdout, stderr)}."""
    runs = [(argv, str(files), str(files / f"_{cid}.out"), str(files / f"_{cid}.err")) for cid, argv, _, _ in CASES]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", WORKER], input=json.dumps(runs), capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        cid: (code, Path(out).read_text(), Path(err).read_text())
        for (cid, *_), (_, _, out, err), code in zip(CASES, runs, codes, strict=True)
    }


@pytest.mark.parametrize("cid,argv,status,pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_a_nonzero_exit(results, cid, argv, status, pattern):
    code, _out, err = results[cid]
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert code == status != 0, (code, err)
    assert re.search(pattern, lines[0]), lines[0]


def test_checks_run_before_the_work(results, files):
    # -o in a missing folder or on a directory is refused before build_network runs.
    assert not (files / "built.marker").exists()
    for cid in ("build-output-missing-dir", "build-output-is-dir"):
        assert results[cid][1] == ""


def test_entry_point_itself(files):
    """A few cases through ``sys.executable -m trtdsl``: the real entry point, not the forking worker."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for argv, status, pattern in [
        (["compare", "a.npz", "a.npz", "--atol", "nan"], 2, r"must be a finite number"),
        (["run", "tiny.py", "--input", "x=garbage.npy"], 2, r"--input 'x=garbage.npy'"),
    ]:
        proc = subprocess.run(
            [sys.executable, "-m", "trtdsl", *argv], cwd=files, capture_output=True, text=True, env=env, timeout=120
        )
        assert proc.returncode == status and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and re.search(pattern, proc.stderr), proc.stderr
