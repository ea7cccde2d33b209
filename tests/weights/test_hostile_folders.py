"""Folders as untrusted input: a Hugging Face model folder given to ``weights.load`` (registry.py picks its
checkpoint) and a Keras 3 model saved unzipped (``model.save(folder, zipped=False)``).

A folder chooses the file that gets read, so what it holds may not make trtdsl read a file outside it (a link
out; only a Hugging Face cache's ``snapshots/<rev>`` may link into its ``blobs``), open a FIFO (a hang) or a
device, or stop on a link loop with anything but a WeightError naming the file. Every case loads in the load
server (conftest.py), so a hang or a crash fails the test instead of the run.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from safetensors.numpy import save_file

from ._crafted import FIX, SECRET, refused

WEIGHTS = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}


def _device(path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    os.mknod(path, 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero's numbers


# (what the folder holds, what the refusal says); each builder gets the folder and returns the path to load
HF = {
    "a FIFO named model.safetensors": (lambda d: os.mkfifo(d / "model.safetensors"), r"model.safetensors: is not a file"),
    "a FIFO named pytorch_model.bin": (lambda d: os.mkfifo(d / "pytorch_model.bin"), r"pytorch_model.bin: is not a file"),
    "a device named model.safetensors": (lambda d: _device(d / "model.safetensors"), r"model.safetensors: is not a file"),
    "a link to /dev/zero": (
        lambda d: (d / "model.safetensors").symlink_to("/dev/zero"), r"model.safetensors: is a link that leads out of"
    ),
    "a directory named model.safetensors": (lambda d: (d / "model.safetensors").mkdir(), r"is not a file"),
    "an empty model.safetensors": (
        lambda d: (d / "model.safetensors").write_bytes(b""), r"^model.safetensors: truncated safetensors header"
    ),
    "an empty pytorch_model.bin": (
        lambda d: (d / "pytorch_model.bin").write_bytes(b""), r"pytorch_model.bin: not a PyTorch checkpoint"
    ),
    "a link to itself": (
        lambda d: (d / "model.safetensors").symlink_to("model.safetensors"),
        r"model.safetensors: cannot resolve it \(RuntimeError: Symlink loop",
    ),
    "two links to each other": (
        lambda d: ((d / "a.safetensors").symlink_to("b"), (d / "b").symlink_to("a.safetensors")),
        r"a.safetensors: cannot resolve it \(RuntimeError: Symlink loop",
    ),
    "a dangling link": (
        lambda d: (d / "model.safetensors").symlink_to("gone"), r"model.safetensors: cannot resolve it \(FileNotFoundError"
    ),
    "a link out of the folder": (
        lambda d: (d / "model.safetensors").symlink_to(d.parent / "secret.safetensors"),
        r"model.safetensors: is a link that leads out of .* \(to '.*secret.safetensors'\)",
    ),
    "a FIFO beside a checkpoint": (  # two candidates of one rank: named, neither opened
        lambda d: (os.mkfifo(d / "a.safetensors"), save_file(WEIGHTS, d / "b.safetensors")),
        r"is a directory with 2 \*.safetensors files \(a.safetensors, b.safetensors\); pass the one to load",
    ),
    "a cache blob that links out": (
        lambda d: _snapshot(d, "blobs/x", link_out=True), r"model.safetensors: is a link that leads out of .*secret"
    ),
    "a link into a folder under blobs": (  # the cache keeps blobs flat: blobs/sub/x is not one
        lambda d: _snapshot(d, "blobs/sub/x"), r"model.safetensors: is a link that leads out of .*blobs/sub/x"
    ),
}  # fmt: skip


def _snapshot(d, blob: str, *, link_out: bool = False, depth: int = 1):
    """A Hugging Face cache under ``d``: snapshots/rev[/inner...]/model.safetensors -> ../../<blob>."""
    snap = d / "snapshots" / "rev" / "/".join(["inner"] * (depth - 1)) if depth > 1 else d / "snapshots" / "rev"
    snap.mkdir(parents=True)
    (d / blob).parent.mkdir(parents=True, exist_ok=True)
    if link_out:
        (d / blob).symlink_to(d.parent / "secret.safetensors")
    else:
        save_file(WEIGHTS, d / blob)
    (snap / "model.safetensors").symlink_to("../" * (depth + 1) + blob)
    return snap


@pytest.fixture
def beside(tmp_path):
    """A folder to fill, beside a checkpoint holding the secret that no case may load."""
    save_file({"secret": np.frombuffer(SECRET, np.uint8)}, tmp_path / "secret.safetensors")
    (tmp_path / "model").mkdir()
    return tmp_path / "model"


@pytest.mark.parametrize("case", HF)
def test_a_hugging_face_folder_holding_odd_files_is_refused_by_name(loader, beside, case):
    build, match = HF[case]
    target = build(beside)
    refused(loader, target if isinstance(target, os.PathLike) else beside, match)


@pytest.mark.parametrize("depth", [1, 2])
def test_a_hugging_face_cache_snapshot_loads_through_its_blobs(loader, beside, depth):
    result = loader.sound(_snapshot(beside, "blobs/sha256-1", depth=depth), marker=SECRET.hex())
    assert result["ok"] == {"w": [[2, 3], "float32", 15.0]}


# ------------------------------------------------- Keras 3 saved unzipped
def _keras_folder(d):
    with zipfile.ZipFile(FIX / "keras3_convnet.keras") as z:
        z.extractall(d)
    return d


def _replace(name: str, make):
    def build(d):
        (d / name).unlink()
        make(d / name)

    return build


def _write(name: str, data: bytes | str):
    return lambda d: (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


DEEP = "[" * 100_000 + "]" * 100_000
KERAS = {
    "config.json that is a list": (_write("config.json", "[1, 2]"), r"model config: expected an object"),
    "config.json that is a number": (_write("config.json", "3"), r"model config: expected an object"),
    "config.json that is empty": (_write("config.json", ""), r"config.json: config.json is not valid JSON"),
    "config.json nested 100,000 deep": (_write("config.json", DEEP), r"config.json: config.json is not valid JSON"),
    "config.json of 65 MB": (
        _write("config.json", b" " * (65 << 20) + b"{}"), r"config.json of 68157442 bytes is over limits.max_json_bytes"
    ),
    "config.json with NaN": (_write("config.json", '{"class_name": NaN, "config": Infinity}'), r"NaN is not a JSON number"),
    "config.json linking out": (
        _replace("config.json", lambda p: p.symlink_to(p.parent.parent / "secret.json")), r"config.json: is a link that leads out"
    ),
    "config.json a FIFO": (_replace("config.json", os.mkfifo), r"config.json: is not a regular file"),
    "config.json a device": (_replace("config.json", _device), r"config.json: is not a regular file"),
    "config.json a directory": (_replace("config.json", os.mkdir), r"config.json: is not a regular file"),
    "metadata.json nested 100,000 deep": (
        _write("metadata.json", '{"a": ' + DEEP + "}"), r"metadata.json: metadata.json is not valid JSON"
    ),
    "metadata.json of 65 MB": (
        _write("metadata.json", b'{"keras_version": "' + b"9" * (65 << 20) + b'"}'), r"metadata.json of \d+ bytes is over"
    ),
    "metadata.json linking out": (
        _replace("metadata.json", lambda p: p.symlink_to(p.parent.parent / "secret.json")), r"metadata.json: is a link that leads out"
    ),
    "metadata.json a FIFO": (_replace("metadata.json", os.mkfifo), r"metadata.json: is not a regular file"),
    "no model.weights.h5": (
        lambda d: (d / "model.weights.h5").unlink(), r"is a directory without 'model.weights.h5', so not a Keras 3 model"
    ),
    "model.weights.h5 linking out": (
        _replace("model.weights.h5", lambda p: p.symlink_to(FIX / "keras3_convnet.h5")), r"model.weights.h5: is a link that leads out"
    ),
    "model.weights.h5 a FIFO": (_replace("model.weights.h5", os.mkfifo), r"model.weights.h5: is not a regular file"),
    "model.weights.h5 a device": (_replace("model.weights.h5", _device), r"model.weights.h5: is not a regular file"),
    "model.weights.h5 empty": (_write("model.weights.h5", b""), r"model.weights.h5: cannot read it as HDF5"),
    "config.json a link to itself": (  # refused; the message says 'without config.json' (reported, keras_config/file.py)
        _replace("config.json", lambda p: p.symlink_to("config.json")), r"config.json"
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", KERAS)
def test_a_keras_folder_holding_odd_files_is_refused_by_name(loader, tmp_path, case):
    (tmp_path / "secret.json").write_text(json.dumps({"secret": SECRET.decode()}))
    folder = _keras_folder(tmp_path / "model")
    build, match = KERAS[case]
    build(folder)
    refused(loader, folder, match, keras_folder=True)


@pytest.mark.parametrize("metadata", ["[1]", '{"keras_version": {"a": 1}}', None])
def test_a_keras_folder_with_odd_or_missing_metadata_still_loads(loader, tmp_path, metadata):
    folder = _keras_folder(tmp_path / "model")
    if metadata is None:
        (folder / "metadata.json").unlink()
        (folder / "metadata.json").symlink_to("gone")  # a dangling link reads as no metadata
    else:
        (folder / "metadata.json").write_text(metadata)
    result = loader.sound(folder, keras_folder=True)
    assert len(result["ok"]) == 14, result
