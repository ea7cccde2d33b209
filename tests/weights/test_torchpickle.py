"""torch checkpoints that the pickle walk (trtdsl/weights/torchpickle.py) and the storage checks before
torch.load must refuse: each bypassed an earlier version of them (two adversarial reviews, session 9)."""

from __future__ import annotations

import collections
import zipfile

import numpy as np
import pytest
import torch

from trtdsl import weights as W

from ._crafted import op_global, op_str, refused, rezip


# ------------------------------------------------- what the pickle walk must not let through (review, session 9)
class _Reduce:
    """An object torch.save pickles as ``fn(*args)``: how a hostile file's calls are written here."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def test_a_persistent_id_that_is_no_storage_name_is_refused(loader, tmp_path):
    # torch decodes a pid's first item as ASCII, so b'storage' made by _codecs.encode (an allowed call) names a
    # storage too; the walk stopped there and handed the rest, a bytearray(2**31), to torch unchecked.
    import io
    import zipfile

    buf = io.BytesIO()
    torch.save({"a": torch.ones(1), "b": _Reduce(bytearray, 1 << 31)}, buf)
    src, path = zipfile.ZipFile(io.BytesIO(buf.getvalue())), tmp_path / "pid.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith("data.pkl"):
                name = b"X\x07\x00\x00\x00storage"
                assert data.count(name) == 1
                data = data.replace(name, b"c_codecs\nencode\n" + name + b"X\x06\x00\x00\x00latin1\x86R")
            out.writestr(info.filename, data)
    refused(loader, path, r"pid\.pt: refused: .*data\.pkl has a persistent id that is not a storage's")


@pytest.mark.parametrize("fn", ["OrderedDict", "Counter", "Size", "bytearray", "set"])
def test_a_container_built_from_a_tensor_is_refused(loader, tmp_path, fn):
    # set(t) and the like iterate a tensor, and a stride-0 tensor over one byte has as many elements as the file
    # says: 1.9 KB took 100 s and 2.6 GB (OrderedDict of 2**20 pairs) before this.
    import collections

    make = {"OrderedDict": collections.OrderedDict, "Counter": collections.Counter, "Size": torch.Size,
            "bytearray": bytearray, "set": set}[fn]  # fmt: skip
    base = torch.zeros(1, dtype=torch.uint8)
    arg = base.reshape(1, 1).expand(1 << 10, 2) if fn == "OrderedDict" else base.expand(1 << 10)
    path = tmp_path / f"{fn}.pt"
    torch.save({"w": torch.ones(1), "x": _Reduce(make, arg)}, path)
    refused(
        loader,
        path,
        rf"REDUCE of '[\w.]*{fn}' for key 'x' on a tensor or storage, which it would iterate element by element",
    )


def test_a_legacy_storage_the_file_does_not_list_is_refused(loader, tmp_path):
    # The legacy format fills only the storages its last pickle lists: with an empty list, torch.ones(n) came
    # out as the bytes of an array freed just before.
    import io
    import pickle
    import pickletools

    buf = io.BytesIO()
    torch.save({"w": torch.ones(1 << 12)}, buf, _use_new_zipfile_serialization=False)
    data, f, ends = buf.getvalue(), io.BytesIO(buf.getvalue()), []
    for _ in range(5):
        for _op in pickletools.genops(f):
            pass
        ends.append(f.tell())
    path = tmp_path / "unlisted.pt"
    path.write_bytes(data[: ends[3]] + pickle.dumps([], protocol=2))
    refused(
        loader, path, r"unlisted\.pt: refused: the tensors use storage '\d+', which the file's storage list does not"
    )
    path.write_bytes(data)
    np.testing.assert_array_equal(W.load(path)["w"], np.ones(1 << 12, np.float32))  # torch.save's own file loads


# ------------------------------------------------- the second adversarial review (session 9)
def test_a_storage_or_a_nested_tensor_given_to_an_allowed_call_is_refused(loader, tmp_path):
    # set(storage) iterated 10**4 bytes in 48 s; OrderedDict((t,)) made one Tensor per element of a stride-0 t.
    cases = {
        "storage": _Reduce(set, torch.ones(4).untyped_storage()),
        "nested": _Reduce(collections.OrderedDict, (torch.zeros(1).expand(1 << 10),)),
        "in a list": _Reduce(collections.OrderedDict, [torch.zeros(1).expand(1 << 10)]),
    }
    for name, value in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.pt"
        torch.save({"w": torch.ones(1), "x": value}, path)
        refused(loader, path, r"for key 'x' on a tensor or storage, which it would iterate element by element")


def test_a_compressed_storage_member_is_refused(loader, saved, tmp_path):
    # torch maps a storage from its member's offset: a deflated one came out as its compressed bytes.
    path = rezip(saved / "zip.pt", tmp_path / "deflated.pt", compress=zipfile.ZIP_DEFLATED)
    refused(loader, path, r"deflated\.pt: refused: storage member 'zip/data/0' is compressed")


def test_a_legacy_storage_list_that_is_not_a_list_of_keys_is_refused(loader, tmp_path):
    # An OrderedDict() with a BUILD of its keys hid them from torch while the walk counted them as listed.
    import io
    import pickletools

    buf = io.BytesIO()
    torch.save({"w": torch.ones(8)}, buf, _use_new_zipfile_serialization=False)
    data, f, ends = buf.getvalue(), io.BytesIO(buf.getvalue()), []
    for _ in range(5):
        for _op in pickletools.genops(f):
            pass
        ends.append(f.tell())
    keys = op_global("collections", "OrderedDict") + b")R}" + op_str("0") + b"Nsb."
    path = tmp_path / "odkeys.pt"
    path.write_bytes(data[: ends[3]] + b"\x80\x02" + keys + data[ends[4] :])
    refused(loader, path, r"odkeys\.pt: refused: its storage list \(pickle 5 of 5\) holds GLOBAL")
