"""weights/zipcheck: every zip-based format (.npz, .keras, torch) refuses path traversal, duplicate and
overlapping members, names that are not UTF-8 and members that inflate past their limits, and catches a
flipped byte by its CRC-32 on the first read.

Crafted attacks load in the long-lived load server (conftest.py), so a crash or
a hang fails the test instead of killing the run.
"""

from __future__ import annotations

import io
import re
import shutil
import struct
import zipfile

import h5py
import numpy as np
import pytest
import torch

from trtdsl import WeightError
from trtdsl import weights as W

from ._crafted import FIX, refused, rezip


@pytest.mark.parametrize("member", ["../evil", "a/../../evil", "/etc/evil", "C:/evil", "..\\evil"])
def test_keras_zip_with_path_traversal_member_is_refused(tmp_path, member):
    dst = tmp_path / "sub" / "model.keras"
    dst.parent.mkdir()
    rezip(FIX / "keras3_convnet.keras", dst, extra=[(member, b"payload")])
    with pytest.raises(
        WeightError, match=r"model.keras: refused: zip member .* points outside the archive \(path traversal\)"
    ):
        W.load(dst)
    assert not (tmp_path / "evil").exists()


def _bomb_bytes(n: int) -> bytes:
    return b'{"class_name": "Functional", "pad": "' + b" " * n + b'"}'


def test_keras_config_bomb_is_refused_before_inflating(loader, tmp_path):
    path = rezip(FIX / "keras3_convnet.keras", tmp_path / "bomb.keras",
                  replace={"config.json": _bomb_bytes(80 << 20)}, compress=zipfile.ZIP_DEFLATED)  # fmt: skip
    assert path.stat().st_size < 1 << 20
    refused(loader, path, r"bomb.keras: refused: zip member 'config.json' would inflate from \d+ to 83886\d+ bytes")
    # past the ratio, the JSON cap still holds
    refused(loader, path, r"config 'config.json' is 83886\d+ bytes, more than the limit of 67108864",
            limits={"max_inflate_ratio": 1e6})  # fmt: skip
    # the limit is the user's to raise
    small = rezip(FIX / "keras3_convnet.keras", tmp_path / "big.keras", replace={"config.json": _bomb_bytes(2 << 20)})
    refused(loader, small, r"more than the limit of 1048576", limits={"max_json_bytes": 1 << 20})
    assert "ok" in loader.load(small)


def test_zip_members_are_capped_in_ratio(loader, tmp_path):
    np.savez_compressed(tmp_path / "z.npz", z=np.zeros(100 << 20, np.uint8))  # 100 MB in ~100 KB
    refused(loader, tmp_path / "z.npz", r"z.npz: refused: zip member 'z.npy' would inflate from \d+ to 104857\d+ bytes")
    assert "ok" in loader.load(tmp_path / "z.npz", limits={"max_inflate_ratio": 2000})
    inner = io.BytesIO()
    with h5py.File(inner, "w") as f:
        f["layers/x"] = np.zeros(100 << 20, np.uint8)
    path = rezip(FIX / "keras3_convnet.keras", tmp_path / "w.keras", replace={"model.weights.h5": inner.getvalue()},
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
        path = rezip(src, tmp_path / f"dup.{kind}", extra=[(dup, payload)])
    refused(loader, path, rf"dup.{kind}: refused: the zip holds member '{re.escape(dup)}' twice", options={})


def test_non_utf8_zip_member_names_are_refused(loader, tmp_path):
    np.savez(tmp_path / "w.npz", X=np.ones(2))
    raw = (tmp_path / "w.npz").read_bytes().replace(b"X.npy", b"\xff.npy")  # same length; no UTF-8 flag
    (tmp_path / "n.npz").write_bytes(raw)
    refused(loader, tmp_path / "n.npz", r"n.npz: zip member name b'\\xff.npy' is not UTF-8", options={})


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


# ------------------------------------------------- torch checkpoints: the archive is checked before torch reads it
@pytest.mark.parametrize("member", ["../evil", "/etc/evil", "ckpt/data/../../../evil", "C:/evil"])
def test_torch_zip_with_path_traversal_member_is_refused(loader, tmp_path, member):
    torch.save({"w": torch.ones(3)}, tmp_path / "ckpt.pt")
    dst = rezip(tmp_path / "ckpt.pt", tmp_path / "evil.pt", extra=[(member, b"payload")])
    refused(loader, dst, r"evil.pt: refused: zip member .* points outside the archive \(path traversal\)")


def test_torch_storage_that_would_inflate_past_limits_is_refused(loader, tmp_path):
    torch.save({"w": torch.zeros(1 << 20)}, tmp_path / "ckpt.pt")  # 4 MB of zeros: ~4 KB deflated
    dst = rezip(tmp_path / "ckpt.pt", tmp_path / "z.pt", compress=zipfile.ZIP_DEFLATED)
    refused(loader, dst, r"z.pt: refused: zip member 'ckpt/data/0' would inflate from \d+ to 4194304 bytes",
            limits={"inflate_floor": 1 << 20})  # fmt: skip


@pytest.mark.parametrize("lie", ["size", "compressed size", "both"])
def test_torch_storage_whose_directory_entry_lies_about_its_size_is_refused(loader, tmp_path, lie):
    torch.save({"w": torch.ones(3)}, tmp_path / "ckpt.pt")
    data = bytearray((tmp_path / "ckpt.pt").read_bytes())
    with zipfile.ZipFile(tmp_path / "ckpt.pt") as z:
        names = z.namelist()
    at = -1
    for _ in range(names.index("ckpt/data/0") + 1):  # its central directory entry
        at = data.index(b"PK\x01\x02", at + 1)
    fields = {"compressed size": [20], "size": [24], "both": [20, 24]}[lie]
    for field in fields:
        data[at + field : at + field + 4] = struct.pack("<I", 0xFFFFFFF0)  # ~4 GB, in a file of 1.5 KB
    (tmp_path / "lie.pt").write_bytes(bytes(data))
    refused(
        loader, tmp_path / "lie.pt", r"lie.pt: .*zip member 'ckpt/data/0' (declares two different sizes|is truncated)"
    )
