"""WeightStore: views, renaming, take() checks, use tracking, summaries and messages."""

from __future__ import annotations

import logging

import ml_dtypes
import numpy as np
import pytest

from trtdsl import ShapeError, WeightError
from trtdsl import weights as W
from trtdsl.weights.store import canonical


@pytest.fixture
def store(tmp_path, rng):
    data = {
        "module.stem.conv1.kernel": rng.standard_normal((7, 7, 3, 64)).astype(np.float32),
        "module.stem.bn1.weight": np.ones(64, np.float32),
        "module.layer1.0.conv1.weight": rng.standard_normal((64, 64, 3, 3)).astype(np.float32),
        "module.layer1.0.conv1.bias": np.zeros(64, np.float16),
        "module.layer1.1.conv1.weight": rng.standard_normal((64, 64, 3, 3)).astype(np.float32),
        "module.fc.weight": rng.standard_normal((10, 64)).astype(np.float32),
        "module.dw.kernel": rng.standard_normal((3, 3, 8, 2)).astype(np.float32),
    }
    np.savez(tmp_path / "resnet.npz", **data)
    return W.load(tmp_path / "resnet.npz").rename(strip_prefix="module."), data


def test_missing_key_gives_near_matches_and_key_count(store):
    w, _ = store
    with pytest.raises(
        WeightError,
        match=r"no weight 'stem.conv1.weight' in resnet.npz \(7 keys\)\. Did you mean 'stem.conv1.kernel'\?",
    ):
        w["stem.conv1.weight"]
    with pytest.raises(WeightError, match=r"^conv2d 'stem.conv1': no weight 'stem.conv1.weight'"):
        w.take("stem.conv1.weight", layer="conv2d 'stem.conv1'")
    with pytest.raises(
        WeightError,
        match=r"no weight 'conv2.weight' in resnet.npz scope 'layer1.0' \(2 keys\)\. Did you mean 'conv1.weight'",
    ):
        w.scope("layer1.0")["conv2.weight"]


def test_scope_views_are_relative_and_nest(store):
    w, data = store
    block = w.scope("layer1")
    assert sorted(block) == ["0.conv1.bias", "0.conv1.weight", "1.conv1.weight"]
    inner = block.scope("0")
    assert sorted(inner) == ["conv1.bias", "conv1.weight"]
    np.testing.assert_array_equal(inner["conv1.weight"], data["module.layer1.0.conv1.weight"])
    assert "layer1.0" not in repr(w.scope("layer1.1"))
    with pytest.raises(
        WeightError,
        match=r"no weight in resnet.npz lies under 'layer2'; top-level names: dw, fc, layer1, stem\. Did you mean 'layer1'\?",
    ):
        w.scope("layer2")


def test_rename_regex_prefix_and_collisions(store):
    w, data = store
    r = w.rename(r"^layer1\.(\d)\.", r"block\1.")
    assert "block0.conv1.weight" in r and "layer1.0.conv1.weight" not in r
    np.testing.assert_array_equal(r["block1.conv1.weight"], data["module.layer1.1.conv1.weight"])
    with pytest.raises(WeightError, match=r"maps two weights to 'x'"):
        w.rename(r"^.+", "x")


def test_take_checks_shape_with_wildcards_and_dtype(store):
    w, data = store
    got = w.take("layer1.0.conv1.weight", shape=(64, None, 3, -1), dtype="float32")
    np.testing.assert_array_equal(got, data["module.layer1.0.conv1.weight"])
    with pytest.raises(
        WeightError,
        match=r"weight 'layer1.0.conv1.bias' in resnet.npz has dtype float16, expected float32; convert it with \.astype\('float32'\)",
    ):
        w.take("layer1.0.conv1.bias", dtype=np.float32)


@pytest.mark.parametrize(
    ("name", "shape", "hint"),
    [
        (
            "stem.conv1.kernel",
            (64, 3, 7, 7),
            r"looks like a Keras HWIO kernel .*use trtdsl\.weights\.layout\.keras_conv\(kernel\)",
        ),
        ("dw.kernel", (16, 1, 3, 3), r"looks like a Keras depthwise kernel .*layout\.keras_depthwise\(kernel\)"),
        (
            "fc.weight",
            (64, 10),
            r"looks like a Keras Dense kernel \(in, out\); use trtdsl\.weights\.layout\.keras_dense",
        ),
        ("stem.conv1.kernel", (3, 7, 64, 7), r"Same sizes in another order: a transposed layout\?"),
        ("fc.weight", (640,), r"Same number of elements: reshape it"),
    ],
)
def test_shape_mismatch_names_layer_expected_received_and_layout(store, name, shape, hint):
    w, _ = store
    got = w.shape(name)
    pattern = rf"^conv 'net\.x': weight '{name}' in resnet.npz has shape {re_tuple(got)}, expected {re_tuple(shape)}\. .*{hint}"
    for err in (WeightError, ShapeError):  # both families catch it
        with pytest.raises(err, match=pattern):
            w.take(name, shape=shape, layer="conv 'net.x'")


def re_tuple(t):
    return str(tuple(t)).replace("(", r"\(").replace(")", r"\)")


def test_unused_check_all_used_and_shared_record(store):
    w, _ = store
    assert len(w.unused()) == 7
    w.scope("layer1.0").take("conv1.weight")
    w["fc.weight"]  # an explicit read by name is a use
    assert "layer1.0.conv1.weight" not in w.unused() and "fc.weight" not in w.unused()
    assert w.scope("layer1.0").unused() == ["conv1.bias"]
    with pytest.raises(
        WeightError,
        match=r"5 of 7 weights in resnet.npz were not used by the build: stem.conv1 \(1: kernel\); stem.bn1 "
        r"\(1: weight\); layer1.0.conv1 \(1: bias\); layer1.1.conv1 \(1: weight\); dw \(1: kernel\)\. Read each",
    ):
        w.check_all_used()
    for name in w.unused():
        w.take(name)
    w.check_all_used()


def test_strict_mode_finish_hook_and_with_block(tmp_path, caplog):
    np.savez(tmp_path / "m.npz", a=np.ones(2), b=np.ones(3))
    with caplog.at_level(logging.INFO, logger="trtdsl.weights"):
        W.load(tmp_path / "m.npz").finish()  # not strict: a log line
    assert "1 weights" not in caplog.text and "2 weights in m.npz were not used" in caplog.text
    half = W.load(tmp_path / "m.npz", strict=True)
    half.take("a")
    with pytest.raises(WeightError, match=r"1 of 2 weights in m.npz were not used by build 'mlp': b"):
        half.finish("build 'mlp'")
    strict = W.load(tmp_path / "m.npz", strict=True)
    strict.take("a")
    with pytest.raises(WeightError, match=r"1 of 2 weights in m.npz were not used by the build: b"):
        with strict:
            pass
    with W.load(tmp_path / "m.npz", strict=True) as ok:
        ok.take("a"), ok.take("b")


def test_arrays_are_read_only_and_cached(store):
    w, _ = store
    a = w["fc.weight"]
    assert a is w.take("fc.weight")
    with pytest.raises(ValueError, match="read-only"):
        a[0, 0] = 1.0
    with pytest.raises(TypeError):
        w["fc.weight"] = a  # a Mapping, not a dict


def test_summary_and_repr(store):
    w, _ = store
    w.take("fc.weight")
    text = w.summary(names=True)
    assert text.splitlines()[0] == "resnet.npz (npz): 7 weights, 336.1 KB"
    assert "float16:      1 weights      128 B" in text and "float32:      6 weights" in text
    assert "used: 1 of 7" in text
    assert "* fc.weight" in text and "(10, 64)" in text
    assert repr(w) == "WeightStore('resnet.npz', 7 weights, 336.1 KB, float16x1, float32x6)"
    assert repr(w.scope("stem")) == "WeightStore(\"resnet.npz scope 'stem'\", 2 weights, 37.9 KB, float32x2)"


def test_read_failures_become_weight_errors(tmp_path):
    def broken():
        raise OSError("Can't read data (inflate() failed)")

    entry = W.Entry((2,), np.dtype(np.float32), broken)
    w = W.WeightStore.from_entries(tmp_path / "x.h5", "h5", {"a": entry})
    with pytest.raises(
        WeightError, match=r"x.h5: cannot read weight 'a': OSError: Can't read data \(inflate\(\) failed\)"
    ):
        w["a"]


def test_a_block_view_has_every_field_a_full_view_has():
    # block() builds its lazy views without __init__; a field added to one must reach the other.
    w = W.WeightStore.from_mapping({"layer1.conv.weight": np.ones((2, 2), np.float32)})
    view = w.block("layer1", "block").block("conv", "conv_bn_act")
    assert set(vars(view)) == set(vars(w))
    assert view.take("weight", (2, 2)).dtype == np.float32


# ------------------------------------------------- narrow (ml_dtypes) types
NARROW = [
    ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, ml_dtypes.float8_e8m0fnu, ml_dtypes.float8_e4m3fnuz,
    ml_dtypes.bfloat16, ml_dtypes.int4, ml_dtypes.float4_e2m1fn,
]  # fmt: skip


@pytest.mark.parametrize("dtype", NARROW, ids=lambda t: np.dtype(t).name)
def test_ml_dtypes_arrays_keep_their_type(dtype):
    # '.str' of an ml_dtypes dtype is '<V1': rebuilt from it, the store would hand out raw void bytes.
    a = np.arange(6).astype(np.float32).astype(dtype).reshape(2, 3)
    assert canonical(a.dtype) is a.dtype and canonical(a.dtype.newbyteorder("<")) is a.dtype
    w = W.WeightStore.from_mapping({"a": a})
    assert w.dtype("a") is a.dtype and w["a"].dtype is a.dtype
    got = w.take("a", shape=(2, None), dtype=dtype)
    assert got.dtype is a.dtype and np.shares_memory(got, a) and not got.flags.writeable
    np.testing.assert_array_equal(got.view(np.uint8), a.view(np.uint8))
    with pytest.raises(WeightError, match=r"weight 'a' in weights has shape \(2, 3\), expected \(3, 2\)"):
        w.take("a", shape=(3, 2))


def test_block_views_widen_wide_floats_and_refuse_quantized_ones():
    w = W.WeightStore.from_mapping(
        {
            "fc.weight": np.ones((3, 4), ml_dtypes.float8_e4m3fn),
            "fc.weight_scale": np.float32(0.5),
            "fc.bias": np.ones(3, ml_dtypes.bfloat16),
            "fc.half": np.ones(3, np.float16),
            "fc.e5m2": np.ones(3, ml_dtypes.float8_e5m2),  # NumPy kind 'f', one byte: quantized all the same
            "fc.ids": np.ones(3, ml_dtypes.int4),
        }
    )
    view = w.block("fc", "linear", float32=True)
    assert view.take("bias").dtype == np.float32 and view.take("half").dtype == np.float32
    assert view.take("ids").dtype == ml_dtypes.int4  # integers are never widened
    for name in ("weight", "e5m2"):
        with pytest.raises(
            WeightError,
            match=rf"linear 'fc': weight 'fc.{name}' is float8_e\w+, a quantized weight whose scale is another weight "
            r"\(this block holds 'fc.weight_scale'\); this block computes in float32 and does not dequantize\. Build "
            rf"the layer from the file's arrays instead: ops.dequantize\(net.constant\(w\['fc.{name}'\]\), scale\)",
        ):
            view.take(name)
    assert "fc.weight" in w.unused()  # a refused read is not a use
    # Outside blocks it comes out as it is, a view of the array held.
    assert w["fc.weight"].dtype == ml_dtypes.float8_e4m3fn
    assert w.block("fc", "mine").take("weight").dtype == ml_dtypes.float8_e4m3fn
