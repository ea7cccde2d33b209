"""Helpers of the Keras converter tests: real files written by real Keras (tests/fixtures/make_keras.py).

tests/keras has no __init__.py on purpose: while tests/ is not a package, a
package named ``keras`` here would shadow the real Keras that the
applications test imports.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import trtdsl

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "keras"


def keras_writer(folder: Path, script: str) -> Path:
    """Run ``script`` (Python that writes Keras files into ``sys.argv[1]``) with Keras 3 on torch, in a
    process of its own (Keras picks its backend once per process); ``folder``, filled."""
    spec = importlib.util.find_spec("keras")
    if spec is None or spec.origin is None:  # tests/keras itself is a namespace package named keras
        pytest.skip("Keras 3 (the dev extra) is not installed")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run([sys.executable, "-c", script, str(folder)], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"the Keras writer failed:\n{done.stderr[-3000:]}")
    return folder


def edit_h5_config(src: Path, dst: Path, edit) -> Path:
    """A copy of the legacy ``.h5`` file ``src`` at ``dst`` whose model config ``edit(cfg)`` changed in place."""
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        edit(cfg)
        f.attrs["model_config"] = json.dumps(cfg)
    return Path(dst)


def config_layer(cfg: dict, class_name: str) -> dict:
    """The first layer entry of class ``class_name`` in a Functional/Sequential model config."""
    return next(e for e in cfg["config"]["layers"] if e["class_name"] == class_name)


def recorded(path: Path) -> np.lib.npyio.NpzFile:
    return np.load(path.with_suffix(".npz"))


def compare(net: trtdsl.Network, data, *, tol: float = 1e-4) -> dict[str, float]:
    """Run the reference interpreter on the recorded inputs; errors relative to each output's largest magnitude."""
    feeds = {name: data[f"in:{i}"] for i, name in enumerate(net.input_specs)}
    outs = trtdsl.reference.run(net, feeds)
    errors = {}
    for i, name in enumerate(net.outputs):
        want, got = data[f"out:{i}"], outs[name]
        assert got.shape == want.shape, f"output {i} {name!r}: shape {got.shape}, Keras {want.shape}"
        scale = max(float(np.abs(want).max()), 1e-6)
        errors[name] = float(np.abs(got.astype(np.float64) - want).max()) / scale
    bad = {k: v for k, v in errors.items() if v > tol}
    assert not bad, f"outputs beyond {tol} of their largest magnitude: {bad}"
    return errors


def sweep_cases(module: str) -> list[str]:
    """The names of the sweep models (tests/fixtures/keras_sweep.py) for one converter module."""
    import sys

    sys.path.insert(0, str(FIXTURES.parent))
    from keras_sweep import CASES

    return [name for name, (mod, _) in CASES.items() if mod == module]


def check_sweep(folder: Path, name: str, fmt: str, *, tol: float = 1e-4) -> None:
    """Convert one sweep model from its ``fmt`` file and compare with Keras' recorded prediction."""
    from trtdsl import keras as tk

    path = folder / f"{name}.{fmt}"
    # .keras files record no backend; the sweep is written with torch (its uneven 'same' average pool)
    net = tk.load_model(path, backend="torch", batch=(1, 2, 2))
    compare(net, recorded(path), tol=tol)
    net.keras_weights.check_all_used()
