"""Shared fixtures. TensorRT-dependent tests skip with a reason when it is absent."""

from __future__ import annotations

import numpy as np
import pytest

from trtdsl import _trt

requires_trt = pytest.mark.skipif(not _trt.available(), reason="TensorRT (trtdsl[rtx] or trtdsl[trt]) is not installed")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def trt():
    """The TensorRT module trtdsl picked (tensorrt_rtx in CI)."""
    if not _trt.available():
        pytest.skip("TensorRT (trtdsl[rtx] or trtdsl[trt]) is not installed")
    return _trt.load()


@pytest.fixture(params=["fast", "plain"])
def reference_mode(request, monkeypatch) -> str:
    """Run the test with the interpreter's fast paths on (the default) and off (the plain oracle path).

    Sets the default of ``fast=`` of ``reference.run``, ``prepare`` and ``Interpreter`` for the
    test only; every fast path must give the plain path's results.
    """
    from trtdsl.reference import interpreter

    fast = request.param == "fast"
    for fn in (interpreter.run, interpreter.prepare, interpreter.Interpreter.__init__):
        monkeypatch.setattr(fn, "__kwdefaults__", {**fn.__kwdefaults__, "fast": fast})
    return request.param


@pytest.fixture(params=["compiled", "numpy"])
def kernels(request, monkeypatch) -> str:
    """Run the test with the fast mode's compiled kernels (numba; skipped where it is absent) and without.

    ``numpy`` hides numba from ``reference.kernels.jit`` for the test, as on a machine
    without the ``fast`` extra: the NumPy kernels run instead, and must agree.
    """
    from trtdsl.reference.kernels import jit

    if request.param == "compiled" and not jit.enabled():
        pytest.skip(jit.why_not())
    if request.param == "numpy":
        monkeypatch.setattr(jit, "_compiled", lambda: (None, "hidden for this test"))
    return request.param
