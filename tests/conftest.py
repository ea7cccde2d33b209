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
