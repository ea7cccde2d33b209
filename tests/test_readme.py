"""README.md stays true: its example network runs, and its set-up commands are the ones CI uses."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

import trtdsl

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_network_example_runs(trt):
    code = re.findall(r"```python\n(.*?)```", README, re.S)[0]
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(ROOT)  # the example names weights/ relative to the checkout
    try:
        exec(compile(code, "README.md", "exec"), namespace)  # the README's own code, not a model file
        net = namespace["build_network"]()
    finally:
        os.chdir(cwd)
    out = trtdsl.reference.run(net, {"images": np.zeros((2, 1, 8, 8), np.float32)})
    np.testing.assert_allclose(out["probs"].sum(axis=1), 1.0, rtol=1e-5)


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(.*?)```", README, re.S)
    test_command = next(c.strip() for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci


@pytest.mark.parametrize("path", ["examples/main.py", "examples/digits_cnn.py", "weights/digits_cnn.npz"])
def test_readme_names_files_that_exist(path):
    assert path in README and (ROOT / path).is_file()
