"""load_model's weights: a Keras 3 weights-only file (model.save_weights) named through the model's config."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import trtdsl
from trtdsl import keras as tk
from trtdsl.errors import WeightError

from ..conftest import requires_trt

pytestmark = requires_trt

# Written by real Keras 3: the model file, then other weights saved with save_weights, and the
# predictions of the model holding those other weights.
_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    from keras import layers as L

    out = sys.argv[1]
    x = L.Input((6, 6, 3), name="image")
    y = L.Conv2D(4, 3, padding="same", name="conv")(x)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU()(y)
    y = L.Flatten()(y)
    y = L.Dense(5, name="fc")(y)
    m = keras.Model(x, y, name="small")
    m.save(f"{out}/m.keras")
    m.save(f"{out}/m.h5")
    rng = np.random.default_rng(1)
    m.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.5 + (1.0 if "variance" in v.path else 0.0)
                   for w, v in zip(m.get_weights(), m.weights)])
    m.save_weights(f"{out}/other.weights.h5")
    feed = rng.standard_normal((2, 6, 6, 3)).astype("float32")
    np.savez(f"{out}/other.npz", x=feed, y=m.predict(feed, verbose=0))
    """
)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    spec = importlib.util.find_spec("keras")
    if spec is None or spec.origin is None:  # tests/keras itself is a namespace package named keras
        pytest.skip("Keras 3 (the dev extra) is not installed")
    out = tmp_path_factory.mktemp("weights_only")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    done = subprocess.run([sys.executable, "-c", _WRITER, str(out)], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"the Keras writer failed:\n{done.stderr[-3000:]}")
    return out


def _run(net: trtdsl.Network, x: np.ndarray) -> np.ndarray:
    (out,) = trtdsl.reference.run(net, {"image": x}).values()
    return out


@pytest.mark.parametrize("model_file", ["m.keras", "m.h5"])
def test_a_weights_only_file_gives_its_weights_to_the_model(written, model_file):
    data = np.load(written / "other.npz")
    net = tk.load_model(written / model_file, weights=written / "other.weights.h5", batch=2)
    got = _run(net, data["x"])
    scale = np.abs(data["y"]).max()
    assert np.abs(got - data["y"]).max() <= 1e-4 * scale
    # The model file's own weights give other outputs: the weights came from the weights file.
    own = _run(tk.load_model(written / model_file, batch=2), data["x"])
    assert np.abs(own - data["y"]).max() > 1e-2 * scale


def test_a_weights_only_store_read_on_its_own_gets_a_hint(written):
    store = trtdsl.weights.load(written / "other.weights.h5")
    with pytest.raises(WeightError, match=r"weights-only file read on its own .* weights='x.weights.h5'"):
        tk.load_model(written / "m.keras", weights=store)


def test_a_weights_file_that_is_not_hdf5_is_refused(written, tmp_path):
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not an HDF5 file" * 8)
    with pytest.raises(WeightError, match="bad.weights.h5"):
        tk.load_model(written / "m.keras", weights=bad)
