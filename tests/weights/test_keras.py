"""Keras files written by Keras 3.15 and tf_keras 2.21 (tests/fixtures/make_weights.py)."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from trtdsl import WeightError
from trtdsl import weights as W

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "weights"
FILES = [
    ("keras3_convnet.keras", "keras3_convnet", "keras"),
    ("keras3_convnet.h5", "keras3_convnet", "keras_h5"),
    ("tfkeras_convnet.h5", "tfkeras_convnet", "keras_h5"),
    ("tfkeras_convnet_weights.h5", "tfkeras_convnet", "keras_h5"),
    ("keras3_seqnet.keras", "keras3_seqnet", "keras"),
    ("keras3_seqnet.h5", "keras3_seqnet", "keras_h5"),
    ("tfkeras_seqnet.h5", "tfkeras_seqnet", "keras_h5"),
]


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize(("fname", "ref", "fmt"), FILES)
def test_every_weight_equals_what_keras_held(fname, ref, fmt, mmap):
    w = W.load(FIX / fname, mmap=mmap)
    expected = np.load(FIX / f"{ref}.ref.npz")
    assert w.format == fmt
    assert sorted(w) == sorted(expected.files)
    for name in expected.files:
        np.testing.assert_array_equal(w[name], expected[name], err_msg=name)
        assert w[name].dtype == expected[name].dtype


@pytest.mark.parametrize("model", ["convnet", "seqnet"])
def test_keras2_and_keras3_files_give_the_same_names(model):
    names = {tuple(W.load(FIX / f)) for f, ref, _ in FILES if ref.endswith(model)}
    assert len(names) == 1


def test_stable_names_cover_batchnorm_flags_depthwise_rnn_and_nesting():
    conv = W.load(FIX / "keras3_convnet.keras")
    assert [n for n in conv if n.startswith("bn_noscale/")] == [
        "bn_noscale/beta", "bn_noscale/moving_mean", "bn_noscale/moving_variance"
    ]  # fmt: skip
    assert "depthwise/depthwise_kernel" in conv  # Keras 3 calls it 'kernel'
    assert conv.shape("deconv/kernel") == (3, 3, 3, 8)
    seq = W.load(FIX / "keras3_seqnet.keras")
    assert seq.shape("lstm/kernel") == (6, 16) and seq.shape("gru/bias") == (2, 18)  # GRU reset_after
    assert set(seq.scope("inner")) == {"inner_dense/kernel", "inner_dense/bias", "inner_out/kernel", "inner_out/bias"}


@pytest.mark.parametrize("fname", ["keras3_convnet.keras", "tfkeras_convnet.h5"])
def test_keras_weights_are_memory_mapped(fname):
    w = W.load(FIX / fname)
    arr = w["conv2d/kernel"]
    assert isinstance(arr.base, np.memmap) or isinstance(getattr(arr.base, "base", None), np.memmap)
    assert not arr.flags.writeable


def test_compressed_keras_zip_reads_the_same(tmp_path):
    src = FIX / "keras3_convnet.keras"
    dst = tmp_path / "deflated.keras"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item))
    a, b = W.load(src), W.load(dst)
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    b.close()


def test_lambda_layers_in_config_are_never_executed(tmp_path):
    """A Lambda with a marshalled function in its config is JSON to us, nothing more."""
    src = FIX / "keras3_convnet.keras"
    dst = tmp_path / "lambda.keras"
    with zipfile.ZipFile(src) as zin:
        cfg = json.loads(zin.read("config.json"))
        evil = {"class_name": "Lambda", "config": {"name": "evil", "function": {"class_name": "__lambda__",
                "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None}}}}  # fmt: skip
        cfg["config"]["layers"].insert(2, evil)
        with zipfile.ZipFile(dst, "w") as zout:
            for item in zin.infolist():
                data = json.dumps(cfg) if item.filename == "config.json" else zin.read(item)
                zout.writestr(item.filename, data)
    w = W.load(dst)
    np.testing.assert_array_equal(w["conv2d/kernel"], np.load(FIX / "keras3_convnet.ref.npz")["conv2d/kernel"])
    assert not any(n.startswith("evil") for n in w)


def test_split_layer_names_attributes_are_joined(tmp_path):
    """Keras splits attributes over 64 KB into name0, name1, ... (legacy_h5_format.save_attributes_to_hdf5_group)."""
    path = tmp_path / "split.h5"
    rng = np.random.default_rng(0)
    layers = [f"dense_{i}" for i in range(5)]
    values = {}
    with h5py.File(path, "w") as f:
        g = f.create_group("model_weights")
        for i, chunk in enumerate(np.array_split(np.array([n.encode() for n in layers]), 3)):
            g.attrs[f"layer_names{i}"] = chunk
        for name in layers:
            lg = g.create_group(name)
            wnames = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            lg.attrs["weight_names0"], lg.attrs["weight_names1"] = wnames[:1], wnames[1:]
            for wn, shape in zip(wnames, [(3, 2), (2,)]):
                values[wn.decode().replace(":0", "")] = v = rng.standard_normal(shape).astype(np.float32)
                lg.create_dataset(wn.decode(), data=v)
    w = W.load(path)
    assert w.format == "keras_h5"
    assert sorted(w) == sorted(values)
    for name, v in values.items():
        np.testing.assert_array_equal(w[name], v)


def test_keras_zip_with_missing_weights_member(tmp_path):
    dst = tmp_path / "broken.keras"
    with zipfile.ZipFile(FIX / "keras3_convnet.keras") as zin, zipfile.ZipFile(dst, "w") as zout:
        zout.writestr("config.json", zin.read("config.json"))
    with pytest.raises(WeightError, match=r"broken.keras: .*model.weights.h5"):
        W.load(dst)


def test_keras_h5_listing_a_missing_layer(tmp_path):
    dst = tmp_path / "bad.h5"
    shutil.copy(FIX / "tfkeras_convnet_weights.h5", dst)
    with h5py.File(dst, "a") as f:
        f.attrs["layer_names"] = np.array([b"conv2d", b"ghost"])
    with pytest.raises(WeightError, match=r"bad.h5: layer_names lists 'ghost' but the file has no group"):
        W.load(dst)


def _entry(cls: str, name: str, **config) -> dict:
    return {"class_name": cls, "module": "keras.layers", "name": name, "config": {"name": name, **config}}


def _functional(name: str, *layers: dict) -> dict:
    return _entry("Functional", name, layers=[_entry("InputLayer", f"{name}_in"), *layers])


def test_legacy_names_take_the_innermost_scope_that_names_a_layer(tmp_path):
    """Keras 3.15's legacy .h5 names a weight of a Sequential inside a Functional 'inner_seq/dense_4/kernel'
    and one of a model inside TimeDistributed 'dense_4/kernel' (seen in files it wrote)."""
    inner_seq = _entry("Sequential", "inner_seq", layers=[_entry("Dense", "dense_4", units=2)])
    func = _functional("func", inner_seq, _entry("Dense", "dense_5", units=2))
    td = _entry("TimeDistributed", "td", layer=_functional("tdm", _entry("Dense", "dense_7", units=2)))
    config = {"class_name": "Sequential", "config": {"name": "outer", "layers": [func, td]}}
    path = tmp_path / "nested.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"func", b"td"]
        for layer, names in {"func": ["inner_seq/dense_4/kernel", "dense_5/kernel"], "td": ["dense_7/kernel"]}.items():
            lg = g.create_group(layer)
            lg.attrs["weight_names"] = [n.encode() for n in names]
            for n in names:
                lg.create_dataset(n, data=np.zeros((2, 2), np.float32))
    assert sorted(W.load(path)) == ["func/dense_5/kernel", "func/inner_seq/dense_4/kernel", "td/dense_7/kernel"]


def test_keras_zip_nested_wrappers_and_a_layer_shared_by_two_containers(tmp_path):
    """saving_lib keeps a wrapper's inner layer under its ``layer`` group, nesting again for a wrapper
    inside a wrapper, and saves a layer object once, under the first container listing it."""
    shared = _entry("Dense", "shared", units=2)
    lstm = {"class_name": "LSTM", "config": {"name": "lstm", "units": 2, "use_bias": True}}
    td = _entry("TimeDistributed", "td", layer={"class_name": "Bidirectional", "config": {"name": "bi", "layer": lstm}})
    config = {"class_name": "Functional", "config": {"name": "m", "layers": [
        _entry("InputLayer", "x0"), _functional("inner", shared, _entry("Dense", "in_d", units=2)), shared, td]}}  # fmt: skip
    rng = np.random.default_rng(0)
    h5 = tmp_path / "model.weights.h5"
    with h5py.File(h5, "w") as f:
        for group in ["layers/functional/layers/dense", "layers/functional/layers/dense_1"]:
            for i in range(2):
                f.create_dataset(f"{group}/vars/{i}", data=rng.standard_normal((2,)).astype(np.float32))
        for side in ("forward_layer", "backward_layer"):
            for i in range(3):
                f.create_dataset(f"layers/time_distributed/layer/{side}/cell/vars/{i}", data=np.zeros(8, np.float32))
    path = tmp_path / "nested.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.0"}))
        z.write(h5, "model.weights.h5")
    w = W.load(path)
    lstm_names = [f"td/{d}/{n}" for d in ("backward", "forward") for n in ("bias", "kernel", "recurrent_kernel")]
    assert sorted(w) == sorted(["inner/in_d/bias", "inner/in_d/kernel", "inner/shared/bias", "inner/shared/kernel",
                                "shared/bias", "shared/kernel", *lstm_names])  # fmt: skip
    np.testing.assert_array_equal(w["shared/kernel"], w["inner/shared/kernel"])
