"""Sharded checkpoints (trtdsl/weights/shards.py): every case runs for both index formats, safetensors
(``model.safetensors.index.json``) and PyTorch (``pytorch_model.bin.index.json``), with shards their own
library wrote and the index written as ``transformers`` writes it.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from trtdsl import WeightError
from trtdsl import weights as W
from trtdsl.weights.shards import SHARD_FORMATS

from ._crafted import refused
from ._samples import SAFETENSORS, SHARDINGS, TORCH, assert_same, mapped, sample, write_sharded

each = pytest.mark.parametrize("how", SHARDINGS, ids=str)


@each
def test_sharded_from_index_and_directory(tmp_path, rng, how):
    data = sample(rng)
    write_sharded(tmp_path / "ckpt", data, how)
    for path in (tmp_path / "ckpt" / how.index, tmp_path / "ckpt"):
        w = W.load(path)
        assert w.format == how.format
        assert W.detect(tmp_path / "ckpt" / how.index) == how.format
        assert_same(w, data)
        if how is SAFETENSORS:
            assert mapped(w["stem.conv1.weight"])  # each shard memory-mapped, no copy
        assert w.scope("layer1.0").take("fc.weight", (5, 7)).dtype == np.float16
        w.close()
    assert_same(W.load(tmp_path / "ckpt", mmap=False), data)


@each
def test_sharded_store_closes_every_shard(tmp_path, rng, monkeypatch, how):
    fmt = SHARD_FORMATS[how.format]
    closed = []
    real = fmt.open

    def spy(path, mmap, limits):
        entries, close = real(path, mmap, limits)
        return entries, lambda: (closed.append(path.name), close())

    monkeypatch.setattr(fmt, "open", spy)
    shards = write_sharded(tmp_path, sample(rng), how)
    with W.load(tmp_path) as w:
        w.take("steps")
    assert sorted(closed) == sorted(shards)


@each
def test_hugging_face_cache_links_into_blobs_load(tmp_path, rng, how):
    # hub's cache: snapshots/<rev>/<file> -> ../../blobs/<sha>, the index included
    data = sample(rng)
    shards = write_sharded(tmp_path / "blobs", data, how, n=2)
    snap = tmp_path / "snapshots" / "abc"
    snap.mkdir(parents=True)
    for f in [*shards, how.index]:
        (tmp_path / "blobs" / f).rename(tmp_path / "blobs" / f"sha-{f}")
        (snap / f).symlink_to(f"../../blobs/sha-{f}")
    assert_same(W.load(snap), data)


@each
@pytest.mark.parametrize(
    "shard, match",
    [
        ("../x.EXT", r"shard '\.\./x\.EXT': expected a plain file name in the index's folder"),
        ("/etc/passwd", r"shard '/etc/passwd': expected a plain file name"),
        ("sub\\x.EXT", r"expected a plain file name"),
        ("..", r"shard '\.\.': expected a plain file name"),
        ("x\0.EXT", r"expected a plain file name"),
        ("gone.EXT", r"shard 'gone\.EXT': no such file in "),
        ("\ud800.EXT", r"shard '\\ud800\.EXT': expected a plain file name"),  # JSON's lone surrogate: no file name
    ],
)
def test_sharded_index_naming_a_path_or_a_missing_shard(tmp_path, rng, how, shard, match):
    ext = how.shard.rsplit(".", 1)[1]
    write_sharded(tmp_path, sample(rng), how, weight_map={"steps": shard.replace("EXT", ext)})
    with pytest.raises(WeightError, match=re.escape(how.index) + ": .*" + match.replace("EXT", ext)):
        W.load(tmp_path)


@each
def test_sharded_shard_linking_out_of_the_folder(tmp_path, rng, how):
    (tmp_path / "outside").mkdir()
    how.save({"steps": np.ones(1)}, tmp_path / "outside" / "secret")
    write_sharded(tmp_path / "ckpt", sample(rng), how, weight_map={"steps": "link"})
    (tmp_path / "ckpt" / "link").symlink_to(tmp_path / "outside" / "secret")
    with pytest.raises(WeightError, match=r"shard 'link': is a link that leads out of the index's folder"):
        W.load(tmp_path / "ckpt")


@each
@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_sharded_shard_that_is_not_a_regular_file(loader, tmp_path, rng, how, kind):
    write_sharded(tmp_path, sample(rng), how, weight_map={"steps": "odd"})
    if kind == "fifo":
        os.mkfifo(tmp_path / "odd")  # opening it would block forever: the load server turns a hang into a failure
    elif kind == "directory":
        (tmp_path / "odd").mkdir()
    else:
        (tmp_path / "odd").symlink_to("/dev/zero")
    found = {"fifo": "FIFO", "directory": "directory", "device": "device"}[kind]
    refused(loader, tmp_path, rf"shard 'odd': expected a regular file, found a {found}")


@each
@pytest.mark.parametrize(
    "kind, match",
    [
        ("the index", r"INDEX: "),  # read as a shard, it is refused by the shard's own loader
        ("a link loop", r"shard 'odd': cannot stat it \(OSError: Too many levels of symbolic links\)"),
        ("a dangling link", r"shard 'odd': no such file in "),
        ("a link to /proc", r"shard 'odd': is a link that leads out of the index's folder"),
        ("a link up and back", r"shard 'odd': is a link that leads out of the index's folder"),
    ],
)
def test_sharded_shard_that_is_the_index_or_an_odd_link(loader, tmp_path, rng, how, kind, match):
    folder = tmp_path / "ckpt"
    name = how.index if kind == "the index" else "odd"
    write_sharded(folder, sample(rng), how, n=1, weight_map={"steps": name})
    if kind == "a link loop":
        (folder / "odd").symlink_to("odd")
    elif kind == "a dangling link":
        (folder / "odd").symlink_to("gone")
    elif kind == "a link to /proc":
        (folder / "odd").symlink_to("/proc/self/environ")  # a "regular" file of another process's secrets
    elif kind == "a link up and back":
        how.save({"steps": np.ones(1)}, tmp_path / "beside")
        (folder / "odd").symlink_to("../beside")
    refused(loader, folder, match.replace("INDEX", re.escape(how.index)))


@each
def test_sharded_tensor_in_two_shards(tmp_path, rng, how):
    data = sample(rng)
    shards = write_sharded(tmp_path, data, how, n=2)
    (home,) = [f for f, tensors in shards.items() if "steps" in tensors]
    (other,) = set(shards) - {home}
    how.save({**shards[other], "steps": data["steps"]}, tmp_path / other)
    with pytest.raises(
        WeightError, match=rf"tensor 'steps' is in shard '{other}' and in shard '{home}', where the index places it"
    ):
        W.load(tmp_path)


@each
def test_sharded_tensor_missing_from_its_shard_or_not_in_the_index(tmp_path, rng, how):
    shards = write_sharded(tmp_path, sample(rng), how, n=2)
    first = sorted(shards)[0]
    doc = json.loads((tmp_path / how.index).read_text())
    doc["weight_map"]["head.weight"] = first
    (tmp_path / how.index).write_text(json.dumps(doc))
    with pytest.raises(WeightError, match=rf"places tensor 'head\.weight' in shard '{first}', which does not hold it"):
        W.load(tmp_path)
    home = doc["weight_map"].pop("steps")
    del doc["weight_map"]["head.weight"]
    (tmp_path / how.index).write_text(json.dumps(doc))
    with pytest.raises(WeightError, match=rf"shard '{home}' holds 'steps', which the index does not name"):
        W.load(tmp_path)


@each
@pytest.mark.parametrize(
    "text, match",
    [
        ('{"weight_map": ["a", "b"]}', r"not a LABEL: expected \{\"metadata\".*; weight_map is list"),
        ('{"weights": {}}', r"not a LABEL: .*; found no weight_map \(keys: 'weights'\)"),
        ("[1, 2]", r"not a LABEL: .*; found list"),
        ('{"weight_map": {"a": 3}}', r"weight_map\['a'\] is int '3', expected a shard file name"),
        ('{"metadata": 1, "weight_map": {"a": "x.safetensors"}}', r"LABEL metadata is int"),
        ('{"weight_map": {}}', r"LABEL's weight_map names no tensors"),
        ('{"weight_map": {"a": "x.safe', r"index is not UTF-8 JSON \(JSONDecodeError"),
        ("[" * 100_000, r"index is not UTF-8 JSON \(RecursionError"),
        ('{"weight_map": {"a": "\xff"}}'.encode("latin-1"), r"index is not UTF-8 JSON \(UnicodeDecodeError"),
    ],
)
def test_sharded_malformed_index(tmp_path, how, text, match):
    path = tmp_path / how.index
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(WeightError, match=re.escape(how.index) + ": .*" + match.replace("LABEL", how.label)):
        W.load(path, format=how.format)


@each
def test_sharded_index_and_shard_count_limits(tmp_path, rng, how):
    write_sharded(tmp_path, sample(rng), how, n=3)
    size = (tmp_path / how.index).stat().st_size
    with pytest.raises(WeightError, match=rf"index of {size} bytes is over limits.max_json_bytes=100"):
        W.load(tmp_path, limits=W.Limits(max_json_bytes=100))
    with pytest.raises(WeightError, match=r"names 3 shard files, over limits.max_shards=2"):
        W.load(tmp_path, limits=W.Limits(max_shards=2))
    assert len(W.load(tmp_path, limits=W.Limits(max_shards=3))) == 6


@pytest.mark.parametrize("how, other", [(TORCH, SAFETENSORS), (SAFETENSORS, TORCH)], ids=str)
def test_sharded_index_naming_a_shard_of_the_other_format(tmp_path, rng, how, other):
    data = sample(rng)
    shards = write_sharded(tmp_path, data, how, n=2)
    stray = sorted(shards)[1]
    other.save(shards[stray], tmp_path / stray)  # the same tensors, the other format's file
    kinds = {TORCH: "a PyTorch checkpoint", SAFETENSORS: "a safetensors file"}
    with pytest.raises(
        WeightError,
        match=rf"{re.escape(how.index)}: shard '{stray}': is {kinds[other]}, expected {kinds[how]} "
        rf"\(the shards of a {how.label} are all of its format\)",
    ):
        W.load(tmp_path)


@each
def test_sharded_shard_of_no_known_format_is_reported_by_its_loader(tmp_path, rng, how):
    shards = write_sharded(tmp_path, sample(rng), how, n=2)
    junk = sorted(shards)[0]
    (tmp_path / junk).write_bytes(b"API_KEY=hunter2 and more")
    said = {TORCH: r"not a PyTorch checkpoint: it starts with b'API_KEY=", SAFETENSORS: r"safetensors header of"}
    with pytest.raises(WeightError, match=rf"{re.escape(junk)}: .*{said[how]}") as e:
        W.load(tmp_path)
    assert "hunter2" not in str(e.value)
