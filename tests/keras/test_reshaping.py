"""Keras reshaping layers with channels_first and per-axis options, and preprocessing layers of uint8
images, against Keras' own prediction (keras_sweep.py)."""

from __future__ import annotations

import pytest

from trtdsl import keras as tk
from trtdsl.errors import KerasError

from ..conftest import requires_trt
from .keras_util import check_sweep, config_layer, edit_h5_config, sweep_cases

pytestmark = requires_trt


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", sweep_cases("reshaping"))
def test_matches_keras(sweep_dir, name, fmt):
    check_sweep(sweep_dir, name, fmt)


def _edit_resizing(src, dst, **config) -> None:
    edit_h5_config(src, dst, lambda cfg: config_layer(cfg, "Resizing")["config"].update(config))


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        # Keras' antialiased downsizing widens the kernel; a plain bilinear resize would be a wrong answer
        ("center_crop_resizing_conv", {"height": 3, "width": 3, "antialias": True},
         r"antialias=True when downsizing \(5, 4\) to \(3, 3\) is not supported"),
        # Keras saturate-casts a resized integer image back to its dtype
        ("uint8_resizing_center_crop", {"interpolation": "bilinear"},
         r"interpolation 'bilinear' of an integer \(int32\) input is not supported"),
    ],
)  # fmt: skip
def test_resizing_that_would_differ_from_keras_is_refused(sweep_dir, tmp_path, name, config, message):
    path = tmp_path / "edited.h5"
    _edit_resizing(sweep_dir / f"{name}.h5", path, **config)
    with pytest.raises(KerasError, match=rf"Resizing layer 'resizing\w*': {message}"):
        tk.load_model(path)
