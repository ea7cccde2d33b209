"""The sweep models (tests/fixtures/keras_sweep.py), written once per session by real Keras 3."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SWEEP = Path(__file__).resolve().parents[1] / "fixtures" / "keras_sweep.py"


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory) -> Path:
    # A spec without an origin is a namespace package: a folder named keras (tests/keras), not Keras.
    spec = importlib.util.find_spec("keras")
    if spec is None or spec.origin is None:
        pytest.skip("Keras 3 (the dev extra) is not installed")
    out = tmp_path_factory.mktemp("keras_sweep")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run([sys.executable, str(SWEEP), str(out)], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"keras_sweep.py failed:\n{done.stderr[-3000:]}")
    return out
