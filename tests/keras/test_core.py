"""Core Keras layers' options against Keras' own prediction: Dense on integer inputs and rank-4 inputs,
ReLU's options, PReLU shared_axes, Softmax over several axes, glu on an image (keras_sweep.py)."""

from __future__ import annotations

import pytest

from ..conftest import requires_trt
from .keras_util import check_sweep, sweep_cases

pytestmark = requires_trt


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", sweep_cases("core"))
def test_matches_keras(sweep_dir, name, fmt):
    check_sweep(sweep_dir, name, fmt)
