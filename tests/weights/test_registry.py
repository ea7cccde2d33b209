"""weights/registry: format detection by content, what a file that is no weight file is called, and which
checkpoint a folder holds."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from trtdsl import WeightError
from trtdsl import weights as W

from ._samples import SAFETENSORS, TORCH, assert_same, sample, write_sharded


def test_a_pickle_is_not_called_a_torch_checkpoint(tmp_path):
    import pickle

    (tmp_path / "data.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    with pytest.raises(
        WeightError,
        match=r"data.pkl: not a weight file trtdsl can read: it starts with b'\\x80\\x04.*legacy torch pickle b'\\x80\\x02\\x8a\\n'",
    ):
        W.load(tmp_path / "data.pkl")
    shutil.copy(tmp_path / "data.pkl", tmp_path / "data.bin")  # a torch suffix: the torch loader says what it expected
    with pytest.raises(
        WeightError,
        match=r"data.bin: not a PyTorch checkpoint: it starts with b'\\x80\\x04.*expected a zip .* or the legacy format's pickled magic number b'\\x80\\x02\\x8a\\n'",
    ):
        W.load(tmp_path / "data.bin")
    torch.save({"w": torch.ones(1)}, tmp_path / "legacy.bin", _use_new_zipfile_serialization=False)
    assert W.detect(tmp_path / "legacy.bin") == "torch"


# ------------------------------------------------- which checkpoint a folder holds (registry._in_directory)
def test_a_folder_with_a_safetensors_and_a_torch_index_loads_the_safetensors_one(tmp_path, rng):
    st, pt = sample(rng), sample(np.random.default_rng(1))  # different values: the store says which was read
    write_sharded(tmp_path, st, SAFETENSORS, n=2)
    write_sharded(tmp_path, pt, TORCH, n=2)
    w = W.load(tmp_path)
    assert w.format == "safetensors_index"  # as transformers' from_pretrained prefers safetensors
    assert_same(w, st)
    assert_same(W.load(tmp_path / TORCH.index), pt)
    (tmp_path / SAFETENSORS.index).unlink()
    for f in tmp_path.glob("*.safetensors"):
        f.unlink()
    assert W.load(tmp_path).format == "torch_index"


def test_a_folder_with_two_torch_indexes_or_none_names_what_it_looked_for(tmp_path, rng):
    write_sharded(tmp_path, sample(rng), TORCH, n=2)
    (tmp_path / "extra.pt.index.json").write_text((tmp_path / TORCH.index).read_text())
    with pytest.raises(
        WeightError,
        match=r"directory with 2 \*\.bin\.index\.json/\*\.pt\.index\.json/\*\.pth\.index\.json files "
        r"\(extra\.pt\.index\.json, pytorch_model\.bin\.index\.json\); pass the one to load",
    ):
        W.load(tmp_path)
    assert W.load(tmp_path / "extra.pt.index.json").format == "torch_index"
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        WeightError,
        match=r"empty: is not a file, and not a directory holding one \*\.safetensors\.index\.json, or one "
        r"\*\.safetensors, or one \*\.bin\.index\.json/\*\.pt\.index\.json/\*\.pth\.index\.json$",
    ):
        W.load(tmp_path / "empty")
