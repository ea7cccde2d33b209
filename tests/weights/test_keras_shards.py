"""Keras 3 sharded weights (``save_weights("x.weights.json", max_shard_size=...)``) written by Keras itself."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from trtdsl import WeightError
from trtdsl import weights as W

# ---------------------------------------------------------------- sharded weights-only files (Keras 3)
# model.save_weights("other.weights.json", max_shard_size=...) written by Keras 3 itself: the index and three shards,
# the dense layer's kernel and bias in two of them; what each variable must be is Keras' own get_weights().
_SHARDED = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    from keras import layers as L

    out = sys.argv[1]
    x = L.Input((4, 4, 2), name="image")
    y = L.Conv2D(3, 3, name="conv")(x)
    y = L.Dense(16, name="fc")(L.Flatten()(y))
    m = keras.Model(x, L.Dense(2, name="out")(y))
    m.save(f"{out}/m.keras")
    largest = max(w.size * 4 for w in m.get_weights())
    m.save_weights(f"{out}/other.weights.json", max_shard_size=largest / 1024**3)
    np.savez(f"{out}/held.npz", **{f"{v.path.split('/')[0]}/{v.name}": w for v, w in zip(m.weights, m.get_weights())})
    x = L.Input((4,), name="x")
    bare = keras.Model(x, L.ReLU()(x))  # no variables: Keras writes an empty weight_map and an empty none_00000
    bare.save(f"{out}/bare.keras")
    bare.save_weights(f"{out}/none.weights.json", max_shard_size=1)
    """
)
_SHARDS = ["other_00000.weights.h5", "other_00001.weights.h5", "other_00002.weights.h5"]


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> Path:
    from ..keras.keras_util import keras_writer

    return keras_writer(tmp_path_factory.mktemp("sharded"), _SHARDED)


@pytest.fixture
def shards(sharded, tmp_path) -> Path:
    """A copy of the index and its shards, to spoil."""
    for name in ["other.weights.json", *_SHARDS]:
        shutil.copy(sharded / name, tmp_path / name)
    return tmp_path / "other.weights.json"


def _config(sharded: Path) -> dict:
    from trtdsl.weights.keras_config import read

    return read(sharded / "m.keras").config


def _edit(index: Path, edit) -> Path:
    doc = json.loads(index.read_text())
    edit(doc["weight_map"])
    index.write_text(json.dumps(doc))
    return index


@pytest.mark.parametrize(("mmap", "trusted"), [(True, False), (False, False), (True, True)])
def test_sharded_weights_are_what_keras_held(sharded, mmap, trusted):
    from trtdsl.weights.keras import load_keras_weights

    weight_map = json.loads((sharded / "other.weights.json").read_text())["weight_map"]
    assert sorted({s for v in weight_map.values() for s in v}) == _SHARDS
    assert weight_map["/layers/dense/vars"] == _SHARDS[1:]  # fc's kernel and bias lie in two shards
    held = np.load(sharded / "held.npz")
    with load_keras_weights(sharded / "other.weights.json", _config(sharded), mmap=mmap, trusted=trusted) as w:
        assert w.format == "keras" and sorted(w) == sorted(held.files)
        for name in held.files:
            np.testing.assert_array_equal(w[name], held[name], err_msg=name)


def test_sharded_weights_open_the_shards_and_nothing_else(sharded, shards, monkeypatch):
    from trtdsl.weights import keras as K
    from trtdsl.weights import keras_shards as S

    opened: list[str] = []

    class Spy(S.H5Image):
        def __init__(self, path, **kw):
            opened.append(Path(path).name)
            super().__init__(path, **kw)

    monkeypatch.setattr(S, "H5Image", Spy)
    K.load_keras_weights(sharded / "other.weights.json", _config(sharded)).close()
    assert sorted(opened) == _SHARDS
    opened.clear()
    _edit(shards, lambda m: m["/layers/dense_1/vars"].append("../other_00000.weights.h5"))
    with pytest.raises(WeightError, match="plain file name"):
        K.load_keras_weights(shards, _config(sharded))
    assert opened == []  # every name is checked before the first shard is opened


def test_an_index_of_a_model_without_variables_names_nothing_and_opens_nothing(sharded, monkeypatch):
    from trtdsl.weights import keras as K
    from trtdsl.weights import keras_shards as S
    from trtdsl.weights.keras_config import read

    assert json.loads((sharded / "none.weights.json").read_text())["weight_map"] == {}
    monkeypatch.setattr(S, "H5Image", None)  # any shard opened would fail
    with K.load_keras_weights(sharded / "none.weights.json", read(sharded / "bare.keras").config) as w:
        assert len(w) == 0


def test_loading_the_index_on_its_own_says_to_give_it_to_load_model(sharded):
    with pytest.raises(WeightError, match=r"the index of Keras 3 sharded weights .* only the model's config names: pass "
                                          r"it as trtdsl.keras.load_model\(model_file, weights='.*other.weights.json'\)"):  # fmt: skip
        W.load(sharded / "other.weights.json")


def _dup(m):
    m["/layers/conv2d/vars"] *= 2


def _spill(m):  # the index places the conv kernel's group in a shard that does not hold it too
    m["/layers/conv2d/vars"].append(_SHARDS[2])


def _unplaced(m):
    del m["/layers/dense_1/vars"]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (_dup, r"other.weights.json: weight_map\['/layers/conv2d/vars'\] lists shard 'other_00000.weights.h5' twice"),
        (_spill, r"places '/layers/conv2d/vars' in shard 'other_00002.weights.h5', which holds no variables of it"),
        (_unplaced, r"shard 'other_00002.weights.h5' holds 'layers/dense_1/vars/0', but the index places "
                    r"'/layers/dense_1/vars' in no shard"),
        (lambda m: m.__setitem__("/layers/conv2d/vars", 5), r"weight_map\['/layers/conv2d/vars'\] is int 5: "
                                                           "expected a shard file name"),
        (lambda m: m.__setitem__("/layers/conv2d/vars", []), r"is list \[\]: expected a shard file name"),
        (lambda m: m.__setitem__("/layers/../vars", _SHARDS[:1]), r"weight_map\['/layers/../vars'\]: expected "
                                                                 "the path of a 'vars' group"),
        (lambda m: m.__setitem__("layers/conv2d", _SHARDS[:1]), "expected the path of a 'vars' group"),
        (lambda m: m.__setitem__("/layers/x/vars", ["/etc/passwd"]), r"shard '/etc/passwd': expected a plain file"),
        (lambda m: m.__setitem__("/layers/x/vars", ["sub/a.weights.h5"]), r"shard 'sub/a.weights.h5': expected a "),
        (lambda m: m.__setitem__("/layers/x/vars", [".."]), r"shard '..': expected a plain file name"),
        (lambda m: m.__setitem__("/layers/x/vars", ["\ud800.h5"]), r"shard '\\ud800.h5': expected a plain file"),
        (lambda m: m.__setitem__("/layers/x/vars", ["no.weights.h5"]), r"shard 'no.weights.h5': no such file in "),
    ],
    ids=["listed-twice", "placed-but-absent", "held-but-unplaced", "not-a-name", "no-names", "dotdot-group",
         "not-a-vars-group", "absolute", "subfolder", "dotdot", "surrogate", "missing"],
)  # fmt: skip
def test_a_spoiled_index_is_refused_by_name(sharded, shards, edit, match):
    from trtdsl.weights.keras import load_keras_weights

    with pytest.raises(WeightError, match=match):
        load_keras_weights(_edit(shards, edit), _config(sharded))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", r"other.weights.json: sharded weights index is not UTF-8 JSON"),
        ("[1, 2]", r"not a Keras sharded weights index: expected \{\"metadata\".*; found list"),
        ('{"metadata": {}}', r"not a Keras sharded weights index: .*found keys 'metadata'$"),
        ('{"metadata": 3, "weight_map": {}}', r"metadata is int"),
        ('{"weight_map": {"/vars": ["a.h5"], "/vars": ["b.h5"]}}', r"names key '/vars' twice"),
    ],
    ids=["not-json", "a-list", "no-weight-map", "metadata", "duplicate-key"],
)
def test_a_malformed_index_is_refused(sharded, shards, text, match):
    from trtdsl.weights.keras import load_keras_weights

    shards.write_text(text)
    with pytest.raises(WeightError, match=match):
        load_keras_weights(shards, _config(sharded))


def test_a_variable_in_two_shards_is_refused(sharded, shards):
    from trtdsl.weights.keras import load_keras_weights

    with h5py.File(shards.parent / _SHARDS[2], "r+") as f:  # fc's bias shard gets a copy of fc's kernel too
        f["layers/dense/vars/0"] = np.zeros((12, 16), np.float32)
    with pytest.raises(WeightError, match=r"variable 'layers/dense/vars/0' is in shard 'other_00001.weights.h5' "
                                          r"and in shard 'other_00002.weights.h5'"):  # fmt: skip
        load_keras_weights(shards, _config(sharded))


def test_shards_that_are_not_plain_files_of_the_folder_are_refused(sharded, shards, tmp_path_factory):
    from trtdsl.weights.keras import load_keras_weights

    config = _config(sharded)
    shard = shards.parent / _SHARDS[1]
    outside = tmp_path_factory.mktemp("outside") / _SHARDS[1]
    shard.rename(outside)
    shard.symlink_to(outside)
    with pytest.raises(WeightError, match=r"shard 'other_00001.weights.h5': is a link that leads out of the index"):
        load_keras_weights(shards, config)
    shard.unlink()
    os.mkfifo(shard)
    with pytest.raises(WeightError, match=r"shard 'other_00001.weights.h5': expected a regular file, found a FIFO"):
        load_keras_weights(shards, config)
    shard.unlink()
    shard.write_bytes(b"not HDF5 at all" * 4)
    with pytest.raises(WeightError, match=r"other.weights.json: shard 'other_00001.weights.h5'"):
        load_keras_weights(shards, config)
    shutil.copy(outside, shard)
    with h5py.File(shard, "r+") as f:
        f["layers/dense/leak"] = h5py.ExternalLink("/etc/hostname", "/")
    with pytest.raises(WeightError, match=r"shard 'other_00001.weights.h5': refused: 'layers/dense/leak' is an "
                                          "external link"):  # fmt: skip
        load_keras_weights(shards, config)


def test_sharded_index_limits(sharded, shards):
    from trtdsl.weights.keras import load_keras_weights

    with pytest.raises(WeightError, match=r"other.weights.json: sharded weights index of \d+ bytes is over "
                                          r"limits.max_json_bytes=64"):  # fmt: skip
        load_keras_weights(shards, _config(sharded), limits=W.Limits(max_json_bytes=64))
    with pytest.raises(WeightError, match=r"names 3 shard files, over limits.max_shards=2"):
        load_keras_weights(shards, _config(sharded), limits=W.Limits(max_shards=2))
