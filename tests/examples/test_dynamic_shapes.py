"""examples/dynamic_shapes.py: two profiles (short and long sequences), checked against NumPy from the math."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

import trtdsl
from trtdsl import reference

from ._load import example

pytestmark = pytest.mark.usefixtures("trt")


def _numpy_model(w, tokens):
    h = w["embed"][tokens].astype(np.float64)
    h = h @ w["fc.weight"].T + w["fc.bias"]
    h = 0.5 * h * (1 + erf(h / np.sqrt(2)))
    mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
    h = (h - mu) / np.sqrt(var + 1e-5) * w["norm.weight"] + w["norm.bias"]
    return h.mean(1) @ w["head.weight"].T + w["head.bias"]


def test_two_profiles_serve_short_and_long_sequences():
    ex = example("dynamic_shapes")
    w = ex["weights"]()
    net = ex["build_network"](w)
    plan = trtdsl.build(net)
    assert [p.ranges for p in plan.profiles] == [
        {"batch": (1, 32, 64), "seq": (1, 64, 128)},
        {"batch": (1, 2, 4), "seq": (129, 512, 1024)},
    ]
    rng = np.random.default_rng(0)
    for shape, profile in (((48, 100), 0), ((3, 900), 1), ((1, 1), 0), ((4, 1024), 1)):
        assert plan.select_profile({"tokens": shape}) == profile
        tokens = rng.integers(0, ex["VOCAB"], shape).astype(np.int32)
        got = reference.run(net, {"tokens": tokens})["logits"]
        np.testing.assert_allclose(got, _numpy_model(w, tokens), rtol=1e-4, atol=1e-4)
    with pytest.raises(trtdsl.ProfileError, match="outside every profile"):
        plan.select_profile({"tokens": (8, 900)})  # a long sequence at a short-request batch
