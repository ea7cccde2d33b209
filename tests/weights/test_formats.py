"""Each format, written by its own tool, loads to arrays equal to what that tool held."""

from __future__ import annotations

import json
import os
import struct
import zipfile

import h5py
import numpy as np
import pytest
import torch

from trtdsl import WeightError
from trtdsl import weights as W


def sample(rng) -> dict[str, np.ndarray]:
    return {
        "stem.conv1.weight": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "stem.bn1.running_var": rng.random(8).astype(np.float32) + 0.5,
        "layer1.0.fc.weight": rng.standard_normal((5, 7)).astype(np.float16),
        "layer1.0.fc.bias": rng.standard_normal(5).astype(np.float64),
        "steps": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 4), np.float32),
    }


def assert_same(store, expected):
    assert sorted(store) == sorted(expected)
    for k, v in expected.items():
        got = store[k]
        assert got.shape == v.shape and got.dtype == v.dtype, k
        assert store.shape(k) == v.shape and store.dtype(k) == v.dtype, k
        np.testing.assert_array_equal(got, v, err_msg=k)


def mapped(arr) -> bool:
    base = arr
    while base is not None:
        if isinstance(base, np.memmap):
            return True
        base = base.base
    return False


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


# ------------------------------------------------- sharded safetensors (Hugging Face layout)
def write_sharded(folder, data, n=3, weight_map=None, **index) -> dict:
    """Shards written by safetensors itself, named as transformers names them, and their index."""
    from safetensors.numpy import save_file

    folder.mkdir(exist_ok=True)
    names = sorted(data)
    files = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    shards = {f: {k: data[k] for k in names[i::n]} for i, f in enumerate(files)}
    for f, tensors in shards.items():
        save_file(tensors, str(folder / f))
    if weight_map is None:
        weight_map = {k: f for f, tensors in shards.items() for k in tensors}
    doc = {"metadata": {"total_size": sum(v.nbytes for v in data.values())}, "weight_map": weight_map, **index}
    (folder / "model.safetensors.index.json").write_text(json.dumps(doc))
    return shards


def test_sharded_safetensors_from_index_and_directory(tmp_path, rng):
    data = sample(rng)
    write_sharded(tmp_path / "ckpt", data)
    for path in (tmp_path / "ckpt" / "model.safetensors.index.json", tmp_path / "ckpt"):
        w = W.load(path)
        assert w.format == "safetensors_index"
        assert_same(w, data)
        assert mapped(w["stem.conv1.weight"])  # each shard memory-mapped, no copy
        assert w.scope("layer1.0").take("fc.weight", (5, 7)).dtype == np.float16
        w.close()
    assert_same(W.load(tmp_path / "ckpt", mmap=False), data)


def test_directory_with_one_safetensors_file_loads_it(tmp_path, rng):
    from safetensors.numpy import save_file

    data = sample(rng)
    save_file(data, str(tmp_path / "model.safetensors"))
    assert W.load(tmp_path).format == "safetensors"
    assert_same(W.load(tmp_path), data)
    save_file(data, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightError, match=r"directory with 2 \*\.safetensors files \(model.safetensors, other"):
        W.load(tmp_path)


def test_sharded_store_closes_every_shard(tmp_path, rng, monkeypatch):
    from trtdsl.weights import safetensors as st

    closed = []
    real = st._open

    def spy(path, mmap, limits):
        entries, close = real(path, mmap, limits)
        return entries, lambda: (closed.append(path.name), close())

    monkeypatch.setattr(st, "_open", spy)
    shards = write_sharded(tmp_path, sample(rng))
    with W.load(tmp_path) as w:
        w.take("steps")
    assert sorted(closed) == sorted(shards)


def test_hugging_face_cache_links_into_blobs_load(tmp_path, rng):
    # hub's cache: snapshots/<rev>/<file> -> ../../blobs/<sha>, the index included
    data = sample(rng)
    shards = write_sharded(tmp_path / "blobs", data, n=2)
    snap = tmp_path / "snapshots" / "abc"
    snap.mkdir(parents=True)
    for f in [*shards, "model.safetensors.index.json"]:
        (tmp_path / "blobs" / f).rename(tmp_path / "blobs" / f"sha-{f}")
        (snap / f).symlink_to(f"../../blobs/sha-{f}")
    assert_same(W.load(snap), data)


@pytest.mark.parametrize(
    "shard, match",
    [
        ("../x.safetensors", r"shard '\.\./x\.safetensors': expected a plain file name in the index's folder"),
        ("/etc/passwd", r"shard '/etc/passwd': expected a plain file name"),
        ("sub\\x.safetensors", r"expected a plain file name"),
        ("..", r"shard '\.\.': expected a plain file name"),
        ("x\0.safetensors", r"expected a plain file name"),
        ("gone.safetensors", r"shard 'gone\.safetensors': no such file in "),
    ],
)
def test_sharded_index_naming_a_path_or_a_missing_shard(tmp_path, rng, shard, match):
    data = sample(rng)
    write_sharded(tmp_path, data, weight_map={"steps": shard})
    with pytest.raises(WeightError, match=r"model\.safetensors\.index\.json: .*" + match):
        W.load(tmp_path)


def test_sharded_shard_linking_out_of_the_folder(tmp_path, rng):
    from safetensors.numpy import save_file

    (tmp_path / "outside").mkdir()
    save_file({"steps": np.ones(1)}, str(tmp_path / "outside" / "secret.safetensors"))
    write_sharded(tmp_path / "ckpt", sample(rng), weight_map={"steps": "link.safetensors"})
    (tmp_path / "ckpt" / "link.safetensors").symlink_to(tmp_path / "outside" / "secret.safetensors")
    with pytest.raises(WeightError, match=r"shard 'link\.safetensors': is a link that leads out of the index's folder"):
        W.load(tmp_path / "ckpt")


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_sharded_shard_that_is_not_a_regular_file(tmp_path, rng, kind):
    write_sharded(tmp_path, sample(rng), weight_map={"steps": "odd.safetensors"})
    if kind == "fifo":
        os.mkfifo(tmp_path / "odd.safetensors")  # opening it would block forever
    elif kind == "directory":
        (tmp_path / "odd.safetensors").mkdir()
    else:
        (tmp_path / "odd.safetensors").symlink_to("/dev/zero")
    found = {"fifo": "FIFO", "directory": "directory", "device": "device"}[kind]
    with pytest.raises(WeightError, match=rf"shard 'odd\.safetensors': expected a regular file, found a {found}"):
        W.load(tmp_path)


def test_sharded_tensor_in_two_shards(tmp_path, rng):
    from safetensors.numpy import save_file

    data = sample(rng)
    shards = write_sharded(tmp_path, data, n=2)
    (home,) = [f for f, tensors in shards.items() if "steps" in tensors]
    (other,) = set(shards) - {home}
    save_file({**shards[other], "steps": data["steps"]}, str(tmp_path / other))
    with pytest.raises(
        WeightError, match=rf"tensor 'steps' is in shard '{other}' and in shard '{home}', where the index places it"
    ):
        W.load(tmp_path)


def test_sharded_tensor_missing_from_its_shard_or_not_in_the_index(tmp_path, rng):
    data = sample(rng)
    shards = write_sharded(tmp_path, data, n=2)
    first = sorted(shards)[0]
    doc = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    doc["weight_map"]["head.weight"] = first
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(doc))
    with pytest.raises(WeightError, match=rf"places tensor 'head\.weight' in shard '{first}', which does not hold it"):
        W.load(tmp_path)
    home = doc["weight_map"].pop("steps")
    del doc["weight_map"]["head.weight"]
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(doc))
    with pytest.raises(WeightError, match=rf"shard '{home}' holds 'steps', which the index does not name"):
        W.load(tmp_path)


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"weight_map": ["a", "b"]}', r"not a safetensors index: expected \{\"metadata\".*; weight_map is list"),
        ('{"weights": {}}', r"not a safetensors index: .*; found no weight_map \(keys: 'weights'\)"),
        ("[1, 2]", r"not a safetensors index: .*; found list"),
        ('{"weight_map": {"a": 3}}', r"weight_map\['a'\] is int '3', expected a shard file name"),
        ('{"metadata": 1, "weight_map": {"a": "x.safetensors"}}', r"index metadata is int"),
        ('{"weight_map": {}}', r"weight_map names no tensors"),
        ('{"weight_map": {"a": "x.safe', r"index is not UTF-8 JSON \(JSONDecodeError"),
        ("[" * 100_000, r"index is not UTF-8 JSON \(RecursionError"),
        ('{"weight_map": {"a": "\xff"}}'.encode("latin-1"), r"index is not UTF-8 JSON \(UnicodeDecodeError"),
    ],
)
def test_sharded_malformed_index(tmp_path, text, match):
    path = tmp_path / "model.safetensors.index.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(WeightError, match=r"model\.safetensors\.index\.json: .*" + match):
        W.load(path, format="safetensors_index")


def test_sharded_index_and_shard_count_limits(tmp_path, rng):
    write_sharded(tmp_path, sample(rng), n=3)
    size = (tmp_path / "model.safetensors.index.json").stat().st_size
    with pytest.raises(WeightError, match=rf"index of {size} bytes is over limits.max_json_bytes=100"):
        W.load(tmp_path, limits=W.Limits(max_json_bytes=100))
    with pytest.raises(WeightError, match=r"names 3 shard files, over limits.max_shards=2"):
        W.load(tmp_path, limits=W.Limits(max_shards=2))
    assert len(W.load(tmp_path, limits=W.Limits(max_shards=3))) == 6
