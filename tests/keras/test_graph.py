"""The node walk against Keras' own prediction: a held-order Flatten feeding layers other than Dense,
nested and shared models, dict and nested inputs/outputs, SpatialDropout in legacy .h5 (keras_sweep.py)."""

from __future__ import annotations

import pytest

from trtdsl import keras as tk
from trtdsl.errors import KerasError

from ..conftest import requires_trt
from .keras_util import check_sweep, config_layer, edit_h5_config, sweep_cases

pytestmark = requires_trt


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", sweep_cases("graph"))
def test_matches_keras(sweep_dir, name, fmt):
    check_sweep(sweep_dir, name, fmt)


def test_a_layer_tensorrt_refuses_is_named(sweep_dir, tmp_path):
    # A Conv2D fed the uint8 input itself (its Rescaling cut out): TensorRT convolves no integers.
    def cut_rescaling(cfg):
        rescale, conv = config_layer(cfg, "Rescaling"), config_layer(cfg, "Conv2D")
        conv["inbound_nodes"] = rescale["inbound_nodes"]
        cfg["config"]["layers"] = [e for e in cfg["config"]["layers"] if e is not rescale]

    path = edit_h5_config(sweep_dir / "uint8_image_rescaling_conv.h5", tmp_path / "edited.h5", cut_rescaling)
    with pytest.raises(
        KerasError, match=r"Conv2D layer 'conv2d\w*': TensorRT refused .*inputs: \['int32 \(-1, 5, 6, 3\)'\]"
    ):
        tk.load_model(path)
