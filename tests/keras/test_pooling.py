"""Keras pooling options against Keras' own prediction: 'same' with odd windows and other strides,
channels_first, keepdims, and GlobalAveragePooling1D over masked steps (keras_sweep.py)."""

from __future__ import annotations

import pytest

from ..conftest import requires_trt
from .keras_util import check_sweep, sweep_cases

pytestmark = requires_trt


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", sweep_cases("pooling"))
def test_matches_keras(sweep_dir, name, fmt):
    check_sweep(sweep_dir, name, fmt)
