"""weights/torchfile: a checkpoint gives tensors or a WeightError: no arbitrary objects, and bounded work
on shared references, cycles and deep nesting.

Crafted attacks load in the long-lived load server (conftest.py), so a crash or
a hang fails the test instead of killing the run.
"""

from __future__ import annotations

import time
from dataclasses import replace

import ml_dtypes
import numpy as np
import pytest
import torch

from trtdsl import WeightError
from trtdsl import weights as W

from ._crafted import Evil, refused
from ._samples import TORCH, float8_tensors, in_file_map, write_sharded


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


# ------------------------------------------------- sharded PyTorch checkpoints (the shared cases: test_shards.py)
@pytest.mark.parametrize("index", ["pytorch_model.bin.index.json", "model.pt.index.json", "model.pth.index.json"])
@pytest.mark.parametrize("mmap", [True, False])
def test_torch_index_gives_the_tensors_torch_saved(tmp_path, index, mmap):
    g = torch.Generator().manual_seed(0)
    state = {
        "embed.weight": torch.randn(11, 4, generator=g),
        "h.0.attn.weight": torch.randn(4, 4, generator=g).to(torch.bfloat16),
        "h.0.attn.bias": torch.randn(4, generator=g, dtype=torch.float64),
        "h.0.mlp.weight": torch.randn(8, 4, generator=g).half(),
        "position_ids": torch.arange(11),
    }
    shards = write_sharded(tmp_path, state, replace(TORCH, index=index), n=2)
    first = sorted(shards)[0]
    TORCH.save(shards[first], tmp_path / first, _use_new_zipfile_serialization=False)  # a legacy-format shard too
    w = W.load(tmp_path / index, mmap=mmap)
    assert w.format == "torch_index" and sorted(w) == sorted(state)
    for name, t in state.items():
        want = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()  # NumPy has no bfloat16
        assert w.dtype(name) == want.dtype and w.shape(name) == want.shape, name
        np.testing.assert_array_equal(w[name], want, err_msg=name)


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_index_shard_with_arbitrary_objects_is_refused(tmp_path, legacy):
    marker = tmp_path / "pwned"
    shards = write_sharded(tmp_path, {"a": np.ones(2), "b": np.zeros(3)}, TORCH, n=2)
    evil = sorted(shards)[1]
    torch.save({"b": torch.zeros(3), "hook": Evil(marker)}, tmp_path / evil, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(
        WeightError, match=rf"{evil}: refused: it holds Python objects other than tensors .*weights_only=True"
    ):
        W.load(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_whole_saved_model_is_refused_with_the_state_dict_hint(tmp_path, legacy):
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    torch.save(model, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(WeightError) as e:
        W.load(path)
    text = str(e.value)
    assert "model.pt: refused" in text and "weights_only=True" in text
    assert "It pickles a 'torch.nn.modules.container.Sequential' object, as torch.save(model) does" in text
    assert "torch.save(model.state_dict(), path)" in text
    assert "add_safe_globals" not in text  # torch's advice to allow-list classes is not ours to give
    # What the hint says to do loads, with the values torch holds.
    state = model.state_dict()
    torch.save(state, tmp_path / "state.pt")
    w = W.load(tmp_path / "state.pt")
    np.testing.assert_array_equal(w["0.weight"], state["0.weight"].numpy())


# ------------------------------------------------- float8
@pytest.mark.parametrize("mmap", [True, False])
def test_torch_float8_tensors_bit_for_bit(tmp_path, mmap):
    tensors = float8_tensors()
    path = tmp_path / "fp8.pt"
    torch.save({"model": tensors}, path)
    w = W.load(path, mmap=mmap)
    assert sorted(w) == sorted(f"model.{k}" for k in tensors)
    for name, t in tensors.items():
        got = w[f"model.{name}"]
        kind = str(t.dtype).removeprefix("torch.")
        assert got.dtype.name == w.dtype(f"model.{name}").name == kind, name
        assert got.shape == w.shape(f"model.{name}") == tuple(t.shape), name
        if t.dtype == torch.float32:
            np.testing.assert_array_equal(got, t.numpy())
            continue
        assert got.dtype == getattr(ml_dtypes, kind)
        np.testing.assert_array_equal(got.view(np.uint8), t.view(torch.uint8).numpy(), err_msg=name)
        assert in_file_map(got, path) is mmap, name  # mmap: a view of torch's map of the file, no copy


def test_torch_float8_in_the_legacy_format(tmp_path):
    tensors = float8_tensors()
    path = tmp_path / "legacy.pt"
    torch.save(tensors, path, _use_new_zipfile_serialization=False)
    try:  # torch 2.14 (installed here) writes these files but cannot read them back
        held = torch.load(path, weights_only=True)
    except AttributeError:
        with pytest.raises(
            WeightError,
            match=r"legacy.pt: torch cannot read this legacy-format \(non-zip\) checkpoint back: it holds a tensor "
            r"of a type with no legacy storage class \(float8, uint16, uint32, uint64\), and torch.load fails with "
            r"\"type object 'torch.storage.UntypedStorage' has no attribute 'dtype'\"\. Save the tensors again in "
            r"torch.save's default zip format",
        ):
            W.load(path)
        return
    w = W.load(path)
    for name, t in held.items():
        np.testing.assert_array_equal(w[name].view(np.uint8), t.view(torch.uint8).numpy(), err_msg=name)


def test_torch_types_numpy_cannot_hold_are_refused_by_name(tmp_path):
    torch.save({"ok": torch.ones(2), "fp4": torch.zeros(2, 3, dtype=torch.float4_e2m1fn_x2)}, tmp_path / "fp4.pt")
    with pytest.raises(
        WeightError,
        match=r"fp4.pt: tensor 'fp4' has dtype torch.float4_e2m1fn_x2, which trtdsl cannot read; it reads the types "
        r"NumPy has, torch.bfloat16 \(as float32\) and torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e8m0fnu, "
        r"torch.float8_e4m3fnuz, torch.float8_e5m2fnuz$",
    ):
        W.load(tmp_path / "fp4.pt")
