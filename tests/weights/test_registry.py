"""weights/registry: format detection by content, and what a file that is no weight file is called."""

from __future__ import annotations

import shutil

import pytest
import torch

from trtdsl import WeightError
from trtdsl import weights as W


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
