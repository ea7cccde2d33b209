"""MultiHeadAttention options against Keras' own prediction: the Keras masks of query, value and key,
nonzero attention masks, use_gate, sliding_window, output_shape, attention scores (keras_sweep.py)."""

from __future__ import annotations

import pytest

from ..conftest import requires_trt
from .keras_util import check_sweep, sweep_cases

pytestmark = requires_trt


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", sweep_cases("attention"))
def test_matches_keras(sweep_dir, name, fmt):
    check_sweep(sweep_dir, name, fmt)
