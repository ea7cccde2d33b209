"""Backend selection: tensorrt if present, else tensorrt_rtx, overridable; import without either."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import trtdsl

ROOT = Path(trtdsl.__file__).parent
BLOCK_TRT = textwrap.dedent(
    """
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('tensorrt', 'tensorrt_rtx', 'tensorrt_bindings', 'tensorrt_rtx_bindings'):
                raise ImportError('blocked for this test: ' + name)
    sys.meta_path.insert(0, _Block())
    """
)


def _python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT.parent)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


def test_import_works_without_tensorrt_and_names_the_extra():
    code = BLOCK_TRT + textwrap.dedent(
        """
        import trtdsl, trtdsl.ops, trtdsl.reference, trtdsl.runtime
        try:
            trtdsl.Network('x')
        except trtdsl.BackendError as e:
            print('ERR', e)
        """
    )
    r = _python(code)
    assert r.returncode == 0, r.stderr
    assert "ERR TensorRT is not installed" in r.stdout
    assert "pip install 'trtdsl[rtx]'" in r.stdout


def test_env_var_forces_a_missing_flavour():
    code = BLOCK_TRT + "import trtdsl\ntry:\n trtdsl.Network('x')\nexcept trtdsl.BackendError as e: print(e)"
    r = _python(code, {"TRTDSL_TENSORRT": "tensorrt"})
    assert "TRTDSL_TENSORRT=tensorrt but tensorrt cannot be imported" in r.stdout
    assert "trtdsl[trt]" in r.stdout


def test_env_var_rejects_unknown_flavour():
    r = _python(
        "import trtdsl\ntry:\n trtdsl.Network('x')\nexcept trtdsl.BackendError as e: print(e)",
        {"TRTDSL_TENSORRT": "onnx"},
    )
    assert "TRTDSL_TENSORRT='onnx' is not a TensorRT flavour" in r.stdout


def test_env_var_selects_rtx(trt):
    r = _python("from trtdsl import _trt; print(_trt.name())", {"TRTDSL_TENSORRT": "tensorrt_rtx"})
    assert r.stdout.strip() == "tensorrt_rtx", r.stderr


def test_only_the_backend_module_imports_tensorrt():
    offenders = []
    for path in ROOT.rglob("*.py"):
        if path.name == "_trt.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0].startswith("tensorrt")]
    assert offenders == []


def test_tensorrt_logs_go_to_python_logging(trt, caplog):
    import logging

    from trtdsl import _trt

    with caplog.at_level(logging.INFO, logger="trtdsl.tensorrt"):
        _trt.logger().log(trt.ILogger.Severity.WARNING, "hello from tensorrt")
    assert ("trtdsl.tensorrt", logging.WARNING, "hello from tensorrt") in caplog.record_tuples


@pytest.mark.parametrize("alias,canonical", [("fp16", "float16"), ("bf16", "bfloat16"), ("float", "float32")])
def test_dtype_aliases(alias, canonical):
    from trtdsl import dtypes

    assert dtypes.canonical(alias) == canonical


def test_unknown_dtype_is_a_clear_error():
    from trtdsl import dtypes

    with pytest.raises(trtdsl.ShapeError, match="unknown dtype 'float13'; expected one of"):
        dtypes.canonical("float13")
