"""Each format, written by its own tool, loads to arrays equal to what that tool held."""

from __future__ import annotations

import struct
import zipfile

import h5py
import numpy as np
import pytest
import torch

from trtdsl import WeightError
from trtdsl import weights as W

from ._samples import assert_same, mapped, sample


# ---------------------------------------------------------------------- npz
@pytest.mark.parametrize("mmap", [True, False])
def test_npz_from_numpy_savez(tmp_path, rng, mmap):
    data = sample(rng)
    np.savez(tmp_path / "w.npz", **data)
    w = W.load(tmp_path / "w.npz", mmap=mmap)
    assert w.format == "npz"
    assert_same(w, data)
    assert mapped(w["stem.conv1.weight"]) is mmap


def test_npz_compressed_fortran_and_big_endian(tmp_path, rng):
    data = {
        "f": np.asfortranarray(rng.standard_normal((4, 6)).astype(np.float32)),
        "be": rng.standard_normal(5).astype(">f4"),
    }
    for save in (np.savez, np.savez_compressed):
        save(tmp_path / "w.npz", **data)
        w = W.load(tmp_path / "w.npz")
        np.testing.assert_array_equal(w["f"], data["f"])
        np.testing.assert_array_equal(w["be"], data["be"])
        assert w["be"].dtype == np.float32 and w["be"].dtype.isnative  # TensorRT reads native floats


def test_npz_stored_memmap_shares_no_copy_with_network_keep(tmp_path, rng, trt):
    from trtdsl import Network

    np.savez(tmp_path / "w.npz", k=rng.standard_normal((16, 8)).astype(np.float32))
    arr = W.load(tmp_path / "w.npz").take("k", shape=(16, 8), dtype=np.float32)
    net = Network("keep")
    net.keep(arr, "fc.kernel")
    assert mapped(arr) and np.shares_memory(net.weights["fc.kernel"], arr)


def test_npy(tmp_path, rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    np.save(tmp_path / "emb.npy", a)
    w = W.load(tmp_path / "emb.npy")
    assert list(w) == ["emb"] and mapped(w["emb"])
    np.testing.assert_array_equal(w["emb"], a)


# ---------------------------------------------------------------------- h5
def test_generic_hdf5_every_dataset_by_path(tmp_path, rng):
    data = sample(rng)
    with h5py.File(tmp_path / "w.h5", "w") as f:
        for k, v in data.items():
            f.create_dataset(k.replace(".", "/"), data=v)
        f.create_dataset("chunked/deflate", data=data["stem.conv1.weight"], chunks=(2, 3, 3, 3), compression="gzip")
        f.create_dataset("big_endian", data=data["stem.bn1.running_var"].astype(">f4"))
        f.create_dataset("note", data="not a weight")
    w = W.load(tmp_path / "w.h5")
    assert w.format == "h5"
    expected = {k.replace(".", "/"): v for k, v in data.items()}
    expected["chunked/deflate"] = data["stem.conv1.weight"]
    expected["big_endian"] = data["stem.bn1.running_var"]
    assert_same(w, expected)
    assert mapped(w["stem/conv1/weight"]) and not mapped(w["chunked/deflate"])
    assert set(w.scope("layer1/0")) == {"fc/weight", "fc/bias"}


# -------------------------------------------------------------------- torch
def test_torch_state_dict(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    w = W.load(tmp_path / "m.pt")
    assert w.format == "torch"
    assert_same(w, {k: v.numpy() for k, v in model.state_dict().items()})
    assert "1.num_batches_tracked" in w


def test_torch_nested_checkpoint_bfloat16_and_legacy_format(tmp_path):
    ckpt = {"model": {"fc.weight": torch.randn(3, 2), "emb": torch.randn(4).to(torch.bfloat16)}, "epoch": 3}
    for legacy in (False, True):
        torch.save(ckpt, tmp_path / "c.pth", _use_new_zipfile_serialization=not legacy)
        w = W.load(tmp_path / "c.pth")
        assert sorted(w) == ["model.emb", "model.fc.weight"]
        np.testing.assert_array_equal(w["model.fc.weight"], ckpt["model"]["fc.weight"].numpy())
        np.testing.assert_array_equal(w["model.emb"], ckpt["model"]["emb"].float().numpy())
        assert w.rename(strip_prefix="model.")["fc.weight"].shape == (3, 2)


# ---------------------------------------------------------------------- wts
def gen_wts_py(path, state_dict):
    """tensorrtx's gen_wts.py, as it writes: count, then 'name n' and ' ' + struct.pack('>f').hex() per value."""
    with open(path, "w") as f:
        f.write(f"{len(state_dict.keys())}\n")
        for k, v in state_dict.items():
            vr = v.reshape(-1)
            f.write(f"{k} {len(vr)} ")
            for vv in vr:
                f.write(" ")
                f.write(struct.pack(">f", float(vv)).hex())
            f.write("\n")


def test_wts_as_tensorrtx_writes_it(tmp_path, rng):
    data = {k: v.astype(np.float32) for k, v in sample(rng).items() if k != "empty"}
    gen_wts_py(tmp_path / "m.wts", data)
    w = W.load(tmp_path / "m.wts")
    assert w.format == "wts"
    for k, v in data.items():
        np.testing.assert_array_equal(w[k], v.ravel())
    kernel = w.take("stem.conv1.weight", shape=(8, 3, 3, 3))  # flat arrays take the asked shape
    np.testing.assert_array_equal(kernel, data["stem.conv1.weight"])


def test_wts_writer_round_trip_is_byte_identical_to_gen_wts(tmp_path, rng):
    data = {k: v.astype(np.float32) for k, v in sample(rng).items()}
    gen_wts_py(tmp_path / "ref.wts", data)
    W.write_wts(tmp_path / "ours.wts", data)
    assert (tmp_path / "ours.wts").read_bytes() == (tmp_path / "ref.wts").read_bytes()
    for k, v in data.items():
        np.testing.assert_array_equal(W.load(tmp_path / "ours.wts")[k], v.ravel())


def test_wts_short_hex_words_as_cpp_reads_them(tmp_path):
    (tmp_path / "a.wts").write_text("1\nw 3 3f800000 0 c0000000\n")
    np.testing.assert_array_equal(W.load(tmp_path / "a.wts")["w"], [1.0, 0.0, -2.0])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("2\nw 1 3f800000\n", r"the first line says 2 weights but the file holds 1"),
        ("1\nw 2 3f800000\n", r"line 2: weight 'w' declares 2 values but has 1"),
        ("1\nw 1 zz800000\n", r"line 2: weight 'w' has a value that is not hex"),
        ("x\nw 1 3f800000\n", r"first line must be the number of weights"),
    ],
)
def test_wts_errors(tmp_path, text, match):
    (tmp_path / "bad.wts").write_text(text)
    with pytest.raises(WeightError, match=r"bad.wts: " + match):
        W.load(tmp_path / "bad.wts")


# ------------------------------------------------------------ to TensorRT
def write_each(tmp_path, data) -> list:
    from safetensors.numpy import save_file

    np.savez(tmp_path / "w.npz", **data)
    save_file(data, str(tmp_path / "w.safetensors"))
    with h5py.File(tmp_path / "w.h5", "w") as f:
        for k, v in data.items():
            f[k] = v
    torch.save({k: torch.from_numpy(v) for k, v in data.items()}, tmp_path / "w.pt")
    W.write_wts(tmp_path / "w.wts", data)
    np.save(tmp_path / "w.npy", data["a"])
    return sorted(tmp_path.iterdir())


def test_every_format_hands_its_arrays_to_trt_weights_without_a_copy(tmp_path, rng, trt):
    from trtdsl import Network

    data = {"a": rng.standard_normal((6, 5)).astype(np.float32), "b": rng.standard_normal(3).astype(np.float32)}
    for path in write_each(tmp_path, data):
        w = W.load(path)
        net = Network("n")
        for name in w:
            arr = w.take(name)
            trt.Weights(arr)  # h5py/explicit-endian dtype instances are refused by TensorRT
            net.keep(arr, name)
            assert np.shares_memory(net.weights[name], arr), (path.name, name)
            np.testing.assert_array_equal(arr.ravel(), data.get(name, data["a"]).ravel())  # .npy: named 'w'


# ---------------------------------------------------------------- detection
def test_format_comes_from_content_not_suffix(tmp_path, rng):
    data = sample(rng)
    with open(tmp_path / "weights.bin", "wb") as f:  # np.savez would append .npz to a name
        np.savez(f, **data)
    assert W.detect(tmp_path / "weights.bin") == "npz"
    torch.save({"a": torch.ones(2)}, tmp_path / "model.npz")
    assert W.load(tmp_path / "model.npz").format == "torch"


def test_foreign_empty_missing_and_directory(tmp_path):
    (tmp_path / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(
        WeightError,
        match=r"img.png: not a weight file trtdsl can read: it starts with b'\\x89PNG\\r\\n\\x1a\\n'\.\.\., expected one of zip",
    ):
        W.load(tmp_path / "img.png")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(WeightError, match=r"empty.npz: cannot read it as npz"):
        W.load(tmp_path / "empty.npz")
    with pytest.raises(WeightError, match=r"nope.h5: no such weight file"):
        W.load(tmp_path / "nope.h5")
    with pytest.raises(WeightError, match=r"is not a file"):
        W.load(tmp_path)


def test_format_override_and_unknown_options(tmp_path, rng):
    np.savez(tmp_path / "w.npz", a=np.ones(2))
    with pytest.raises(WeightError, match=r"unknown weight format 'onnx'"):
        W.load(tmp_path / "w.npz", format="onnx")
    with pytest.raises(
        WeightError,
        match=r"w.npz: cannot read it as HDF5: OSError: Unable to synchronously open file \(file signature not found\)",
    ):
        W.load(tmp_path / "w.npz", format="h5")
    with pytest.raises(TypeError, match=r"format 'npz' takes options \['mmap'\], not \['lazy'\]"):
        W.load(tmp_path / "w.npz", lazy=True)


def test_npz_truncated_member_data(tmp_path):
    np.savez(tmp_path / "w.npz", a=np.ones(1000, np.float32))
    raw = bytearray((tmp_path / "w.npz").read_bytes())
    # Shrink the data but keep the zip directory valid: rewrite with a lying .npy header.
    with zipfile.ZipFile(tmp_path / "w.npz") as z:
        npy = bytearray(z.read("a.npy"))
    npy = npy.replace(b"(1000,)", b"(9000,)")
    with zipfile.ZipFile(tmp_path / "lie.npz", "w") as z:
        z.writestr("a.npy", bytes(npy))
    with pytest.raises(WeightError, match=r"lie.npz: member 'a.npy': truncated"):
        W.load(tmp_path / "lie.npz")
    assert raw  # the original stays loadable
    np.testing.assert_array_equal(W.load(tmp_path / "w.npz")["a"], np.ones(1000))
