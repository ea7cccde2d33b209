"""Weight files are data: nothing in them is unpickled, executed or extracted, and a crafted file can
only give arrays or a TrtdslError, never bytes of another file, a crash, a hang or unbounded work.

Crafted attacks load in the long-lived load server (conftest.py), so a crash or
a hang fails the test instead of killing the run.
"""

from __future__ import annotations

import io
import pathlib
import re
import shutil
import struct
import time
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from trtdsl import WeightError
from trtdsl import weights as W
from trtdsl.weights import h5worker

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "weights"
SECRET = b"TRTDSL-SECRET-MARKER-51ab" * 8  # 200 bytes of another file that no load may return


class Evil:
    """Unpickling this creates a file: proof that code from the weight file ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def refused(loader, path: Path, pattern: str, **request) -> str:
    """Load ``path`` in the server; it must be a TrtdslError whose message matches ``pattern``."""
    result = loader.load(path, marker=SECRET.hex(), **request)
    assert "error" in result, f"{path.name}: expected a TrtdslError matching {pattern!r}, got {result}"
    assert re.search(pattern, result["message"]), result["message"]
    return result["message"]


@pytest.fixture
def secret(tmp_path) -> dict[str, Path]:
    (tmp_path / "secret.bin").write_bytes(SECRET)
    with h5py.File(tmp_path / "secret.h5", "w") as f:
        f["data"] = np.frombuffer(SECRET, np.uint8).astype(np.float32)
    return {"bin": tmp_path / "secret.bin", "h5": tmp_path / "secret.h5"}


# ------------------------------------------------------------------ never unpickled, never extracted
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


def _rezip(src: Path, dst: Path, *, replace: dict[str, bytes] | None = None, extra=(), compress=zipfile.ZIP_STORED):
    """Copy a zip member by member, replacing some and appending ``extra`` (name, bytes) pairs."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compress) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, replace.get(item.filename, zin.read(item)))
        for name, data in extra:
            zout.writestr(name, data)
    return dst


@pytest.mark.parametrize("member", ["../evil", "a/../../evil", "/etc/evil", "C:/evil", "..\\evil"])
def test_keras_zip_with_path_traversal_member_is_refused(tmp_path, member):
    dst = tmp_path / "sub" / "model.keras"
    dst.parent.mkdir()
    _rezip(FIX / "keras3_convnet.keras", dst, extra=[(member, b"payload")])
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


# ------------------------------------------------------------------ HDF5 reads only the opened file
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
    return _rezip(
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


# ------------------------------------------------------------------ HDF5 cannot take the process down
def test_hdf5_worker_failures_become_weight_errors_naming_the_file():
    path = FIX / "tfkeras_seqnet.h5"
    # A worker whose address space is too small to import NumPy dies (Python's SIGSEGV or exit status 1).
    with pytest.raises(
        WeightError,
        match=r"tfkeras_seqnet.h5: HDF5 crashed reading it \((killed by SIG[A-Z]+|exit status 1)\): the file is",
    ):
        W.load(path, limits=W.Limits(h5_worker_memory=64 << 20))
    # A worker that does not answer in time is killed.
    with pytest.raises(WeightError, match=r"tfkeras_seqnet.h5: HDF5 did not answer within 0 s \(killed it\)"):
        W.load(path, limits=W.Limits(h5_timeout=1e-4))
    assert len(W.load(path)) > 0  # and the next load gets a fresh worker


# One-byte changes that send HDF5 2.0 into an endless loop, found by fuzzing: the first two by a random
# byte hunt over the Keras fixtures read in-process (each hung until killed after 20 s), the third by
# test_fuzz.py's deterministic bit flips (a worker timeout in the -m fuzz run).
HANGS = [("tfkeras_convnet.h5", 7664, 166), ("tfkeras_seqnet.h5", 8688, 147), ("keras3_seqnet.h5", 12681, 1)]


@pytest.mark.parametrize(("seed", "pos", "value"), HANGS)
def test_hdf5_that_hangs_the_c_library_becomes_a_weight_error(tmp_path, seed, pos, value):
    data = bytearray((FIX / seed).read_bytes())
    data[pos] = value
    path = tmp_path / seed
    path.write_bytes(data)
    start = time.perf_counter()
    with pytest.raises(
        WeightError, match=rf"{seed}: HDF5 did not answer within 3 s \(killed it\): the file is corrupt"
    ):
        W.load(path, limits=W.Limits(h5_timeout=3))
    assert time.perf_counter() - start < 15
    assert len(W.load(FIX / seed)) > 0


def test_a_killed_worker_is_replaced(tmp_path):
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.create_dataset("c", data=np.arange(10.0), chunks=(5,))
    w = W.load(tmp_path / "w.h5")
    h5worker.CLIENT.proc.kill()  # e.g. the OOM killer between two reads
    h5worker.CLIENT.proc.wait()
    np.testing.assert_array_equal(w["c"], np.arange(10.0))


@pytest.mark.parametrize("trusted", [False, True])
def test_threads_share_the_worker(tmp_path, trusted):
    from concurrent.futures import ThreadPoolExecutor

    want = {}
    for i in range(4):
        want[i] = np.arange(1000.0) * i
        with h5py.File(tmp_path / f"w{i}.h5", "w") as f:
            f.create_dataset("c", data=want[i], chunks=(100,), compression="gzip")

    def read(i: int) -> np.ndarray:
        with W.load(tmp_path / f"w{i % 4}.h5", trusted=trusted) as w:
            return np.array(w["c"])

    with ThreadPoolExecutor(4) as pool:
        for i, got in enumerate(pool.map(read, range(16))):
            np.testing.assert_array_equal(got, want[i % 4])


def test_trusted_reads_hdf5_in_this_process(tmp_path):
    h5worker.CLIENT.kill()
    w = W.load(FIX / "tfkeras_convnet.h5", trusted=True)
    assert h5worker.CLIENT.proc is None  # no worker was started
    u = W.load(FIX / "tfkeras_convnet.h5")
    assert list(w) == list(u)
    for name in w:
        np.testing.assert_array_equal(w[name], u[name])


# ------------------------------------------------------------------ bounded work
def test_torch_shared_reference_bomb_is_refused_quickly(loader, tmp_path):
    x: list = [torch.ones(1)]
    for _ in range(40):  # 2**40 paths in a 2 KB file
        x = [x, x]
    torch.save(x, tmp_path / "bomb.pt")
    assert (tmp_path / "bomb.pt").stat().st_size < 4000
    start = time.perf_counter()
    refused(
        loader, tmp_path / "bomb.pt", r"bomb.pt: refused: the checkpoint holds more than limits.max_entries=1000000"
    )
    assert time.perf_counter() - start < 30


def test_torch_cycles_depth_and_entry_limit(loader, tmp_path):
    x: list = [torch.ones(1)]
    x.append(x)
    torch.save(x, tmp_path / "cycle.pt")
    refused(loader, tmp_path / "cycle.pt", r"cycle.pt: refused: container '1' contains itself")
    deep: list = [torch.ones(1)]
    for _ in range(150):
        deep = [deep]
    torch.save(deep, tmp_path / "deep.pt")
    refused(loader, tmp_path / "deep.pt", r"deep.pt: refused: containers nest deeper than limits.max_depth=100")
    torch.save({str(i): torch.ones(1) for i in range(50)}, tmp_path / "many.pt")
    refused(loader, tmp_path / "many.pt", r"more than limits.max_entries=20", limits={"max_entries": 20})


def test_torch_names_that_collide_after_flattening_are_an_error(tmp_path):
    torch.save({"a.b": torch.ones(1), "a": {"b": torch.zeros(2)}}, tmp_path / "c.pt")
    with pytest.raises(WeightError, match=r"c.pt: two tensors flatten to the name 'a.b'"):
        W.load(tmp_path / "c.pt")


def test_torch_shared_state_dict_keeps_both_names(tmp_path):
    sd = {"w": torch.arange(3.0)}
    torch.save({"model": sd, "ema": sd}, tmp_path / "s.pt")  # one dict pickled once, referenced twice
    w = W.load(tmp_path / "s.pt")
    assert sorted(w) == ["ema.w", "model.w"]
    np.testing.assert_array_equal(w["ema.w"], [0, 1, 2])


def _bomb_bytes(n: int) -> bytes:
    return b'{"class_name": "Functional", "pad": "' + b" " * n + b'"}'


def test_keras_config_bomb_is_refused_before_inflating(loader, tmp_path):
    path = _rezip(FIX / "keras3_convnet.keras", tmp_path / "bomb.keras",
                  replace={"config.json": _bomb_bytes(80 << 20)}, compress=zipfile.ZIP_DEFLATED)  # fmt: skip
    assert path.stat().st_size < 1 << 20
    refused(loader, path, r"bomb.keras: refused: zip member 'config.json' would inflate from \d+ to 83886\d+ bytes")
    # past the ratio, the JSON cap still holds
    refused(loader, path, r"config 'config.json' is 83886\d+ bytes, more than the limit of 67108864",
            limits={"max_inflate_ratio": 1e6})  # fmt: skip
    # the limit is the user's to raise
    small = _rezip(FIX / "keras3_convnet.keras", tmp_path / "big.keras", replace={"config.json": _bomb_bytes(2 << 20)})
    refused(loader, small, r"more than the limit of 1048576", limits={"max_json_bytes": 1 << 20})
    assert "ok" in loader.load(small)


def test_zip_members_are_capped_in_ratio(loader, tmp_path):
    np.savez_compressed(tmp_path / "z.npz", z=np.zeros(100 << 20, np.uint8))  # 100 MB in ~100 KB
    refused(loader, tmp_path / "z.npz", r"z.npz: refused: zip member 'z.npy' would inflate from \d+ to 104857\d+ bytes")
    assert "ok" in loader.load(tmp_path / "z.npz", limits={"max_inflate_ratio": 2000})
    inner = io.BytesIO()
    with h5py.File(inner, "w") as f:
        f["layers/x"] = np.zeros(100 << 20, np.uint8)
    path = _rezip(FIX / "keras3_convnet.keras", tmp_path / "w.keras", replace={"model.weights.h5": inner.getvalue()},
                  compress=zipfile.ZIP_DEFLATED)  # fmt: skip
    refused(loader, path, r"refused: zip member 'model.weights.h5' would inflate")


def _raw_zip(members: list[tuple[bytes, bytes]], *, share_first: bool = False) -> bytes:
    """A stored zip written by hand: (raw name, data) pairs; ``share_first`` points every entry at member 0."""
    import zlib

    local, central, offsets = b"", b"", []
    for name, data in members:
        offsets.append(len(local))
        crc = zlib.crc32(data)
        local += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0)
        local += name + data
    for i, (name, data) in enumerate(members):
        at = offsets[0] if share_first else offsets[i]
        src_name, src_data = members[0] if share_first else (name, data)
        crc = zlib.crc32(src_data)
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, len(src_data), len(src_data),
            len(src_name), 0, 0, 0, 0, 0, at,
        ) + src_name  # fmt: skip
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(local), 0)
    return local + central + end


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_zip_overlapping_members_are_refused(loader, tmp_path):
    data = _raw_zip([(b"a.npy", _npy(np.ones(100))), (b"b.npy", b"")], share_first=True)
    (tmp_path / "o.npz").write_bytes(data)
    refused(loader, tmp_path / "o.npz", r"o.npz: refused: (the zip holds member 'a.npy' twice|zip members .* overlap)")


@pytest.mark.parametrize("kind", ["npz", "keras", "torch"])
def test_duplicate_zip_members_are_refused(loader, tmp_path, kind):
    if kind == "npz":
        np.savez(tmp_path / "src.npz", a=np.ones(3))
        src, dup = tmp_path / "src.npz", "a.npy"
    elif kind == "keras":
        src, dup = FIX / "keras3_convnet.keras", "model.weights.h5"
    else:
        torch.save({"w": torch.ones(3)}, tmp_path / "src.pt")
        src, dup = tmp_path / "src.pt", "src/data.pkl"
    with zipfile.ZipFile(src) as z:
        payload = z.read(dup)
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = _rezip(src, tmp_path / f"dup.{kind}", extra=[(dup, payload)])
    refused(loader, path, rf"dup.{kind}: refused: the zip holds member '{re.escape(dup)}' twice", options={})


def test_non_utf8_zip_member_names_are_refused(loader, tmp_path):
    np.savez(tmp_path / "w.npz", X=np.ones(2))
    raw = (tmp_path / "w.npz").read_bytes().replace(b"X.npy", b"\xff.npy")  # same length; no UTF-8 flag
    (tmp_path / "n.npz").write_bytes(raw)
    refused(loader, tmp_path / "n.npz", r"n.npz: zip member name b'\\xff.npy' is not UTF-8", options={})


def test_wts_parser_memory_is_bounded(loader, tmp_path):
    # One value per two bytes in a non-standard layout ('0 0 0 ...'): parsed in pieces, within the limit.
    n = 20_000_000
    (tmp_path / "w.wts").write_bytes(b"1\nw %d " % n + b"0 " * n + b"\n")
    result = loader.sound(tmp_path / "w.wts")
    assert result["ok"]["w"][:2] == [[n], "float32"]
    (tmp_path / "lie.wts").write_bytes(b"1\nw 999999999999 0 0\n")
    refused(loader, tmp_path / "lie.wts", r"declares 999999999999 values but its line has room for at most 2")


# ------------------------------------------------------------------ integrity
def test_npz_crc_flip_is_caught_on_first_read(tmp_path):
    np.savez(tmp_path / "w.npz", a=np.arange(1000, dtype=np.float32))
    raw = bytearray((tmp_path / "w.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "w.npz") as z:
        info = z.getinfo("a.npy")
    raw[info.header_offset + 30 + len("a.npy") + info.file_size - 3] ^= 0x10  # a data byte: np.load rejects it
    (tmp_path / "f.npz").write_bytes(raw)
    w = W.load(tmp_path / "f.npz")
    with pytest.raises(WeightError, match=r"f.npz: zip member 'a.npy' is corrupt: its CRC-32 is [0-9a-f]{8} but"):
        w["a"]
    with pytest.raises(WeightError, match=r"f.npz: .*(CRC|corrupt)"):
        W.load(tmp_path / "f.npz", mmap=False)["a"]


def test_keras_crc_flip_is_caught_on_first_read(loader, tmp_path):
    path = tmp_path / "f.keras"
    shutil.copy(FIX / "keras3_convnet.keras", path)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("model.weights.h5")
        inner = z.read(info)
    with h5py.File(io.BytesIO(inner), "r") as f:
        offset = f["layers/conv2d/vars/0"].id.get_offset()
    raw = bytearray(path.read_bytes())
    raw[info.header_offset + 30 + len(info.filename) + len(info.extra) + offset] ^= 0x01
    path.write_bytes(raw)
    refused(loader, path, r"f.keras: zip member 'model.weights.h5' is corrupt: its CRC-32 is")


def test_torch_crc_flip_is_caught_on_first_read(loader, tmp_path):
    torch.save({"w": torch.arange(64.0)}, tmp_path / "t.pt")
    raw = bytearray((tmp_path / "t.pt").read_bytes())
    with zipfile.ZipFile(tmp_path / "t.pt") as z:
        info = z.getinfo("t/data/0")
    with open(tmp_path / "t.pt", "rb") as f:
        f.seek(info.header_offset + 26)
        n, e = struct.unpack("<HH", f.read(4))
    raw[info.header_offset + 30 + n + e + 5] ^= 0x40
    (tmp_path / "t.pt").write_bytes(raw)
    refused(loader, tmp_path / "t.pt", r"t.pt: zip member 't/data/0' is corrupt: its CRC-32 is")


# ------------------------------------------------------------------ messages
def test_messages_quote_only_a_short_escaped_prefix(tmp_path):
    secret = b"API_KEY=hunter2-do-not-print\n"
    for name in ("notes.bin", "notes.wts"):
        (tmp_path / name).write_bytes(secret * 4)
        with pytest.raises(WeightError) as e:
            W.load(tmp_path / name)
        assert "hunter2" not in str(e.value) and "API_KEY=" in str(e.value)
    with pytest.raises(WeightError) as e:
        W.load("/proc/self/environ")
    env = Path("/proc/self/environ").read_bytes()
    shown = str(e.value)
    assert all(env[i : i + 12].decode(errors="replace") not in shown for i in range(8, max(len(env) - 12, 8), 12))


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


def test_exiting_with_a_trusted_keras_store_open_does_not_crash():
    # An h5py file over a zip member's file object, still open at interpreter teardown, crashed HDF5 (SIGSEGV).
    import subprocess
    import sys

    code = f"from trtdsl import weights; w = weights.load({str(FIX / 'keras3_convnet.keras')!r}, trusted=True); print(len(w))"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
