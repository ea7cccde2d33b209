"""weights/h5: an HDF5 file (plain, Keras .h5, or inside a .keras zip) gives only its own bytes: external
storage, virtual datasets and links are refused, declared sizes are checked before reading, and names
and attribute text are checked.

Crafted attacks load in the long-lived load server (conftest.py), so a crash or
a hang fails the test instead of killing the run.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from trtdsl import WeightError
from trtdsl import weights as W

from ._crafted import FIX, SECRET, refused, rezip


@pytest.fixture
def secret(tmp_path) -> dict[str, Path]:
    (tmp_path / "secret.bin").write_bytes(SECRET)
    with h5py.File(tmp_path / "secret.h5", "w") as f:
        f["data"] = np.frombuffer(SECRET, np.uint8).astype(np.float32)
    return {"bin": tmp_path / "secret.bin", "h5": tmp_path / "secret.h5"}


def _keras_h5_with(tmp_path: Path, make) -> Path:
    """keras3_convnet.h5 with its first Conv2D kernel replaced by ``make(group, name, like)``."""
    dst = tmp_path / "model.h5"
    shutil.copy(FIX / "keras3_convnet.h5", dst)
    with h5py.File(dst, "r+") as f:
        group = f["model_weights/conv2d"]
        wn = group.attrs["weight_names"][0]
        wn = wn.decode() if isinstance(wn, bytes) else wn
        like = group[wn]
        shape, dtype = like.shape, like.dtype
        del group[wn]
        make(group, wn, shape, dtype)
    return dst


def _keras_zip_with(tmp_path: Path, make) -> Path:
    """keras3_convnet.keras whose model.weights.h5 has the first variable replaced by ``make(...)``."""
    with zipfile.ZipFile(FIX / "keras3_convnet.keras") as z:
        inner = tmp_path / "inner.h5"
        inner.write_bytes(z.read("model.weights.h5"))
    with h5py.File(inner, "r+") as f:
        vars_ = f["layers/conv2d/vars"]
        shape, dtype = vars_["0"].shape, vars_["0"].dtype
        del vars_["0"]
        make(vars_, "0", shape, dtype)
    return rezip(
        FIX / "keras3_convnet.keras", tmp_path / "model.keras", replace={"model.weights.h5": inner.read_bytes()}
    )


def _generic_with(tmp_path: Path, make) -> Path:
    dst = tmp_path / "w.h5"
    with h5py.File(dst, "w") as f:
        f["own"] = np.ones((4, 4), np.float32)
        make(f, "w", (4, 4), np.dtype(np.float32))
    return dst


CONTAINERS = {"h5": _generic_with, "keras_h5": _keras_h5_with, "keras": _keras_zip_with}


def _external_storage(secret):
    def make(group, name, shape, dtype):
        n = int(np.prod(shape)) * dtype.itemsize
        group.create_dataset(name, shape=shape, dtype=dtype, external=[(str(secret["bin"]), 0, n)])

    return make


def _virtual(secret):
    def make(group, name, shape, dtype):
        n = len(SECRET)  # the shape does not matter: it is refused before anyone compares shapes
        layout = h5py.VirtualLayout(shape=(n,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(secret["h5"]), "data", shape=(n,))
        group.create_virtual_dataset(name, layout)

    return make


def _external_link(secret):
    return lambda group, name, shape, dtype: group.__setitem__(name, h5py.ExternalLink(str(secret["h5"]), "/data"))


def _soft_link(secret):
    def make(group, name, shape, dtype):
        group.file["stash"] = np.zeros(shape, dtype)
        group[name] = h5py.SoftLink("/stash")

    return make


ATTACKS = {
    "external storage": (_external_storage, r"refused: it keeps its data in another file \(HDF5 external storage\)"),
    "virtual dataset": (_virtual, r"refused: it is a virtual dataset, which maps data from other files"),
    "external link": (_external_link, r"refused: .* is an external link \(to .*secret.h5'\)"),
    "soft link": (_soft_link, r"refused: .* is a soft link \(to '/stash'\)"),
}


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("mmap", [True, False])
def test_hdf5_never_reads_another_file(loader, tmp_path, secret, container, attack, mmap):
    make, pattern = ATTACKS[attack]
    path = CONTAINERS[container](tmp_path, make(secret))
    refused(loader, path, pattern, options={"mmap": mmap})


@pytest.mark.parametrize("trusted", [False, True])
def test_hdf5_refusals_hold_when_trusted(tmp_path, secret, trusted):
    # trusted=True only moves HDF5 into this process; what it may read stays the same.
    path = _generic_with(tmp_path, _external_storage(secret))
    with pytest.raises(WeightError, match=r"w.h5: dataset 'w': refused: it keeps its data in another file"):
        W.load(path, trusted=trusted)


def test_hdf5_logical_size_is_checked_before_reading(loader, tmp_path):
    with h5py.File(tmp_path / "sparse.h5", "w") as f:  # a 4 TB dataset whose chunks were never written
        f.create_dataset("big", shape=(10**6, 10**6), dtype="f4", chunks=(100, 100))
    refused(loader, tmp_path / "sparse.h5", r"dataset 'big': declares 4000000000000 bytes .* more than it can hold")
    with h5py.File(tmp_path / "bomb.h5", "w") as f:  # 400 MB of zeros in ~400 KB of gzip
        f.create_dataset("z", shape=(10_000, 10_000), dtype="f4", chunks=(1000, 1000), compression="gzip", fillvalue=0)
        f["z"][:1000, :1000] = 0
    refused(loader, tmp_path / "bomb.h5", r"dataset 'z': declares 400000000 bytes .* compressed")


def test_hdf5_contiguous_data_outside_the_file_is_refused(loader, tmp_path):
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f["a"] = np.arange(1000, dtype=np.float32)
        offset = f["a"].id.get_offset()
    (tmp_path / "cut.h5").write_bytes((tmp_path / "w.h5").read_bytes()[: offset + 100])
    refused(
        loader, tmp_path / "cut.h5", r"cut.h5: (dataset 'a': its 4000 bytes at offset \d+ do not lie inside|cannot)"
    )


def test_hdf5_attribute_text_is_capped(loader):
    # tf_keras keeps the model config (JSON) and the weight names in attributes: their text counts against
    # limits.max_json_bytes, raisable by the caller.
    path = FIX / "tfkeras_convnet.h5"
    refused(loader, path, r"tfkeras_convnet.h5: refused: its attributes hold more text than limits.max_json_bytes",
            limits={"max_json_bytes": 1000})  # fmt: skip
    assert "ok" in loader.load(path)


def test_hdf5_chunked_and_compact_data_decode_in_the_worker(tmp_path, rng):
    a = rng.standard_normal((50, 7)).astype(">f8")  # big-endian on purpose: the store hands out native order
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.create_dataset("gz", data=a, chunks=(8, 7), compression="gzip", shuffle=True)
        f.create_dataset("small", data=np.arange(5, dtype=np.int16), chunks=(2,))
    for trusted in (False, True):
        w = W.load(tmp_path / "w.h5", trusted=trusted)
        np.testing.assert_array_equal(w["gz"], a.astype(np.float64))
        np.testing.assert_array_equal(w["small"], np.arange(5, dtype=np.int16))
        assert w["gz"].dtype == np.dtype("=f8")
        w.close()


def test_hdf5_non_utf8_names_are_refused(loader, tmp_path):
    with h5py.File(tmp_path / "n.h5", "w") as f:
        f[b"w\xff\xfe"] = np.ones(2)
    refused(loader, tmp_path / "n.h5", r"n.h5: refused: object name b'w\\xff\\xfe' is not UTF-8")
    with h5py.File(tmp_path / "a.h5", "w") as f:  # group attributes are read (Keras keeps weight names there)
        f["g/w"] = np.ones(2)
        f["g"].attrs[b"x\xff"] = 1
    refused(loader, tmp_path / "a.h5", r"a.h5: refused: attribute name on 'g' b'x\\xff' is not UTF-8")
