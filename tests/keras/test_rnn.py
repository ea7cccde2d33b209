"""Recurrent layers' options against Keras' own prediction: Bidirectional states, backward_layer,
merge_mode=None, reset_after=False, masked go_backwards (keras_sweep.py)."""

from __future__ import annotations

import pytest

from trtdsl import keras as tk
from trtdsl.errors import KerasError

from ..conftest import requires_trt
from .keras_util import check_sweep, compare, config_layer, edit_h5_config, recorded, sweep_cases

pytestmark = requires_trt


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", sweep_cases("rnn"))
def test_matches_keras(sweep_dir, name, fmt):
    check_sweep(sweep_dir, name, fmt)


def test_a_backward_layer_unlike_the_forward_one_is_refused(sweep_dir, tmp_path):
    # Keras allows any backward_layer; the converter runs both directions as one layer of one kind.
    def relu_backward(cfg):
        config_layer(cfg, "Bidirectional")["config"]["backward_layer"]["config"]["activation"] = "relu"

    path = edit_h5_config(sweep_dir / "bidirectional_gru_backward_layer.h5", tmp_path / "edited.h5", relu_backward)
    with pytest.raises(
        KerasError, match=r"Bidirectional layer 'bidirectional\w*': a backward_layer .*activation='relu'"
    ):
        tk.load_model(path)


def test_an_unknown_activation_is_refused_with_the_supported_ones(sweep_dir, tmp_path):
    def misspell(cfg):
        config_layer(cfg, "GRU")["config"]["recurrent_activation"] = "hard_sigmoidd"

    path = edit_h5_config(sweep_dir / "gru_relu_hard_sigmoid_reset_before.h5", tmp_path / "edited.h5", misspell)
    with pytest.raises(
        KerasError,
        match=r"GRU layer 'gru\w*': recurrent_activation 'hard_sigmoidd' is not supported\. Did you mean 'hard_sigmoid'",
    ):
        tk.load_model(path)


def _implicit_masks(path, dst):
    """Drop every call's ``mask`` argument, as Keras 2 records a call: its masks flow implicitly."""

    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k != "mask"}
        return [strip(x) for x in v] if isinstance(v, list) else v

    def drop_masks(cfg):
        for e in cfg["config"]["layers"]:
            e["inbound_nodes"] = [dict(n, kwargs=strip(n["kwargs"])) for n in e["inbound_nodes"]]

    return edit_h5_config(path, dst, drop_masks)


@pytest.mark.parametrize("name", ["masking_time_distributed_lstm", "mask_through_dropout_dense_lstm"])
def test_an_implicit_mask_reaches_the_lstm(sweep_dir, tmp_path, name):
    # TimeDistributed passes its input's (B, T) mask on (Layer.compute_mask's default), so the LSTM after
    # it skips the masked steps; Keras 3 also records the mask as an argument, Keras 2 does not.
    path = _implicit_masks(sweep_dir / f"{name}.h5", tmp_path / "implicit.h5")
    compare(tk.load_model(path, batch=(1, 2, 2)), recorded(sweep_dir / f"{name}.h5"))


def test_time_distributed_over_a_model_of_two_outputs_is_refused(sweep_dir, tmp_path):
    def two_outputs(cfg):
        inner = config_layer(cfg, "TimeDistributed")["config"]["layer"]["config"]
        inner["output_layers"] = [inner["output_layers"], inner["output_layers"]]

    path = edit_h5_config(sweep_dir / "time_distributed_nested_model.h5", tmp_path / "edited.h5", two_outputs)
    with pytest.raises(
        KerasError, match=r"TimeDistributed layer 'time_distributed\w*': the wrapped model 'inner' has 2"
    ):
        tk.load_model(path)
