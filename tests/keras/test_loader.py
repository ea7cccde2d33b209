"""load_model: a Keras 3 weights-only file (model.save_weights), sharded or not, named through the model's config; a model
saved unzipped; the names of the network's inputs and outputs (a dict's keys, as model.predict takes and returns them)."""

from __future__ import annotations

import json
import os
import textwrap

import numpy as np
import pytest

import trtdsl
from trtdsl import keras as tk
from trtdsl.errors import KerasError, WeightError

from ..conftest import requires_trt
from .keras_util import edit_h5_config, keras_writer

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


# Dict inputs and outputs whose keys are not the layers' names (two swapped with each other), and a
# nested model's dict outputs as the outer model's outputs; Keras' predictions by key.
_DICT_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    from keras import layers as L

    out = sys.argv[1]
    rng = np.random.default_rng(2)
    img, meta = L.Input((4,), name="img_in"), L.Input((3,), name="meta_in")
    h = L.Concatenate(name="cat")([img, meta])
    outputs = {"boxes": L.Dense(4, name="scores")(h), "scores": L.Dense(2, name="boxes")(h), "feat": h}
    m = keras.Model({"image": img, "meta": meta}, outputs, name="flat")
    feeds = {"image": rng.standard_normal((2, 4)).astype("float32"), "meta": rng.standard_normal((2, 3)).astype("float32")}
    preds = m.predict(feeds, verbose=0)
    np.savez(f"{out}/flat.npz", **{f"in:{k}": v for k, v in feeds.items()}, **{f"out:{k}": v for k, v in preds.items()})
    m.save(f"{out}/flat.keras")
    m.save(f"{out}/flat.h5")

    x = L.Input((4,), name="x0")
    inner = keras.Model(x, {"logits": L.Dense(3, name="d1")(x), "embedding": L.Dense(2, name="d2")(x)}, name="head")
    y = L.Input((4,), name="y0")
    nested = keras.Model(y, inner(y), name="nested")
    feed = rng.standard_normal((2, 4)).astype("float32")
    preds = nested.predict(feed, verbose=0)
    np.savez(f"{out}/nested.npz", **{"in:y0": feed}, **{f"out:{k}": v for k, v in preds.items()})
    nested.save(f"{out}/nested.keras")
    nested.save(f"{out}/nested.h5")
    """
)


def _write(tmp_path_factory, script: str, folder: str):
    return keras_writer(tmp_path_factory.mktemp(folder), script)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return _write(tmp_path_factory, _WRITER, "weights_only")


@pytest.fixture(scope="module")
def dicts(tmp_path_factory):
    return _write(tmp_path_factory, _DICT_WRITER, "dicts")


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


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", ["flat", "nested"])
def test_dict_inputs_and_outputs_are_named_by_their_keys(dicts, name, fmt):
    data = np.load(dicts / f"{name}.npz")
    want = {k[4:]: data[k] for k in data.files if k.startswith("out:")}
    feeds = {k[3:]: data[k] for k in data.files if k.startswith("in:")}
    net = tk.load_model(dicts / f"{name}.{fmt}", batch=2)
    assert sorted(net.input_specs) == sorted(feeds)
    assert list(net.outputs) == sorted(want)  # Keras' order: a dict's by sorted key
    got = trtdsl.reference.run(net, feeds)
    for key, w in want.items():
        assert np.abs(got[key] - w).max() <= 1e-4 * np.abs(w).max(), key


def test_input_shapes_name_a_dict_input_by_its_key(dicts):
    net = tk.load_model(dicts / "flat.h5", batch=2, input_shapes={"image": (4,)})
    assert net.input_specs["image"] == (2, 4)
    with pytest.raises(
        KerasError, match=r"input_shapes names 'img_in'.* Input layer 'img_in' is fed as dict key 'image'"
    ):
        tk.load_model(dicts / "flat.h5", input_shapes={"img_in": (4,)})


def _rename_output(key: str):
    def edit(cfg):
        outs = cfg["config"]["output_layers"]
        outs[key] = outs.pop("boxes")

    return edit


def test_an_output_key_that_names_an_input_is_refused(dicts, tmp_path):
    path = edit_h5_config(dicts / "flat.h5", tmp_path / "clash.h5", _rename_output("meta"))
    with pytest.raises(KerasError, match=r"model 'flat': output key 'meta' is also the name of an input"):
        tk.load_model(path)


def test_an_output_key_that_names_a_tensor_inside_is_refused(dicts, tmp_path):
    path = edit_h5_config(dicts / "flat.h5", tmp_path / "clash.h5", _rename_output("boxes.linear.matmul.out"))
    with pytest.raises(
        KerasError, match=r"output 'boxes.linear.matmul.out' \(of layer 'scores'\).*already has a tensor named"
    ):
        tk.load_model(path)


_FOLDER_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras

    out = sys.argv[1]
    x = keras.Input((6, 6, 2), name="image")
    y = keras.layers.Conv2D(3, 3, activation="relu")(x)
    y = keras.layers.Dense(4)(keras.layers.Flatten()(y))
    model = keras.Model(x, y)
    model.save(f"{out}/unzipped", zipped=False)  # config.json, metadata.json, model.weights.h5
    feed = np.random.default_rng(0).standard_normal((2, 6, 6, 2)).astype(np.float32)
    np.savez(f"{out}/unzipped.npz", x=feed, y=model.predict(feed, verbose=0))
    """
)


def test_a_model_saved_unzipped_converts_like_its_archive(tmp_path_factory):
    folder = _write(tmp_path_factory, _FOLDER_WRITER, "unzipped")
    data = np.load(folder / "unzipped.npz")
    net = tk.load_model(folder / "unzipped", batch=2)
    got = _run(net, data["x"])
    np.testing.assert_allclose(got, data["y"], rtol=1e-5, atol=1e-5 * np.abs(data["y"]).max())
    # Hostile folders: a member that links out, a FIFO for the config, a missing weights file.
    bad = tmp_path_factory.mktemp("bad")
    (bad / "config.json").symlink_to(folder / "unzipped" / "config.json")
    with pytest.raises(WeightError, match=r"config.json: is a link that leads out of"):
        tk.load_model(bad)
    (bad / "config.json").unlink()
    os.mkfifo(bad / "config.json")
    with pytest.raises(WeightError, match=r"config.json: is not a regular file"):
        tk.load_model(bad)
    (bad / "config.json").unlink()
    (bad / "config.json").write_bytes((folder / "unzipped" / "config.json").read_bytes())
    with pytest.raises(WeightError, match=r"is a directory without 'model.weights.h5'.*it holds config.json"):
        tk.load_model(bad)


# Sharded weights (model.save_weights("x.weights.json", max_shard_size=...)): a nested model's layers, and a
# shard size (that of the largest variable) that cuts one layer's variables across two shards.
_SHARDED_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    from keras import layers as L

    out = sys.argv[1]
    x = L.Input((6, 6, 3), name="image")
    y = L.Conv2D(4, 3, padding="same", name="conv")(x)
    y = L.BatchNormalization(name="bn")(y)
    y = L.Flatten()(y)
    head = keras.Sequential([L.Dense(20, activation="relu", name="fc"), L.Dense(5, name="out")], name="head")
    m = keras.Model(x, head(y), name="sharded")
    m.save(f"{out}/m.keras")
    m.save(f"{out}/m.h5")
    rng = np.random.default_rng(3)
    m.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.5 + (1.0 if "variance" in v.path else 0.0)
                   for w, v in zip(m.get_weights(), m.weights)])
    largest = max(w.size * 4 for w in m.get_weights())
    m.save_weights(f"{out}/other.weights.json", max_shard_size=largest / 1024**3)
    try:  # a .keras archive is never sharded: model.save takes no max_shard_size (Keras 3.15)
        m.save(f"{out}/sharded.keras", max_shard_size=1)
    except ValueError as e:
        open(f"{out}/save_refused.txt", "w").write(str(e))
    feed = rng.standard_normal((2, 6, 6, 3)).astype("float32")
    np.savez(f"{out}/other.npz", x=feed, y=m.predict(feed, verbose=0), params=m.count_params())
    """
)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    return _write(tmp_path_factory, _SHARDED_WRITER, "sharded")


@pytest.mark.parametrize("model_file", ["m.keras", "m.h5"])
def test_sharded_weights_give_their_weights_to_the_model(sharded, model_file):
    index = json.loads((sharded / "other.weights.json").read_text())["weight_map"]
    shards = {s for names in index.values() for s in names}
    assert len(shards) >= 3 and any(len(names) == 2 for names in index.values())  # a layer cut across two shards
    assert "/layers/sequential/layers/dense/vars" in index  # the nested model's layers
    assert "max_shard_size" in (sharded / "save_refused.txt").read_text()  # so only weights-only files are sharded
    data = np.load(sharded / "other.npz")
    net = tk.load_model(sharded / model_file, weights=sharded / "other.weights.json", batch=2)
    got = _run(net, data["x"])
    scale = np.abs(data["y"]).max()
    assert np.abs(got - data["y"]).max() <= 1e-4 * scale
    net.keras_weights.check_all_used()
    own = _run(tk.load_model(sharded / model_file, batch=2), data["x"])
    assert np.abs(own - data["y"]).max() > 1e-2 * scale  # the weights came from the shards


def test_the_cli_takes_a_sharded_index_and_names_a_missing_shard(sharded, tmp_path, capsys):
    from trtdsl.cli import main

    assert main(["keras", str(sharded / "m.keras"), "--weights", str(sharded / "other.weights.json"), "--summary"]) == 0
    params = int(np.load(sharded / "other.npz")["params"])
    assert f"Total params: {params:,}" in capsys.readouterr().out  # Keras' model.count_params()
    (tmp_path / "other.weights.json").write_bytes((sharded / "other.weights.json").read_bytes())  # no shards beside
    assert (
        main(["keras", str(sharded / "m.keras"), "--weights", str(tmp_path / "other.weights.json"), "--summary"]) == 2
    )
    assert "other.weights.json: shard 'other_00000.weights.h5': no such file in " in capsys.readouterr().err
