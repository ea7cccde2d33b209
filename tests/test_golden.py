"""trtdsl.golden: files, tolerance reports, assert_golden and layerwise_diff.

Expected numbers come from NumPy written in the test (np.isclose, explicit
error formulas) or from perturbations whose size is known by construction.
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
import trtdsl.reference
from trtdsl import golden
from trtdsl.errors import GoldenMismatch, TrtdslError
from trtdsl.golden import Tolerance

# ------------------------------------------------------------------ compare


def test_known_perturbation_gives_known_errors():
    expected = np.linspace(1.0, 2.0, 200)  # float64: the perturbation stays exact
    actual = expected.copy()
    hit = [3, 50, 51, 120, 150, 170, 199]
    actual[hit] += 1e-3
    r = golden.compare({"y": actual}, {"y": expected}, Tolerance(atol=1e-5, rtol=0.0))["y"]
    assert r.status == "mismatch"
    assert r.mismatches == 7 and r.size == 200
    assert r.mismatch_percent == pytest.approx(3.5)
    assert r.max_abs == pytest.approx(1e-3, rel=1e-9)
    assert r.mean_abs == pytest.approx(7e-3 / 200, rel=1e-9)
    assert r.max_rel == pytest.approx(np.max(1e-3 / expected[hit]), rel=1e-9)
    assert r.mean_rel == pytest.approx(np.sum(1e-3 / expected[hit]) / 200, rel=1e-9)
    assert r.worst_index == (3,)  # same absolute error everywhere; smallest |e| is the worst relative to the bound


def test_relative_error_skips_zero_expected():
    r = golden.compare({"y": np.array([1.1, 2.0, 4.0, 0.5])}, {"y": np.array([1.0, 2.0, 4.0, 0.0])}, Tolerance(1, 1))
    assert r["y"].max_rel == pytest.approx(0.1)
    assert r["y"].mean_rel == pytest.approx(0.1 / 3)
    assert r["y"].max_abs == pytest.approx(0.5)
    assert r.ok


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("rtol", [0.0, 1e-4, 1e-2])
@pytest.mark.parametrize("atol", [0.0, 1e-5])
def test_mismatch_count_matches_isclose(dtype, rtol, atol, rng):
    e = rng.normal(size=(4, 5, 6)).astype(dtype)
    a = (e + rng.normal(scale=1e-3, size=e.shape)).astype(dtype)
    a.flat[::17] = e.flat[::17]
    r = golden.compare({"t": a}, {"t": e}, Tolerance(atol, rtol))["t"]
    want = np.count_nonzero(~np.isclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol))
    assert r.mismatches == want
    assert r.mismatch_percent == pytest.approx(100 * want / e.size)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
@pytest.mark.parametrize("rtol", [0.0, 1e-4, 1e-2])
def test_minimal_atol_passes_and_smaller_fails(dtype, rtol, rng):
    e = rng.normal(size=300).astype(dtype)
    a = (e * (1 + rng.normal(scale=1e-2, size=e.shape)) + rng.normal(scale=1e-4, size=e.shape)).astype(dtype)
    r = golden.compare({"t": a}, {"t": e}, Tolerance(1e-6, rtol))["t"]
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    assert r.min_atol == pytest.approx(np.max(np.abs(a64 - e64) - rtol * np.abs(e64)), rel=1e-9)
    assert golden.compare({"t": a}, {"t": e}, Tolerance(r.min_atol, rtol)).ok
    assert not golden.compare({"t": a}, {"t": e}, Tolerance(r.min_atol * (1 - 1e-7), rtol)).ok


@pytest.mark.parametrize("atol", [0.0, 1e-5, 1e-3])
def test_minimal_rtol_passes_and_smaller_fails(atol, rng):
    e = rng.uniform(0.5, 2.0, size=300) * rng.choice([-1, 1], size=300)
    a = e * (1 + rng.normal(scale=1e-3, size=e.shape))
    r = golden.compare({"t": a}, {"t": e}, Tolerance(atol, 0.0))["t"]
    assert r.min_rtol == pytest.approx(np.max((np.abs(a - e) - atol) / np.abs(e)), rel=1e-9)
    assert golden.compare({"t": a}, {"t": e}, Tolerance(atol, r.min_rtol)).ok
    assert not golden.compare({"t": a}, {"t": e}, Tolerance(atol, r.min_rtol * (1 - 1e-7))).ok


def test_minimal_rtol_is_infinite_when_expected_zero_differs():
    r = golden.compare({"t": np.array([1.0, 1e-3])}, {"t": np.array([1.0, 0.0])}, Tolerance(1e-5, 0))["t"]
    assert r.min_rtol == np.inf
    assert r.min_atol == pytest.approx(1e-3)


def test_nan_and_inf_handling():
    e = np.array([np.nan, 1.0, np.inf, -np.inf, 2.0])
    same = golden.compare({"t": e.copy()}, {"t": e})
    assert same.ok and same["t"].max_abs == 0
    a = np.array([np.nan, np.nan, np.inf, np.inf, 2.0])  # NaN vs 1.0, and +inf vs -inf, mismatch
    r = golden.compare({"t": a}, {"t": e}, Tolerance(1e6, 1e6))["t"]
    assert r.mismatches == 2
    assert r.min_atol == np.inf and r.min_rtol == np.inf
    assert r.max_abs == np.inf


def test_structural_failures():
    e = {"a": np.zeros((2, 3), np.float32), "b": np.zeros(4, np.float32), "c": np.zeros(2, np.float32)}
    a = {"a": np.zeros((3, 2), np.float32), "b": np.zeros(4, np.float16), "d": np.zeros(1)}
    r = golden.compare(a, e)
    assert {n: x.status for n, x in r.outputs.items()} == {"a": "shape", "b": "dtype", "c": "missing", "d": "extra"}
    assert not r.ok and len(r.failures) == 4
    assert golden.compare({"b": a["b"]}, {"b": e["b"]}, check_dtype=False).ok


def test_default_tolerances_by_precision_and_overrides():
    e = np.ones(10, np.float32)
    a = e + np.float32(5e-3)
    assert not golden.compare({"y": a}, {"y": e}).ok  # float32 defaults
    assert golden.compare({"y": a}, {"y": e}, "float16").ok  # 5e-3 <= 1e-3 + 1e-2
    assert golden.compare({"y": a}, {"y": e}, "fp16")["y"].tolerance == Tolerance(atol=1e-3, rtol=1e-2)
    assert golden.compare({"y": a}, {"y": e}, "bf16")["y"].tolerance == Tolerance(atol=1e-2, rtol=5e-2)
    assert golden.compare({"y": a}, {"y": e}, "int8")["y"].tolerance == Tolerance(atol=5e-2, rtol=1e-1)
    assert golden.compare({"y": a}, {"y": e}, overrides={"y": Tolerance(6e-3, 0)}).ok
    # float16 arrays get float16 defaults when no tolerance is given
    assert golden.compare({"y": a.astype(np.float16)}, {"y": e.astype(np.float16)}).ok


def test_integer_outputs_are_exact_by_default():
    e = {"idx": np.array([1, 2, 3]), "y": np.zeros(3, np.float32)}
    r = golden.compare({"idx": np.array([1, 2, 4]), "y": e["y"]}, e, "int8")
    assert r["idx"].status == "mismatch" and r["idx"].tolerance == Tolerance(0, 0)
    assert r["y"].ok


def test_unknown_override_is_an_error():
    with pytest.raises(TrtdslError, match=r"overrides name unknown outputs \['logit'\]; outputs are \['logits'\]"):
        golden.compare({"logits": np.ones(1)}, {"logits": np.ones(1)}, overrides={"logit": Tolerance(1, 1)})


def test_report_table_is_pinned():
    e = {"logits": np.array([1.0, 2.0, 4.0, 8.0], np.float32), "idx": np.array([3])}
    a = {"logits": np.array([1.0, 2.0, 4.0, 8.5], np.float32), "idx": np.array([3])}
    text = str(golden.compare(a, e))
    assert text == (
        "output  status    shape  max abs  mean abs  max rel  mean rel  mismatch  atol   rtol    min atol  min rtol\n"
        "------  --------  -----  -------  --------  -------  --------  --------  -----  ------  --------  --------\n"
        "logits  mismatch  4      0.5      0.125     0.0625   0.0156    25%       1e-05  0.0001  0.499     0.0625\n"
        "idx     ok        1      0        0         0        0         0%        0      0       0         0\n"
        "1 of 2 outputs FAIL\n"
        "logits: 1 of 4 elements (25%) exceed atol=1e-05 rtol=0.0001; worst at index (3,); "
        "would pass with atol>=0.499 (rtol=0.0001) or rtol>=0.0625 (atol=1e-05)"
    )


# -------------------------------------------------------------------- files


def test_record_load_round_trip(tmp_path):
    outs = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "f16": np.array([0.5, -1.25], np.float16),
        "i64": np.array([[1, -2]], np.int64),
        "mask": np.array([True, False]),
        "scalar": np.float32(3.5),
        "layer1.0.conv1.out": np.zeros((1, 2, 2, 2), np.float32),
    }
    meta = {"precision": "float16", "model": "resnet", "shape": [1, 3, 224, 224]}
    path = golden.record(outs, tmp_path / "sub" / "golden.bin", metadata=meta)
    assert path == tmp_path / "sub" / "golden.bin" and path.exists()  # no '.npz' appended
    loaded, m = golden.load(path)
    assert m == meta
    assert list(loaded) == list(outs)
    for k, v in outs.items():
        assert loaded[k].dtype == np.asarray(v).dtype and loaded[k].shape == np.shape(v)
        np.testing.assert_array_equal(loaded[k], v)
    with np.load(path, allow_pickle=False) as raw:  # plain NumPy reads it without pickling
        assert set(raw.files) == {*outs, "__metadata__"}


def test_load_refuses_pickled_npz(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, y=np.ones(2), obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(TrtdslError, match=r"array 'obj' is a pickled object array; .* trtdsl does not unpickle"):
        golden.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(TrtdslError, match=r"golden file '.*nope.npz' does not exist"):
        golden.load(tmp_path / "nope.npz")


def test_record_refuses_bad_values(tmp_path):
    with pytest.raises(
        TrtdslError, match=r"output 'o' has dtype object; golden files hold numeric or bool arrays only"
    ):
        golden.record({"o": np.array([None])}, tmp_path / "a.npz")
    with pytest.raises(TrtdslError, match="'__metadata__' is reserved"):
        golden.record({"__metadata__": np.ones(1)}, tmp_path / "a.npz")
    with pytest.raises(TrtdslError, match="metadata is not JSON-serializable"):
        golden.record({"y": np.ones(1)}, tmp_path / "a.npz", metadata={"w": np.ones(2)})


def test_compare_files_uses_recorded_precision(tmp_path):
    golden.record({"y": np.ones(3, np.float32)}, tmp_path / "e.npz", metadata={"precision": "float16"})
    golden.record({"y": np.full(3, 1.005, np.float32)}, tmp_path / "a.npz")
    assert golden.compare_files(tmp_path / "a.npz", tmp_path / "e.npz").ok
    assert not golden.compare_files(tmp_path / "a.npz", tmp_path / "e.npz", "float32").ok


def test_compare_takes_a_golden_file_for_either_side(tmp_path):
    golden.record({"y": np.ones(3, np.float32)}, tmp_path / "e.npz", metadata={"precision": "float16"})
    outs = {"y": np.full(3, 1.005, np.float32)}
    assert golden.compare(outs, tmp_path / "e.npz").ok  # the file's float16 tolerance
    assert not golden.compare(outs, str(tmp_path / "e.npz"), "float32").ok
    golden.record(outs, tmp_path / "a.npz")
    assert golden.compare(tmp_path / "a.npz", {"y": np.ones(3, np.float32)}, "float16").ok
    with pytest.raises(TrtdslError, match=r"compare: expected must be a dict of output name -> array or the path"):
        golden.compare(outs, 42)


# ------------------------------------------------------------ assert_golden


def test_assert_golden_passes_and_fails_with_pinned_message(tmp_path):
    path = tmp_path / "g.npz"
    golden.record({"y": np.array([1.0, 2.0], np.float32)}, path)
    report = golden.assert_golden({"y": np.array([1.0, 2.00001], np.float32)}, path)
    assert report.ok
    with pytest.raises(GoldenMismatch) as info:
        golden.assert_golden({"y": np.array([1.0, 2.5], np.float32)}, path)
    msg = str(info.value)
    assert msg.startswith(f"outputs differ from golden file {str(path)!r}:\noutput  status    shape")
    assert "y       mismatch  2      0.5      0.25      0.25" in msg
    assert msg.endswith(
        "1 of 1 outputs FAIL\ny: 1 of 2 elements (50%) exceed atol=1e-05 rtol=0.0001; worst at index (1,); "
        "would pass with atol>=0.5 (rtol=0.0001) or rtol>=0.25 (atol=1e-05)"
    )
    assert isinstance(info.value, AssertionError)  # pytest shows it as a plain assertion failure


def test_assert_golden_against_dict():
    golden.assert_golden({"y": np.ones(2)}, {"y": np.ones(2)})
    with pytest.raises(GoldenMismatch, match=r"(?s)outputs differ from the given golden outputs:\n.*\ny +missing"):
        golden.assert_golden({"z": np.ones(2)}, {"y": np.ones(2)})
    with pytest.raises(TrtdslError, match="needs a golden file path, not a dict"):
        golden.assert_golden({"y": np.ones(2)}, {"y": np.ones(2)}, update=True)


def test_assert_golden_update_writes_file(tmp_path, monkeypatch):
    path = tmp_path / "g.npz"
    with pytest.raises(GoldenMismatch, match=r"does not exist; run with TRTDSL_UPDATE_GOLDEN=1"):
        golden.assert_golden({"y": np.ones(2)}, path)
    golden.assert_golden({"y": np.ones(2)}, path, update=True, metadata={"precision": "float16"})
    assert golden.load(path)[1] == {"precision": "float16"}
    golden.assert_golden({"y": np.full(2, 1.005)}, path)  # recorded precision float16 sets the tolerance
    monkeypatch.setenv("TRTDSL_UPDATE_GOLDEN", "1")
    golden.assert_golden({"y": np.full(2, 7.0)}, path)
    np.testing.assert_array_equal(golden.load(path)[0]["y"], [7.0, 7.0])
    monkeypatch.setenv("TRTDSL_UPDATE_GOLDEN", "0")
    with pytest.raises(GoldenMismatch):
        golden.assert_golden({"y": np.ones(2)}, path)


# ----------------------------------------------------------- layerwise_diff


def _chain(dtype: str = "float32", scale: float = 0.5, unary: str = "exp") -> trtdsl.Network:
    from trtdsl.ops import elementwise as ew

    net = trtdsl.Network("chain", dtype=dtype)
    x = net.input("x", "float32", (2, 3))
    with net.scope("block"):
        h = ew.mul(x, np.float32(scale), name="scale")
        h = getattr(ew, unary)(h, name="f")
        h = ew.add(h, np.arange(6, dtype=np.float32).reshape(2, 3), name="shift")
        h = ew.mul(h, h, name="square")
    net.output(h, "y")
    return net


@pytest.fixture
def feeds(rng):
    return {"x": rng.normal(size=(2, 3)).astype(np.float32)}


def test_layerwise_no_divergence_for_identical_networks(trt, feeds):
    assert golden.layerwise_diff(_chain(), feeds, _chain()) is None


def test_layerwise_finds_changed_constant(trt, feeds):
    d = golden.layerwise_diff(_chain(scale=0.5), feeds, _chain(scale=0.75))
    assert d is not None
    assert d.layer_type == "constant" and d.layer_name.startswith("block.") and d.layer_index == 0
    assert d.report.max_abs == pytest.approx(0.25)
    assert d.compared == ["x"]


def test_layerwise_finds_changed_layer_after_matching_ones(trt, feeds):
    d = golden.layerwise_diff(_chain(unary="exp"), feeds, _chain(unary="sin"))
    assert (d.tensor, d.layer_name, d.layer_type) == ("block.f.out", "block.f", "unary")
    h = feeds["x"].astype(np.float64) * 0.5
    assert d.report.max_abs == pytest.approx(np.max(np.abs(np.exp(h) - np.sin(h))), rel=1e-5)
    assert "block.scale.out" in d.compared
    assert str(d).startswith("first divergence at layer 2 'block.f' (unary), tensor 'block.f.out'")


def test_layerwise_accepts_precomputed_captures(trt, feeds):
    net = _chain()
    ref = trtdsl.reference.run(_chain(), feeds, capture="all")
    ref["block.shift.out"] = ref["block.shift.out"] + np.float32(1e-2)
    d = golden.layerwise_diff(net, feeds, ref)
    assert d.tensor == "block.shift.out" and d.report.max_abs == pytest.approx(1e-2, rel=1e-3)
    mine = trtdsl.reference.run(net, feeds, capture="all")
    d2 = golden.layerwise_diff(net, feeds, ref, captured=mine)
    assert d2.tensor == "block.shift.out"


def test_layerwise_fp16_policy_against_fp32(trt, feeds):
    fp16, fp32 = _chain("float16"), _chain("float32")
    # At fp16 tolerances (the default for half tensors and everything downstream) the policies agree ...
    assert golden.layerwise_diff(fp16, feeds, fp32) is None
    # ... at fp32 tolerance the first half-precision rounding is flagged; the inserted
    # input cast 'x.to_float16' exists only in the fp16 network and is skipped.
    d = golden.layerwise_diff(fp16, feeds, fp32, tolerance="float32")
    assert d.tensor == "block.scale.out"
    want = np.max(np.abs((feeds["x"] * np.float32(0.5)).astype(np.float16).astype(np.float64) - feeds["x"] * 0.5))
    assert d.report.max_abs == pytest.approx(want, rel=1e-6)
    # an override on that tensor moves the divergence downstream
    d = golden.layerwise_diff(fp16, feeds, fp32, tolerance="float32", overrides={"block.scale.out": Tolerance(1, 1)})
    assert d.tensor == "block.f.out"


def test_layerwise_walks_producers_before_readers(trt):
    """TensorRT allows layers out of topological order (its ONNX parser emits such networks)."""
    from trtdsl import _trt

    builder = trt.Builder(_trt.logger())
    d = builder.create_network(0)
    x = d.add_input("x", trt.float32, (3,))
    late_reader = d.add_unary(x, trt.UnaryOperation.EXP)  # layer 0, rewired below to read layer 1
    producer = d.add_unary(x, trt.UnaryOperation.ABS)  # layer 1
    producer.get_output(0).name, late_reader.get_output(0).name = "a", "e"
    late_reader.set_input(0, producer.get_output(0))
    d.mark_output(late_reader.get_output(0))
    xs = np.array([-1.0, 0.5, 2.0], np.float32)
    mine = {"x": xs, "a": np.abs(xs), "e": np.exp(np.abs(xs))}
    theirs = {"x": xs, "a": np.abs(xs) + 1, "e": np.exp(np.abs(xs) + 1)}
    div = golden.layerwise_diff(d, {"x": xs}, theirs, captured=mine)
    assert (div.tensor, div.layer_index) == ("a", 1)
    assert div.report.max_abs == pytest.approx(1.0)


@pytest.mark.parametrize("atol,rtol", [(float("nan"), 0.0), (0.0, float("nan")), (-1e-3, 0.0), (0.0, -1.0),
                                       ("0.1", 0.0), (True, 0.0)])  # fmt: skip
def test_tolerance_refuses_nan_negative_and_non_numbers(atol, rtol):
    with pytest.raises(TrtdslError, match=r"tolerance (atol|rtol) must be a number >= 0, got"):
        Tolerance(atol=atol, rtol=rtol)


def test_golden_mismatch_is_exported_from_golden():
    assert golden.GoldenMismatch is GoldenMismatch


def test_report_reprs_are_short():
    r = golden.compare({"y": np.arange(1000.0)}, {"y": np.arange(1000.0) + 1}, Tolerance(atol=0.5, rtol=0.0))
    assert repr(r) == "Report(ok=False, outputs=['y'], failing=['y'])"
    assert repr(r["y"]) == (
        "OutputReport('y', mismatch, shape=(1000,), max_abs=1, 1000 of 1000 elements exceed atol=0.5 rtol=0)"
    )


@pytest.mark.parametrize(
    "content,pattern",
    [
        (b"", r"is not a readable \.npz"),
        (b"PK\x03\x04garbage", r"is not a readable \.npz"),
        (b"\x93NUMPY\x01\x00", r"is not a readable \.npz"),
    ],
    ids=["empty", "zip-garbage", "npy-truncated"],
)
def test_golden_load_refuses_damaged_files(tmp_path, content, pattern):
    (tmp_path / "g.npz").write_bytes(content)
    with pytest.raises(TrtdslError, match=pattern):
        golden.load(tmp_path / "g.npz")
    with pytest.raises(TrtdslError, match=r"is not a file"):
        golden.load(tmp_path)


def test_narrow_outputs_record_load_and_compare_with_their_types_tolerance(tmp_path):
    import ml_dtypes

    y = np.array([1.0, 2.5, -3.0], np.float32).astype(ml_dtypes.bfloat16)
    q = np.array([7, -8, 0], np.int8).astype(ml_dtypes.int4)
    path = golden.record({"y": y, "q": q}, tmp_path / "g.npz")
    back, _ = golden.load(path)
    assert back["y"].dtype == ml_dtypes.bfloat16 and back["q"].dtype == ml_dtypes.int4
    np.testing.assert_array_equal(back["y"].astype(np.float32), y.astype(np.float32))
    np.testing.assert_array_equal(back["q"].astype(np.int8), [7, -8, 0])
    near = (y.astype(np.float32) * (1 + 2**-7)).astype(ml_dtypes.bfloat16)  # one bfloat16 ulp off
    assert golden.compare({"y": near, "q": q}, back).ok  # bfloat16's default tolerance
    assert not golden.compare({"y": y, "q": (q.astype(np.int8) + 1).astype(ml_dtypes.int4)}, back).ok  # int4 exact
    assert golden.Tolerance.for_precision("fp4") == Tolerance(*trtdsl.dtypes.info("fp4").tolerance)


def test_captured_constants_outlive_their_network(feeds):
    """A captured constant is the array the Network kept, not a view of freed TensorRT Weights."""
    import gc

    ref = trtdsl.reference.run(_chain(), feeds, capture="all")
    gc.collect()
    junk = [np.full(6, 7.0, np.float32) for _ in range(200)]  # reuse whatever memory was freed
    np.testing.assert_array_equal(ref["block.const_1.out"], np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(ref["block.const.out"], np.float32(0.5))
    del junk
