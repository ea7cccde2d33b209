"""safetensors files (trtdsl/weights/safetensors.py), written by the safetensors library; the sharded
checkpoint tests, shared with PyTorch's, are in test_shards.py."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch

import trtdsl
from trtdsl import WeightError, ops
from trtdsl import weights as W

from ._samples import assert_same, float8_tensors, map_of, mapped, sample


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


# ------------------------------------------------- a folder (sharded checkpoints: test_shards.py)
def test_directory_with_one_safetensors_file_loads_it(tmp_path, rng):
    from safetensors.numpy import save_file

    data = sample(rng)
    save_file(data, str(tmp_path / "model.safetensors"))
    assert W.load(tmp_path).format == "safetensors"
    assert_same(W.load(tmp_path), data)
    save_file(data, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightError, match=r"directory with 2 \*\.safetensors files \(model.safetensors, other"):
        W.load(tmp_path)


# -------------------------------------------------------------- float8
@pytest.mark.parametrize("mmap", [True, False])
def test_safetensors_float8_from_torch_bit_for_bit(tmp_path, mmap):
    from safetensors.torch import save_file

    tensors = float8_tensors()
    path = tmp_path / "fp8.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    w = W.load(path, mmap=mmap)
    for name, t in tensors.items():
        got = w[name]
        kind = str(t.dtype).removeprefix("torch.")
        assert got.dtype.name == w.dtype(name).name == kind and got.dtype is w.dtype(name), name
        assert got.shape == w.shape(name) == tuple(t.shape), name
        if t.dtype == torch.float32:
            np.testing.assert_array_equal(got, t.numpy())
            continue
        np.testing.assert_array_equal(got.view(np.uint8), t.contiguous().view(torch.uint8).numpy(), err_msg=name)
        assert got.dtype == getattr(ml_dtypes, kind)
        mm = map_of(got)
        if mmap:  # a view of the file's map: no copy
            assert mm is not None and Path(mm.filename) == path and np.shares_memory(got, mm), name
        else:
            assert mm is None, name


@pytest.mark.parametrize("mmap", [True, False])
def test_safetensors_float8_from_numpy_ml_dtypes(tmp_path, mmap, rng):
    from safetensors.numpy import save_file

    data = {
        "w": (rng.standard_normal((3, 7)) * 10).astype(ml_dtypes.float8_e4m3fn),
        "g": rng.standard_normal(5).astype(ml_dtypes.float8_e5m2),
        "s": np.exp2(rng.integers(-10, 10, 4)).astype(ml_dtypes.float8_e8m0fnu),
        "scale": np.float32([0.5]),
    }
    save_file(data, str(tmp_path / "w.safetensors"))
    w = W.load(tmp_path / "w.safetensors", mmap=mmap)
    for name, v in data.items():
        assert w[name].dtype == v.dtype and w[name].shape == v.shape, name
        np.testing.assert_array_equal(w[name].view(np.uint8), v.view(np.uint8), err_msg=name)


def _craft(path, code, shape, nbytes):
    header = json.dumps({"w": {"dtype": code, "shape": shape, "data_offsets": [0, nbytes]}}).encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(nbytes))
    return path


def test_safetensors_fp4_written_by_torch_is_refused_by_name(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2, 4, dtype=torch.float4_e2m1fn_x2)}, str(tmp_path / "fp4.safetensors"))
    with pytest.raises(
        WeightError,
        match=r"fp4.safetensors: tensor 'w' has dtype 'F4' \(a sub-byte type packed several to a byte\), which "
        r"trtdsl cannot read; it reads F64, F32, .*BF16, F8_E4M3, F8_E5M2, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ$",
    ):
        W.load(tmp_path / "fp4.safetensors")


@pytest.mark.parametrize(
    ("code", "why"), [("F6_E2M3", r" \(a sub-byte type packed several to a byte\)"), ("F9_X", ""), (7, "")]
)
def test_safetensors_dtypes_trtdsl_cannot_read_are_named(tmp_path, code, why):
    # Checked before the library reads the header: it would refuse 'F9_X' as "unknown variant" without the tensor.
    with pytest.raises(
        WeightError, match=rf"x.safetensors: tensor 'w' has dtype '{code}'{why}, which trtdsl cannot read; it reads F64"
    ):
        W.load(_craft(tmp_path / "x.safetensors", code, [3], 3))


def test_safetensors_float8_byte_range_must_fit_one_byte_per_value(tmp_path):
    with pytest.raises(WeightError, match=r"tensor 'w': byte range 0..7 does not fit shape \(2, 3\) F8_E4M3"):
        W.load(_craft(tmp_path / "x.safetensors", "F8_E4M3", [2, 3], 7))
    w = W.load(_craft(tmp_path / "ok.safetensors", "F8_E4M3", [2, 3], 6))
    assert w["w"].dtype == ml_dtypes.float8_e4m3fn and w["w"].shape == (2, 3)


# An FP8 weight-only linear layer, as an FP8 checkpoint holds it: float8_e4m3fn weights, float32 scales
# per tensor, per output channel, or per 2-D block (DeepSeek-V3's weight_scale_inv, which multiplies).
@pytest.mark.parametrize("scaling", ["tensor", "channel", "block"])
def test_fp8_weight_only_linear_from_a_safetensors_checkpoint(tmp_path, scaling):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(1)
    n, k = 8, 12
    scale = {
        "tensor": torch.tensor(0.01),
        "channel": torch.rand(n, generator=g) * 0.02 + 0.005,
        "block": torch.rand(n // 4, k // 4, generator=g) * 0.02 + 0.005,
    }[scaling]
    full = scale if scaling != "block" else scale.repeat_interleave(4, 0).repeat_interleave(4, 1)
    weight = torch.randn(n, k, generator=g) * 0.02 / (full if scaling != "channel" else full[:, None])
    wq = weight.to(torch.float8_e4m3fn)
    save_file({"fc.weight": wq, "fc.weight_scale": scale}, str(tmp_path / "model.safetensors"))

    w = W.load(tmp_path / "model.safetensors")
    net = trtdsl.Network("fp8_linear")
    x = net.input("x", "float32", (3, k))
    q = net.constant(w["fc.weight"], "fc.weight")
    assert q.dtype == "fp8" and np.shares_memory(net.narrow_constants["fc.weight"], w["fc.weight"])  # no copy
    options = {"tensor": {}, "channel": {"axis": 0}, "block": {"block_shape": (4, 4)}}[scaling]
    wd = ops.dequantize(q, w["fc.weight_scale"], dtype="float32", **options)
    net.output(ops.matmul(x, wd, transpose_b=True), "y")
    xs = np.random.default_rng(2).standard_normal((3, k)).astype(np.float32)
    got = trtdsl.reference.run(net, {"x": xs})["y"]

    s = full if scaling != "channel" else full[:, None]
    want = torch.from_numpy(xs).double() @ (wq.double() * s.double()).T
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
