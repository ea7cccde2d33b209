"""Weight files are data: nothing in them is unpickled, executed or extracted."""

from __future__ import annotations

import pathlib
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from trtdsl import WeightError
from trtdsl import weights as W

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "weights"


class Evil:
    """Unpickling this creates a file: proof that code from the weight file ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_with_pickled_object_array_is_refused(tmp_path, save):
    marker = tmp_path / "pwned"
    save(tmp_path / "evil.npz", ok=np.ones(3), obj=np.array([Evil(marker)], dtype=object))
    with pytest.raises(
        WeightError,
        match=r"evil.npz: member 'obj.npy': holds pickled Python objects \(dtype object\); trtdsl never unpickles",
    ):
        W.load(tmp_path / "evil.npz")
    assert not marker.exists()


def test_npy_with_pickled_object_array_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    np.save(tmp_path / "evil.npy", np.array([Evil(marker)], dtype=object))
    with pytest.raises(WeightError, match=r"evil.npy: holds pickled Python objects"):
        W.load(tmp_path / "evil.npy")
    assert not marker.exists()


@pytest.mark.parametrize("member", ["../evil", "a/../../evil", "/etc/evil", "C:/evil", "..\\evil"])
def test_keras_zip_with_path_traversal_member_is_refused(tmp_path, member):
    dst = tmp_path / "sub" / "model.keras"
    dst.parent.mkdir()
    with zipfile.ZipFile(FIX / "keras3_convnet.keras") as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item))
        zout.writestr(member, b"payload")
    with pytest.raises(
        WeightError, match=r"model.keras: refused: zip member .* points outside the archive \(path traversal\)"
    ):
        W.load(dst)
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_file_with_arbitrary_objects_is_refused(tmp_path, legacy):
    marker = tmp_path / "pwned"
    torch.save(
        {"w": torch.ones(2), "hook": Evil(marker)}, tmp_path / "evil.pt", _use_new_zipfile_serialization=not legacy
    )
    with pytest.raises(
        WeightError, match=r"evil.pt: refused: it holds Python objects other than tensors .*weights_only=True"
    ):
        W.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_hdf5_external_links_are_not_followed(tmp_path):
    with h5py.File(tmp_path / "secret.h5", "w") as f:
        f["data"] = np.arange(4.0)
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f["own"] = np.ones(2)
        f["leak"] = h5py.ExternalLink(str(tmp_path / "secret.h5"), "/data")
    assert list(W.load(tmp_path / "w.h5")) == ["own"]
