"""Keras merge layers with broadcasting and inputs of different ranks against Keras' own prediction (keras_sweep.py)."""

from __future__ import annotations

import pytest

from ..conftest import requires_trt
from .keras_util import check_sweep, sweep_cases

pytestmark = requires_trt


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", sweep_cases("merging"))
def test_matches_keras(sweep_dir, name, fmt):
    check_sweep(sweep_dir, name, fmt)
