"""weights/torchfile: a checkpoint gives tensors or a WeightError: no arbitrary objects, and bounded work
on shared references, cycles and deep nesting.

Crafted attacks load in the long-lived load server (conftest.py), so a crash or
a hang fails the test instead of killing the run.
"""

from __future__ import annotations

import collections
import time
import warnings
from dataclasses import replace

import ml_dtypes
import numpy as np
import pytest
import torch

from trtdsl import WeightError
from trtdsl import weights as W

from ._crafted import (
    Evil,
    legacy_with_pickle,
    op_global,
    op_int,
    refused,
    state_dict_pickle,
    storage_tensor,
    with_pickle,
)
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


# ------------------------------------------------- what a checkpoint's pickle may call (trtdsl/weights/torchpickle.py)
# Each is a callable torch.load(weights_only=True) allows that makes its object from a number in the file rather
# than from the file's data: a few bytes that allocate any amount of memory, or a tensor of uninitialized memory
# (whatever the process freed last) or of no data. Before trtdsl checked the pickle, each loaded or ran out of memory.
T = op_global("torch", "Tensor")
CALLS = {
    "bytearray": (
        op_global("builtins", "bytearray") + op_int(1 << 40) + b"\x85R", r"REDUCE of 'builtins.bytearray' for key 'w' with a size"
    ),
    "FloatTensor": (op_global("torch", "FloatTensor") + op_int(1 << 16) + b"\x85R", r"REDUCE of 'torch.FloatTensor' for key 'w', not one of the calls a weights file may make"),
    "UntypedStorage": (
        op_global("torch._utils", "_rebuild_tensor_v2") + b"(" + op_global("torch.storage", "UntypedStorage")
        + op_int(1 << 20) + b"\x85R" + op_int(0) + op_int(1 << 18) + b"\x85" + op_int(1) + b"\x85\x89"
        + op_global("collections", "OrderedDict") + b")RtR",
        r"REDUCE of 'torch.storage.UntypedStorage'",
    ),
    "meta": (
        op_global("torch._utils", "_rebuild_meta_tensor_no_storage") + b"(" + op_global("torch", "float32")
        + op_int(1 << 20) + op_int(1 << 20) + b"\x86" + op_int(1 << 20) + op_int(1) + b"\x86\x89tR",
        r"REDUCE of 'torch._utils._rebuild_meta_tensor_no_storage'",
    ),
    "through _rebuild_from_type_v2": (
        op_global("torch._tensor", "_rebuild_from_type_v2") + b"(" + op_global("builtins", "bytearray") + T
        + op_int(1 << 40) + b"\x85}tR",
        r"REDUCE of 'builtins.bytearray' for key 'w' through _rebuild_from_type_v2",
    ),
    "NEWOBJ": (T + b"(" + op_int(1 << 16) + b"t\x81", r"NEWOBJ of 'torch.Tensor' for key 'w'"),
    "BUILD": (op_global("builtins", "set") + b")R}b", r"BUILD of 'builtins.set'"),
}  # fmt: skip


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("call", CALLS)
def test_a_pickle_calling_what_torch_save_never_writes_is_refused_before_torch_reads_it(
    loader, saved, tmp_path, call, legacy
):
    value, match = CALLS[call]
    path = tmp_path / "ckpt.pt"
    (legacy_with_pickle if legacy else with_pickle)(saved / ("legacy.pt" if legacy else "zip.pt"), path,
                                                    state_dict_pickle(value))  # fmt: skip
    where = r"pickle 4 of 5" if legacy else r"ckpt/data.pkl|zip/data.pkl"
    start = time.perf_counter()
    refused(
        loader, path, rf"ckpt.pt: refused: it holds Python objects other than tensors and containers, and trtdsl "
        rf"only loads with torch.load\(weights_only=True\) what torch.save writes for them. \(({where}): {match}"
    )  # fmt: skip
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize(
    "kind, make, call",
    [
        ("a quantized tensor", lambda: torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.qint8), "_utils._rebuild_qtensor"),
        ("a sparse tensor", lambda: torch.ones(3).to_sparse(), "serialization._get_layout"),
        ("a nested tensor", lambda: torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]), "_utils._rebuild_nested_tensor"),
    ],
)  # fmt: skip
def test_tensors_no_weight_can_be_are_refused_before_torch_builds_them(tmp_path, kind, make, call, legacy):
    with warnings.catch_warnings():  # quantized and nested tensors are deprecated or in prototype
        warnings.simplefilter("ignore")
        torch.save({"ok": torch.ones(2), "odd": make()}, tmp_path / "c.pt", _use_new_zipfile_serialization=not legacy)
    with pytest.raises(
        WeightError,
        match=rf"c.pt: refused: it holds {kind}, and only dense tensors can become weights \(.*: REDUCE of 'torch.{call}'",
    ):
        W.load(tmp_path / "c.pt")


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize(
    "storage, match",
    [
        (
            {"key": "../../../../etc/passwd"},
            r"refused: the tensors use storage '\.\./\.\./\.\./\.\./etc/passwd', but it "
            r"holds no 'zip/data/\.\./\.\./\.\./\.\./etc/passwd'",
        ),
        ({"key": "/etc/passwd"}, r"refused: the tensors use storage '/etc/passwd', but it holds no"),
        ({"key": "../data.pkl", "numel": 8, "size": (8,)}, r"refused: the tensors use storage '\.\./data\.pkl', but"),
        (
            {"numel": 1 << 60, "size": (1 << 20,)},
            r"refused: storage '0' is 1152921504606846976 x 4 bytes in the pickle "
            r"but member 'zip/data/0' holds 12",
        ),  # a storage the record cannot hold
        ({"offset": 1 << 40}, r"RuntimeError: "),
        ({"stride": (-1,)}, r"RuntimeError: Storage size calculation overflowed"),
    ],
    ids=["key ../", "key /", "key ../data.pkl", "numel", "offset", "negative stride"],
)
def test_a_pickle_naming_storage_outside_the_archive_or_past_it_is_refused(
    loader, saved, tmp_path, storage, match, mmap
):
    # torch looks a key up in the zip's directory, never on disk; trtdsl checks each storage's member and size
    # before torch reads the pickle (torch's mmap path did not compare the size with the record)
    path = with_pickle(saved / "zip.pt", tmp_path / "ckpt.pt", state_dict_pickle(storage_tensor(**storage)))
    refused(loader, path, rf"ckpt.pt: (cannot read it as torch: .*)?{match}", options={"mmap": mmap})


def test_the_hand_written_pickle_itself_loads(saved, tmp_path):
    path = with_pickle(saved / "zip.pt", tmp_path / "ckpt.pt", state_dict_pickle(storage_tensor()))
    np.testing.assert_array_equal(W.load(path)["w"], np.ones(3, np.float32))


def _objects():
    """What torch.save writes into real checkpoints: it all loads, with the tensors torch holds."""
    lin = torch.nn.Linear(3, 2)
    tagged = torch.arange(4.0)
    tagged.note = "kept"  # a tensor with attributes pickles through _rebuild_from_type_v2
    t = torch.arange(6.0).reshape(2, 3)
    return {
        "state_dict": lin.state_dict(),  # an OrderedDict with a _metadata attribute: a BUILD
        "parameter": {"p": torch.nn.Parameter(torch.ones(2))},
        "attributes": {"t": tagged},
        "values": {
            "t": t,
            "b": b"\x00\xff",
            "ba": bytearray(b"xy"),
            "s": {1, 2},
            "d": torch.device("cpu"),
            "z": torch.Size([2, 3]),
            "c": 1 + 2j,
            "n": collections.Counter("aab"),
        },
        "trainer": {
            "model": lin.state_dict(),
            "optimizer": torch.optim.Adam(lin.parameters()).state_dict(),
            "epoch": 3,
        },
        "views": {"a": t, "row": t[1], "t": t.T, "position_ids": torch.arange(512).expand((1, -1))},
        "dtypes": {
            "bf16": torch.ones(2, dtype=torch.bfloat16),
            "b": torch.ones(2, dtype=torch.bool),
            "c": torch.ones(2, dtype=torch.complex64),
            "i8": torch.ones(2, dtype=torch.int8),
        },
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("kind", list(_objects()))
def test_what_torch_save_writes_passes_the_pickle_check(tmp_path, kind, legacy):
    obj = _objects()[kind]
    torch.save(obj, tmp_path / "c.pt", _use_new_zipfile_serialization=not legacy)
    held = {k: v.detach() for k, v in _tensors(obj).items()}
    w = W.load(tmp_path / "c.pt")
    assert sorted(w) == sorted(held)
    for name, t in held.items():
        np.testing.assert_array_equal(w[name], t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy())


def _tensors(obj, prefix=""):
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    if isinstance(obj, dict):
        return {
            k: v
            for key, value in obj.items()
            for k, v in _tensors(value, f"{prefix}.{key}" if prefix else str(key)).items()
        }
    if isinstance(obj, (list, tuple)) and not isinstance(obj, torch.Size):
        return {
            k: v
            for i, value in enumerate(obj)
            for k, v in _tensors(value, f"{prefix}.{i}" if prefix else str(i)).items()
        }
    return {}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_a_tensor_larger_than_its_storage_is_bounded_like_an_inflating_member(loader, saved, tmp_path, legacy):
    # torch.ones(1).expand(n): a 4-byte storage, n * 4 bytes once TensorRT copies it (it was 32 GB from 12 bytes)
    path = tmp_path / "bcast.pt"
    torch.save({"w": torch.ones(1).expand(20_000_000), "ok": torch.ones(4).expand(1000, 4)}, path,
               _use_new_zipfile_serialization=not legacy)  # fmt: skip
    refused(
        loader, path, r"bcast.pt: refused: tensor 'w' of shape \(20000000,\) and strides \(0,\) spans 80000000 bytes "
        r"over a storage of 4 bytes, past limits \(ratio 200, floor 67108864, max 1099511627776\)",
    )  # fmt: skip
    w = W.load(path, limits=W.Limits(inflate_floor=1 << 30))
    assert w.shape("w") == (20_000_000,) and w["ok"].shape == (1000, 4)
    bomb = state_dict_pickle(storage_tensor(size=(1 << 33,), stride=(0,)))
    bomb = with_pickle(saved / "zip.pt", tmp_path / "bomb.pt", bomb)
    refused(loader, bomb, r"bomb.pt: refused: tensor 'w' of shape \(8589934592,\) and strides \(0,\) spans 34359738368")
