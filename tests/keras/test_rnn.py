"""Recurrent layers' options against Keras' own prediction: Bidirectional states, backward_layer,
merge_mode=None, reset_after=False, masked go_backwards (keras_sweep.py)."""

from __future__ import annotations

import json
import shutil

import h5py
import pytest

from trtdsl import keras as tk
from trtdsl.errors import KerasError

from ..conftest import requires_trt
from .keras_util import check_sweep, sweep_cases

pytestmark = requires_trt


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", sweep_cases("rnn"))
def test_matches_keras(sweep_dir, name, fmt):
    check_sweep(sweep_dir, name, fmt)


def test_a_backward_layer_unlike_the_forward_one_is_refused(sweep_dir, tmp_path):
    # Keras allows any backward_layer; the converter runs both directions as one layer of one kind.
    path = shutil.copy(sweep_dir / "bidirectional_gru_backward_layer.h5", tmp_path / "edited.h5")
    with h5py.File(path, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        bi = next(e for e in cfg["config"]["layers"] if e["class_name"] == "Bidirectional")
        bi["config"]["backward_layer"]["config"]["activation"] = "relu"
        f.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(
        KerasError, match=r"Bidirectional layer 'bidirectional\w*': a backward_layer .*activation='relu'"
    ):
        tk.load_model(path)


def test_an_unknown_activation_is_refused_with_the_supported_ones(sweep_dir, tmp_path):
    path = shutil.copy(sweep_dir / "gru_relu_hard_sigmoid_reset_before.h5", tmp_path / "edited.h5")
    with h5py.File(path, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        gru = next(e for e in cfg["config"]["layers"] if e["class_name"] == "GRU")
        gru["config"]["recurrent_activation"] = "hard_sigmoidd"
        f.attrs["model_config"] = json.dumps(cfg)
    with pytest.raises(
        KerasError,
        match=r"GRU layer 'gru\w*': recurrent_activation 'hard_sigmoidd' is not supported\. Did you mean 'hard_sigmoid'",
    ):
        tk.load_model(path)
