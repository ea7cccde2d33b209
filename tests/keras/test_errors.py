"""Unsupported, unsafe and broken Keras files give clear errors (messages pinned), and user converters work."""

from __future__ import annotations

import json
import shutil
import zipfile

import h5py
import numpy as np
import pytest

import trtdsl
from trtdsl import keras as tk
from trtdsl import ops
from trtdsl.errors import KerasError, TrtdslError, UnsupportedKerasLayerError, WeightError, WeightShapeError

from ..conftest import requires_trt
from .keras_util import FIXTURES, compare, edit_h5_config, recorded

pytestmark = requires_trt
K3, K2 = FIXTURES / "k3", FIXTURES / "k2"


def _layer(cfg, name):
    return next(entry for entry in cfg["config"]["layers"] if entry["config"]["name"] == name)


_AUDIT: dict[str, list] = {}


def _hook(event, args):
    # Installed once; records only while a test listens (audit hooks cannot be removed). Counts
    # code decoding or running called from trtdsl itself, not Python importing a module for it.
    if "events" not in _AUDIT or event not in ("marshal.loads", "exec", "compile", "pickle.find_class"):
        return
    import sys

    f, files = sys._getframe(1), []
    while f is not None:
        files.append(f.f_code.co_filename)
        f = f.f_back
    if any("/trtdsl/" in name for name in files) and not any("importlib" in name for name in files):
        _AUDIT["events"].append(event)


@pytest.mark.parametrize("path", [K3 / "refuse_lambda.keras", K3 / "refuse_lambda.h5", K2 / "refuse_lambda.h5"])
def test_lambda_is_refused_without_running_it(path):
    import sys

    tk.load_model(K3 / "sequential.keras")  # lazy imports done before listening
    if not _AUDIT.get("installed"):
        sys.addaudithook(_hook)
        _AUDIT["installed"] = True
    _AUDIT["events"] = []
    try:
        with pytest.raises(UnsupportedKerasLayerError, match=r"layer 'doubling' is a Lambda layer: .*never executes"):
            tk.load_model(path)
        assert _AUDIT["events"] == [], f"code from the file was decoded or run: {_AUDIT['events']}"
    finally:
        del _AUDIT["events"]


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_custom_class_needs_a_converter(suffix):
    path = K3 / f"custom_layer{suffix}"
    with pytest.raises(UnsupportedKerasLayerError, match=r"layer 'scale2'.*'Scale2'.*'demo>Scale2' is a custom class"):
        tk.load_model(path)


def test_user_converter_for_a_custom_class():
    @tk.converts("Scale2")
    def scale2(layer, x):
        return layer.like(x, ops.add(ops.mul(x.t, float(layer.config["factor"])), 1.0))

    try:
        for suffix in (".keras", ".h5"):
            path = K3 / f"custom_layer{suffix}"
            compare(tk.load_model(path), recorded(path))
    finally:
        del tk.CONVERTERS[("layer", "Scale2")]


def test_unknown_class_names_layer_and_suggests(tmp_path):
    bad = edit_h5_config(K3 / "cnn.h5", tmp_path / "bad.h5", lambda c: _layer(c, "stem").update(class_name="Conv2d"))
    with pytest.raises(
        UnsupportedKerasLayerError, match=r"layer 'stem': no converter for layer class 'Conv2d'\. Did you mean 'Conv2D'"
    ) as e:
        tk.load_model(bad)
    assert "Supported: " in str(e.value) and "MultiHeadAttention" in str(e.value)


def test_unknown_operation_is_keyed_apart_from_layers(tmp_path):
    def edit(c):
        next(e for e in c["config"]["layers"] if e["class_name"] == "Add").update(class_name="Logaddexp")

    bad = edit_h5_config(K3 / "arithmetic.h5", tmp_path / "op.h5", edit)
    with pytest.raises(UnsupportedKerasLayerError, match=r"Keras operation 'Logaddexp'.*kind='operation'"):
        tk.load_model(bad)


@pytest.mark.parametrize("path", [K3 / "cnn.keras", K3 / "cnn.h5", K2 / "cnn.h5"])
def test_truncated_file(path, tmp_path):
    cut = tmp_path / path.name
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TrtdslError, match=r"truncated|damaged|cannot read|not a Keras"):
        tk.load_model(cut)


def test_not_a_keras_file(tmp_path):
    p = tmp_path / "model.h5"
    p.write_bytes(b"not hdf5 at all")
    with pytest.raises(WeightError, match=r"neither a Keras \.h5 \(HDF5\) nor a \.keras \(zip\) file"):
        tk.load_model(p)
    with pytest.raises(WeightError, match="no Keras model file"):
        tk.load_model(tmp_path / "missing.keras")


def test_weights_only_h5(tmp_path):
    p = tmp_path / "w.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("dense/kernel", data=np.zeros((2, 2), np.float32))
    with pytest.raises(WeightError, match=r"no 'model_config' attribute: it holds weights only"):
        tk.load_model(p)


def test_missing_weight(tmp_path):
    p = tmp_path / "m.h5"
    shutil.copy(K3 / "sequential.h5", p)
    with h5py.File(p, "r+") as f:
        g = f["model_weights"]
        layer = next(n for n in g if n.startswith("dense"))
        sub = g[layer]
        names = [n.decode() if isinstance(n, bytes) else n for n in sub.attrs["weight_names"]]
        kept = [n for n in names if not n.endswith("bias")]
        sub.attrs["weight_names"] = np.array([n.encode() for n in kept])
    with pytest.raises(WeightError, match=r"Dense layer 'dense.*': the file has no weight 'dense.*/bias'.*disagree"):
        tk.load_model(p)


def test_config_disagrees_with_weights(tmp_path):
    def edit(c):
        layers = c["config"]["layers"]
        dense = next(e for e in layers if e["class_name"] == "Dense")
        dense["config"]["units"] = 9

    bad = edit_h5_config(K3 / "sequential.h5", tmp_path / "units.h5", edit)
    with pytest.raises(WeightShapeError, match=r"weight 'dense.*/kernel'.* has shape \(10, 8\), expected \(None, 9\)"):
        tk.load_model(bad)


def test_keras_zip_without_config(tmp_path):
    p = tmp_path / "m.keras"
    with zipfile.ZipFile(K3 / "sequential.keras") as src, zipfile.ZipFile(p, "w") as dst:
        for item in src.infolist():
            if item.filename != "config.json":
                dst.writestr(item, src.read(item))
    with pytest.raises(WeightError, match=r"not a Keras 3 archive: .*config\.json"):
        tk.load_model(p)


def test_dynamic_input_dims_need_input_shapes(tmp_path):
    def edit(c):
        _layer(c, "seq")["config"]["batch_shape"] = [None, None, 4]

    p = edit_h5_config(K3 / "conv1d.h5", tmp_path / "dyn.h5", edit)
    with pytest.raises(KerasError, match=r"input 'seq' has dynamic dims .*input_shapes=\{'seq': \(8, 4\)\}"):
        tk.load_model(p)
    with pytest.raises(KerasError, match=r"input_shapes names 'seqs', not an input.*Did you mean 'seq'"):
        tk.load_model(p, input_shapes={"seqs": (20, 4)})
    net = tk.load_model(p, input_shapes={"seq": (20, 4)})
    compare(net, recorded(K3 / "conv1d.h5"))


def test_cycle_in_config_is_an_error_not_a_hang(tmp_path):
    def edit(c):
        _layer(c, "stem")["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["probs", 0, 0]

    p = edit_h5_config(K3 / "cnn.h5", tmp_path / "cycle.h5", edit)
    with pytest.raises(KerasError, match=r"layer '\w+' depends on itself \(a cycle\)"):
        tk.load_model(p)


def test_build_proves_every_weight_used():
    path = K3 / "sequential.keras"
    w = trtdsl.weights.load(path)
    net = tk.load_model(path, weights=w, batch=1)
    assert net.keras_weights is w and not w.unused()
    extra = trtdsl.weights.load(K3 / "cnn.keras")
    with pytest.raises(WeightError, match=r"weights in cnn\.keras were not used"):
        trtdsl.build(net, weights=extra)


def _mutations(cfg, rng, n):
    """Random hostile edits of a real config: entries deleted, retyped, or made absurd."""
    import copy

    def paths(v, prefix=()):
        if isinstance(v, dict):
            for k, x in v.items():
                yield (*prefix, k)
                yield from paths(x, (*prefix, k))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                yield (*prefix, i)
                yield from paths(x, (*prefix, i))

    all_paths = list(paths(cfg))
    for _ in range(n):
        c = copy.deepcopy(cfg)
        path = all_paths[rng.integers(len(all_paths))]
        parent = c
        for p in path[:-1]:
            parent = parent[p]
        choice = rng.integers(5)
        if choice == 0 and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = [None, "x", -7, {"a": 1}, 10**9][choice]
        yield c


@pytest.mark.parametrize("name", ["cnn", "multi_io", "recurrent", "transformer"])
def test_hostile_configs_raise_trtdsl_errors_only(name, tmp_path):
    """A damaged config converts or raises a TrtdslError; never a crash, a hang or another exception."""
    src = K3 / f"{name}.h5"
    with h5py.File(src, "r") as f:
        cfg = json.loads(f.attrs["model_config"])
    rng = np.random.default_rng(7)
    for i, bad in enumerate(_mutations(cfg, rng, 25)):
        p = edit_h5_config(src, tmp_path / f"m{i}.h5", lambda c, bad=bad: (c.clear(), c.update(bad)))
        try:
            tk.load_model(p, batch=1)
        except TrtdslError:
            pass


# ------------------------------------------------- found by an adversarial review (session 9)
def test_config_numbers_past_any_machine_are_errors(tmp_path):
    # Infinity in a config was a bare OverflowError (int(inf)); a shape past int32, the bindings' TypeError.
    def infinite(c):
        _layer(c, "stem")["inbound_nodes"][0]["args"][0]["config"]["keras_history"][1] = float("inf")

    with pytest.raises(WeightError, match=r"is not valid JSON: Infinity is not a JSON number"):
        tk.load_model(edit_h5_config(K3 / "cnn.h5", tmp_path / "inf.h5", infinite))

    def huge(c):
        next(e for e in c["config"]["layers"] if e["class_name"] == "InputLayer")["config"]["batch_shape"][1] = 2**40

    with pytest.raises(KerasError, match=r"TensorRT takes rank 8 at most and dims up to 2\*\*31-1"):
        tk.load_model(edit_h5_config(K3 / "cnn.h5", tmp_path / "huge.h5", huge))
    numeric = shutil.copy(K3 / "cnn.h5", tmp_path / "numeric.h5")
    with h5py.File(numeric, "r+") as f:
        f.attrs["model_config"] = 5
    with pytest.raises(WeightError, match=r"attribute 'model_config' is int, expected the model's JSON text"):
        tk.load_model(numeric)


def test_a_custom_class_named_like_a_built_in_is_refused(tmp_path):
    # Keras runs the user's class for it; converting it as the built-in built another network without a word.
    def custom(c):
        _layer(c, "stem").update(module="mypkg.layers", registered_name="mypkg>Conv2D")

    with pytest.raises(UnsupportedKerasLayerError, match=r"'mypkg>Conv2D' \(module 'mypkg\.layers'\) is a custom "
                       r"class named like Keras' Conv2D: Keras runs its own code"):  # fmt: skip
        tk.load_model(edit_h5_config(K3 / "cnn.h5", tmp_path / "custom.h5", custom))
