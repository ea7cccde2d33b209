"""safetensors files and sharded checkpoints (trtdsl/weights/safetensors.py), written by the safetensors library."""

from __future__ import annotations

import json
import os

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
