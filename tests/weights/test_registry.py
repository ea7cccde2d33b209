"""weights/registry: format detection by content, what a file that is no weight file is called, and which
checkpoint a folder holds."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from trtdsl import WeightError
from trtdsl import weights as W

from ._samples import SAFETENSORS, TORCH, assert_same, sample, write_sharded


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


# ------------------------------------------------- which checkpoint a folder holds (registry._in_directory)
def test_a_folder_with_a_safetensors_and_a_torch_index_loads_the_safetensors_one(tmp_path, rng):
    st, pt = sample(rng), sample(np.random.default_rng(1))  # different values: the store says which was read
    write_sharded(tmp_path, st, SAFETENSORS, n=2)
    write_sharded(tmp_path, pt, TORCH, n=2)
    w = W.load(tmp_path)
    assert w.format == "safetensors_index"  # as transformers' from_pretrained prefers safetensors
    assert_same(w, st)
    assert_same(W.load(tmp_path / TORCH.index), pt)
    (tmp_path / SAFETENSORS.index).unlink()
    for f in tmp_path.glob("*.safetensors"):
        f.unlink()
    assert W.load(tmp_path).format == "torch_index"


def test_a_folder_with_two_torch_indexes_or_none_names_what_it_looked_for(tmp_path, rng):
    write_sharded(tmp_path, sample(rng), TORCH, n=2)
    (tmp_path / "extra.pt.index.json").write_text((tmp_path / TORCH.index).read_text())
    with pytest.raises(
        WeightError,
        match=r"directory with 2 \*\.bin\.index\.json/\*\.pt\.index\.json/\*\.pth\.index\.json files "
        r"\(extra\.pt\.index\.json, pytorch_model\.bin\.index\.json\); pass the one to load",
    ):
        W.load(tmp_path)
    assert W.load(tmp_path / "extra.pt.index.json").format == "torch_index"
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        WeightError,
        match=r"empty: is not a file, and not a directory holding one \*\.safetensors\.index\.json, or one "
        r"\*\.safetensors, or one \*\.bin\.index\.json/\*\.pt\.index\.json/\*\.pth\.index\.json, or one "
        r"pytorch_model\.bin/adapter_model\.bin, or one \*\.pt/\*\.pth; it is empty$",
    ):
        W.load(tmp_path / "empty")


# ------------------------------------------------- the unsharded Hugging Face and PEFT layouts
def _texts(folder: Path, *names: str) -> None:
    """The small files a Hugging Face folder holds beside its weights (contents do not matter to the loader)."""
    for name in names:
        (folder / name).write_text(json.dumps({"model_type": "bert"}) if name.endswith(".json") else "[PAD]\n[UNK]\n")


def _tf_model_h5(path: Path, rng) -> dict[str, np.ndarray]:
    """A tf_model.h5 as transformers' TF save_pretrained writes it (Keras 2 save_weights): root layer_names, each
    layer group's weight_names in TF scopes ending ':0'. Returns {TF scope name: array}."""
    names = [
        "tf_bert_model/bert/embeddings/word_embeddings/weight:0",
        "tf_bert_model/bert/pooler/dense/kernel:0",
        "tf_bert_model/bert/pooler/dense/bias:0",
    ]
    values = {n: rng.standard_normal((4, 3) if "bias" not in n else (3,)).astype(np.float32) for n in names}
    with h5py.File(path, "w") as f:
        f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", b"2.15.0"
        f.attrs["layer_names"] = np.array([b"bert"])
        group = f.create_group("bert")
        group.attrs["weight_names"] = np.array([n.encode() for n in names])
        for n, v in values.items():
            group.create_dataset(n, data=v)
    return values


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])  # bert-base-uncased's 2018 file is legacy
def test_a_folder_with_only_pytorch_model_bin_loads_it(tmp_path, rng, legacy):
    data = sample(rng)
    TORCH.save(data, tmp_path / "pytorch_model.bin", _use_new_zipfile_serialization=not legacy)
    _texts(tmp_path, "config.json")
    w = W.load(tmp_path)
    assert w.format == "torch" and w.path == tmp_path / "pytorch_model.bin"
    assert_same(w, data)


def test_a_folder_with_a_bin_and_a_safetensors_file_loads_the_safetensors_one(tmp_path, rng):
    st, pt = sample(rng), sample(np.random.default_rng(1))
    SAFETENSORS.save(st, tmp_path / "model.safetensors")
    TORCH.save(pt, tmp_path / "pytorch_model.bin")
    w = W.load(tmp_path)
    assert w.format == "safetensors"  # as transformers' from_pretrained prefers safetensors
    assert_same(w, st)
    assert_same(W.load(tmp_path / "pytorch_model.bin"), pt)


def test_the_full_hugging_face_layout_loads_the_pytorch_weights_never_tf_or_flax(tmp_path, rng):
    """bert-base-uncased before safetensors: weights for three frameworks, a tokenizer and a config."""
    data = sample(rng)
    TORCH.save(data, tmp_path / "pytorch_model.bin")
    _tf_model_h5(tmp_path / "tf_model.h5", rng)
    (tmp_path / "flax_model.msgpack").write_bytes(b"\x81\xa4bert\x80" + bytes(64))
    _texts(tmp_path, "config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", ".gitattributes")
    assert_same(W.load(tmp_path), data)
    newer = sample(np.random.default_rng(1))  # the repo as it is today, with model.safetensors added
    SAFETENSORS.save(newer, tmp_path / "model.safetensors")
    assert_same(W.load(tmp_path), newer)


def test_a_trainer_checkpoint_folder_loads_its_model_not_its_other_bin_and_pt_files(tmp_path, rng):
    """checkpoint-500/ as transformers' Trainer writes it: training_args.bin is no checkpoint (a *.bin glob would
    find two), and optimizer.pt, scheduler.pt and rng_state.pth rank after pytorch_model.bin."""
    data = sample(rng)
    TORCH.save(data, tmp_path / "pytorch_model.bin")
    torch.save({"learning_rate": 5e-5}, tmp_path / "training_args.bin")
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        torch.save({"state": {0: {"step": torch.tensor(500.0)}}}, tmp_path / name)
    _texts(tmp_path, "config.json", "trainer_state.json")
    w = W.load(tmp_path)
    assert w.path == tmp_path / "pytorch_model.bin"
    assert_same(w, data)
    (tmp_path / "pytorch_model.bin").unlink()
    with pytest.raises(
        WeightError,
        match=r"is a directory with 3 \*\.pt/\*\.pth files \(optimizer\.pt, rng_state\.pth, scheduler\.pt\); "
        r"pass the one to load$",
    ):
        W.load(tmp_path)


def test_a_peft_adapter_folder_loads_its_adapter_model(tmp_path, rng):
    lora = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": rng.standard_normal((8, 16)),
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": rng.standard_normal((16, 8)),
    }
    lora = {k: v.astype(np.float32) for k, v in lora.items()}
    TORCH.save(lora, tmp_path / "adapter_model.bin")
    _texts(tmp_path, "adapter_config.json", "README.md")
    w = W.load(tmp_path)
    assert w.path == tmp_path / "adapter_model.bin"
    assert_same(w, lora)
    newer = {k: v + 1 for k, v in lora.items()}  # peft writes adapter_model.safetensors today; it wins
    SAFETENSORS.save(newer, tmp_path / "adapter_model.safetensors")
    assert_same(W.load(tmp_path), newer)


def test_a_folder_with_a_model_and_an_adapter_bin_names_both(tmp_path, rng):
    TORCH.save(sample(rng), tmp_path / "pytorch_model.bin")
    TORCH.save(sample(rng), tmp_path / "adapter_model.bin")
    with pytest.raises(
        WeightError,
        match=r"directory with 2 pytorch_model\.bin/adapter_model\.bin files \(adapter_model\.bin, "
        r"pytorch_model\.bin\); pass the one to load",
    ):
        W.load(tmp_path)


@pytest.mark.parametrize("name", ["model.pt", "resnet18.pth"])
def test_a_folder_with_one_pt_or_pth_loads_it_and_two_are_named(tmp_path, rng, name):
    data = sample(rng)
    TORCH.save(data, tmp_path / name)
    assert_same(W.load(tmp_path), data)
    TORCH.save(sample(rng), tmp_path / "best.pt")
    with pytest.raises(
        WeightError,
        match=rf"directory with 2 \*\.pt/\*\.pth files \(best\.pt, {re.escape(name)}\); pass the one to load",
    ):
        W.load(tmp_path)


def test_a_folder_with_only_flax_weights_names_them_and_what_it_looked_for(tmp_path):
    (tmp_path / "flax_model.msgpack").write_bytes(b"\x81\xa6params\x80" + bytes(32))
    _texts(tmp_path, "config.json", "vocab.txt")
    with pytest.raises(
        WeightError,
        match=r"is not a file, and not a directory holding one \*\.safetensors\.index\.json, .*or one "
        r"pytorch_model\.bin/adapter_model\.bin, or one \*\.pt/\*\.pth; it holds config\.json, flax_model\.msgpack, "
        r"vocab\.txt\. flax_model\.msgpack: msgpack \(Flax weights\), a format trtdsl cannot read: convert it to "
        r"safetensors, e\.g\. with transformers' .*from_flax=True",
    ):
        W.load(tmp_path)


def test_a_folder_with_only_tf_weights_says_to_pass_the_file_which_then_loads(tmp_path, rng):
    """Not picked: its names are TF scopes, not the PyTorch names a model binds (transformers asks for from_tf=True
    too); passed itself, it is a Keras save_weights file."""
    values = _tf_model_h5(tmp_path / "tf_model.h5", rng)
    _texts(tmp_path, "config.json")
    with pytest.raises(
        WeightError,
        match=r"; it holds config\.json, tf_model\.h5\. tf_model\.h5: TensorFlow Keras weights, named by TF scopes "
        rf"rather than PyTorch's names: to load them, pass the file itself, load\('{re.escape(str(tmp_path))}/tf_model\.h5'\)$",
    ):
        W.load(tmp_path)
    w = W.load(tmp_path / "tf_model.h5")
    assert w.format == "keras_h5"
    assert sorted(w) == ["bert/bias", "bert/kernel", "bert/weight"]
    for name, v in values.items():
        np.testing.assert_array_equal(w["bert/" + name.rsplit("/", 1)[1].removesuffix(":0")], v)


def test_a_folder_listing_is_cut_and_counted_and_names_an_onnx_model(tmp_path):
    _texts(tmp_path, *[f"notes{i:02d}.txt" for i in range(12)])
    (tmp_path / "model.onnx").write_bytes(b"\x08\x07")
    with pytest.raises(
        WeightError,
        match=r"it holds model\.onnx, notes00\.txt, .*, notes06\.txt, \.\.\. \(13 in all\)\. model\.onnx: an ONNX "
        r"model, not a weight file: parse it with trtdsl\.onnx\.parse\('.*model\.onnx'\)$",
    ):
        W.load(tmp_path)


def test_a_folder_rank_belongs_to_one_format():
    with pytest.raises(ValueError, match=r"folder ranks already taken \(rank: format\): \{4: 'torch'\}"):
        W.loads(".x", name="clash", folder={4: ("x.bin",)})(lambda path: None)
    assert "clash" not in W.FORMATS


def test_a_model_file_of_another_kind_says_what_to_do_with_it(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])  # fmt: skip
    model = tmp_path / "Model.ONNX"
    onnx.save(helper.make_model(graph), model)
    with pytest.raises(
        WeightError, match=r"Model.ONNX: .*an ONNX model, not a weight file: parse it with trtdsl.onnx.parse"
    ):
        W.load(model)
    (tmp_path / "flax_model.msgpack").write_bytes(b"\x81\xa6params\x80")
    with pytest.raises(
        WeightError, match=r"flax_model.msgpack: .*msgpack \(Flax weights\), a format trtdsl cannot read"
    ):
        W.load(tmp_path / "flax_model.msgpack")


def test_a_folder_checkpoint_that_links_out_of_the_folder_is_refused(tmp_path):
    from safetensors.numpy import save_file

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    np.savez(outside / "secret.npz", key=np.arange(4))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "pytorch_model.bin").symlink_to(outside / "secret.npz")
    with pytest.raises(WeightError, match=r"pytorch_model.bin: is a link that leads out of .*secret.npz"):
        W.load(folder)
    assert list(W.load(folder / "pytorch_model.bin")) == ["key"]  # named by the caller, it loads
    # The Hugging Face cache: snapshots/<rev>/model.safetensors -> ../../blobs/<sha>, also from a subfolder.
    cache = tmp_path / "models--org--name"
    (cache / "blobs").mkdir(parents=True)
    weights = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    save_file(weights, cache / "blobs" / "sha256-1")
    save_file(weights, cache / "blobs" / "sha256-2")
    snap = cache / "snapshots" / "abc123"
    (snap / "sub").mkdir(parents=True)
    (snap / "model.safetensors").symlink_to("../../blobs/sha256-1")
    (snap / "sub" / "model.safetensors").symlink_to("../../../blobs/sha256-2")
    for where in (snap, snap / "sub"):
        np.testing.assert_array_equal(W.load(where)["w"], weights["w"])
