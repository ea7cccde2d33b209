"""Keras convolution options against Keras' own prediction: strides, dilation, groups, channels_first, causal,
and every Conv*DTranspose padding / stride / output_padding size rule (keras_sweep.py)."""

from __future__ import annotations

import pytest

from ..conftest import requires_trt
from .keras_util import check_sweep, sweep_cases

pytestmark = requires_trt


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", sweep_cases("convolutional"))
def test_matches_keras(sweep_dir, name, fmt):
    check_sweep(sweep_dir, name, fmt)
