"""Core Keras layers' options against Keras' own prediction: Dense on integer inputs and rank-4 inputs,
ReLU's options, PReLU shared_axes, Softmax over several axes, glu on an image (keras_sweep.py)."""

from __future__ import annotations

import pytest

from ..conftest import requires_trt
from .keras_util import check_sweep, keras_writer, sweep_cases

pytestmark = requires_trt


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", sweep_cases("core"))
def test_matches_keras(sweep_dir, name, fmt):
    check_sweep(sweep_dir, name, fmt)


_AUGMENT_WRITER = """
import sys
import numpy as np
import keras

L = keras.layers
x = keras.Input((12, 12, 3))
y = x
for layer in (L.RandomBrightness(0.2, value_range=(0, 1)), L.RandomSaturation(0.3, value_range=(0, 1)),
              L.RandomSharpness(0.3, value_range=(0, 1)), L.RandomPosterization((1, 4), value_range=(0, 1)),
              L.RandomColorDegeneration(0.5), L.Solarization(0.5, value_range=(0, 1)), L.Conv2D(4, 3)):
    y = layer(y)
model = keras.Model(x, y)
model.save(sys.argv[1] + "/augment.keras")
images = np.random.default_rng(0).uniform(0, 1, (2, 12, 12, 3)).astype(np.float32)
np.savez(sys.argv[1] + "/augment.npz", x=images, y=model.predict(images, verbose=0))
"""


def test_augmentation_layers_that_only_save_as_keras_are_identity_at_inference(tmp_path):
    import numpy as np

    import trtdsl
    from trtdsl import keras as tk

    folder = keras_writer(tmp_path, _AUGMENT_WRITER)
    data = np.load(folder / "augment.npz")
    net = tk.load_model(folder / "augment.keras", batch=(1, 2, 2))
    got = next(iter(trtdsl.reference.run(net, {next(iter(net.input_specs)): data["x"]}).values()))
    np.testing.assert_allclose(got, data["y"], rtol=1e-5, atol=1e-5)
