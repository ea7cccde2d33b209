"""``trtdsl keras``: a plan from a Keras file, and the layer summary."""

from __future__ import annotations

import json

from trtdsl.cli import main

from ..conftest import requires_trt
from .keras_util import FIXTURES

pytestmark = requires_trt


def test_summary_lists_every_layer(capsys):
    assert main(["keras", str(FIXTURES / "k2" / "cnn.h5"), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "stem                 Conv2D              (None, 8, 8, 8)    224     shuffle, convolution, activation" in out
    assert "probs                Dense               (None, 10)         2,570" in out
    assert "Total params: 4,652" in out  # Keras' own count for this model (model.count_params())


def test_builds_a_plan_with_options(tmp_path, capsys):
    out = tmp_path / "cnn.plan"
    args = ["keras", str(FIXTURES / "k3" / "cnn.keras"), "-o", str(out), "--dtype", "float16", "--batch", "1,8,32",
            "--layout", "NCHW", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    meta = json.loads((tmp_path / "cnn.plan.json").read_text())
    assert out.stat().st_size > 0
    text = json.dumps(meta)
    assert "image" in text and "probs" in text
    assert "batch 1..8..32" in capsys.readouterr().out


def test_bad_batch_is_a_clear_error(capsys):
    assert main(["keras", str(FIXTURES / "k3" / "cnn.keras"), "--batch", "1,2", "--summary"]) == 2
    assert "--batch '1,2': expected MIN,OPT,MAX or one int" in capsys.readouterr().err


def test_unsupported_layer_is_reported(capsys):
    assert main(["keras", str(FIXTURES / "k3" / "refuse_lambda.keras"), "--summary"]) == 2
    assert "UnsupportedKerasLayerError: layer 'doubling' is a Lambda layer" in capsys.readouterr().err


def test_int8_calibration_and_weights_options(tmp_path, capsys):
    import numpy as np

    from trtdsl import keras as tk

    model = FIXTURES / "k3" / "cnn.keras"
    ((name, dims),) = tk.load_model(model).input_specs.items()  # ('batch', H, W, C): channels last
    data = tmp_path / "calib.npz"
    np.savez(data, **{name: np.random.default_rng(0).uniform(0, 1, (16, *dims[1:])).astype(np.float32)})
    out = tmp_path / "cnn_int8.plan"
    assert main(["keras", str(model), "--int8", "--calib", str(data), "-o", str(out), "--no-progress"]) == 0
    assert "int8, entropy" in capsys.readouterr().out and out.stat().st_size > 0
    assert main(["keras", str(model), "--weights", str(tmp_path / "missing.weights.h5"), "--summary"]) == 2
    assert "missing.weights.h5" in capsys.readouterr().err
