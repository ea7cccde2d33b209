"""safetensors files (trtdsl/weights/safetensors.py), written by the safetensors library; the sharded
checkpoint tests, shared with PyTorch's, are in test_shards.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trtdsl import WeightError
from trtdsl import weights as W

from ._samples import assert_same, mapped, sample


# -------------------------------------------------------------- safetensors
def test_safetensors_from_numpy(tmp_path, rng):
    from safetensors.numpy import save_file

    data = sample(rng)
    save_file(data, str(tmp_path / "w.safetensors"), metadata={"format": "np"})
    w = W.load(tmp_path / "w.safetensors")
    assert w.format == "safetensors"
    assert_same(w, data)
    assert mapped(w["stem.conv1.weight"])
    assert_same(W.load(tmp_path / "w.safetensors", mmap=False), data)


@pytest.mark.parametrize("mmap", [True, False])
def test_safetensors_bfloat16_from_torch(tmp_path, mmap):
    from safetensors.torch import save_file

    t = torch.randn(4, 5).to(torch.bfloat16)
    save_file({"w": t}, str(tmp_path / "w.safetensors"))
    got = W.load(tmp_path / "w.safetensors", mmap=mmap)["w"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, t.float().numpy())


# ------------------------------------------------- a folder (sharded checkpoints: test_shards.py)
def test_directory_with_one_safetensors_file_loads_it(tmp_path, rng):
    from safetensors.numpy import save_file

    data = sample(rng)
    save_file(data, str(tmp_path / "model.safetensors"))
    assert W.load(tmp_path).format == "safetensors"
    assert_same(W.load(tmp_path), data)
    save_file(data, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightError, match=r"directory with 2 \*\.safetensors files \(model.safetensors, other"):
        W.load(tmp_path)
