"""Keras 3 operation layers whose options change the math, against Keras' own prediction.

The model is written at test time by real Keras 3 (torch backend), as the
applications test does; ``keras.ops.gelu`` defaults to the tanh approximation while
the ``gelu`` activation is exact, so a converter that ignores ``approximate`` fails here.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from trtdsl import keras as tk
from trtdsl.errors import KerasError

from ..conftest import requires_trt
from .keras_util import check_sweep, compare, recorded, sweep_cases

SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np, keras
    out = sys.argv[1]
    inp = keras.Input((6,), name="x")
    y = keras.layers.Dense(5, name="d")(inp) * 3.0
    a = keras.ops.gelu(y)                      # approximate=True (tanh)
    b = keras.ops.gelu(y, approximate=False)   # exact (erf)
    c = keras.layers.Activation("gelu")(y)     # exact
    acts = [keras.layers.Activation(n)(keras.layers.Dense(6, name="d_" + n)(inp) * 2.0)
            for n in ("glu", "sparse_sigmoid", "sparsemax")]
    m = keras.Model(inp, [a, b, c, *acts])
    x = np.random.default_rng(0).standard_normal((3, 6)).astype("float32")
    outs = m.predict(x, verbose=0)
    m.save(out + ".keras")
    np.savez(out + ".npz", **{"in:0": x}, **{f"out:{i}": o for i, o in enumerate(outs)})
    """
)


@requires_trt
@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="Keras 3 (the dev extra) is not installed")
def test_gelu_options_and_the_rarer_activations_match_keras(tmp_path):
    base = tmp_path / "gelu_ops"
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(base)], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    path = base.with_suffix(".keras")
    compare(tk.load_model(path, batch=(1, 3, 4)), recorded(path), tol=1e-5)


@requires_trt
@pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="Keras 3 (the dev extra) is not installed")
def test_an_operation_option_the_converter_cannot_follow_is_refused(tmp_path):
    script = (
        "import sys, keras\n"
        "inp = keras.Input((4,), name='x')\n"
        "keras.Model(inp, keras.ops.round(inp, decimals=2)).save(sys.argv[1])\n"
    )
    path = tmp_path / "round.keras"
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run([sys.executable, "-c", script, str(path)], env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    with pytest.raises(KerasError, match=r"Round layer 'round.*options \{'decimals': 2\} are not supported"):
        tk.load_model(path)


@requires_trt
@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", sweep_cases("operations"))
def test_sweep_matches_keras(sweep_dir, name, fmt):
    check_sweep(sweep_dir, name, fmt)
