"""The dtype table and the feed rule: every trt.DataType, its facts, and conversions that change no value."""

from __future__ import annotations

import ast
import pathlib

import ml_dtypes
import numpy as np
import pytest

import trtdsl
from trtdsl import ShapeError, dtypes, ops, reference

pytestmark = pytest.mark.usefixtures("trt")

ALL = ("float32", "float16", "bfloat16", "fp8", "fp4", "e8m0", "int4", "int8", "uint8", "int32", "int64", "bool")


def test_every_tensorrt_datatype_has_one_row(trt):
    members = {m for m in trt.DataType.__members__}
    assert {d.trt_name for d in dtypes.TABLE.values()} == members
    assert tuple(dtypes.TABLE) == ALL
    for name, d in dtypes.TABLE.items():
        t = dtypes.to_trt(name)
        assert t.name == d.trt_name and dtypes.from_trt(t) == name and dtypes.canonical(t) == name
        assert dtypes.canonical(d.holder) == name  # ml_dtypes arrays name their type


@pytest.mark.parametrize(
    ("name", "holder"),
    [
        ("bfloat16", ml_dtypes.bfloat16),
        ("fp8", ml_dtypes.float8_e4m3fn),
        ("fp4", ml_dtypes.float4_e2m1fn),
        ("e8m0", ml_dtypes.float8_e8m0fnu),
        ("int4", ml_dtypes.int4),
    ],
)
def test_narrow_types_are_held_by_ml_dtypes(name, holder):
    d = dtypes.info(name)
    assert d.holder == np.dtype(holder) and d.narrow
    info = ml_dtypes.iinfo(holder) if d.kind == "int" else ml_dtypes.finfo(holder)
    if d.kind == "int":
        assert d.range == (int(info.min), int(info.max))
    else:
        assert d.max == float(info.max)


def test_facts_match_the_documentation():
    # TensorRT's quantized-types guide: INT8 [-128, 127], FP8 [-448, 448], INT4 [-8, 7]; E2M1 max 6.
    assert dtypes.info("int8").range == (-128, 127) and dtypes.qmax("int8") == 127
    assert dtypes.info("int4").range == (-8, 7) and dtypes.qmax("int4") == 7
    assert dtypes.qmax("fp8") == 448 and dtypes.qmax("fp4") == 6
    assert dtypes.info("fp4").itemsize is None and dtypes.info("int4").bits == 4
    assert dtypes.info("fp8").itemsize == 1 and dtypes.info("bfloat16").itemsize == 2
    # dlpack.h DLDataTypeCode: kDLBfloat 4, kDLBool 6, kDLFloat8_e4m3fn 10, kDLFloat8_e8m0fnu 14, kDLFloat4_e2m1fn 17
    assert dtypes.info("bfloat16").dlpack == (4, 16) and dtypes.info("bool").dlpack == (6, 8)
    assert dtypes.info("fp8").dlpack == (10, 8) and dtypes.info("e8m0").dlpack == (14, 8)
    assert dtypes.info("fp4").dlpack == (17, 4)


@pytest.mark.parametrize(
    ("alias", "name"),
    [("bf16", "bfloat16"), ("float8_e4m3fn", "fp8"), ("float4_e2m1fn", "fp4"), ("float8_e8m0fnu", "e8m0"),
     ("half", "float16"), (np.int8, "int8"), (ml_dtypes.int4, "int4")],
)  # fmt: skip
def test_aliases(alias, name):
    assert dtypes.canonical(alias) == name


def test_unknown_dtypes_name_the_choices():
    with pytest.raises(ShapeError, match=r"unknown dtype 'float128'; expected one of float32, float16, bfloat16"):
        dtypes.canonical("float128")
    with pytest.raises(ShapeError, match="dtype complex64 has no TensorRT equivalent"):
        dtypes.canonical(np.complex64)


# ----------------------------------------------------------------- feed rule
@pytest.mark.parametrize(
    ("value", "dtype", "want"),
    [
        (np.array([1, 2**31 - 1], np.int64), "int32", np.array([1, 2**31 - 1], np.int32)),
        (np.array([3, -8], np.int64), "int4", np.array([3, -8], ml_dtypes.int4)),
        (np.array([0.5, 0.25], np.float64), "float32", np.array([0.5, 0.25], np.float32)),
        (np.array([0.5, np.nan]), "float16", np.array([0.5, np.nan], np.float16)),
        (np.array([7, 255], np.uint8), "int32", np.array([7, 255], np.int32)),
        ([True, False], "bool", np.array([True, False])),
    ],
)
def test_feeds_convert_when_no_value_changes(value, dtype, want):
    got = dtypes.convert(value, dtype, name="feed 'x'")
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))


@pytest.mark.parametrize(
    ("value", "dtype", "match"),
    [
        (np.array([5, 2**32 + 7], np.int64), "int32",
         r"feed 'ids': input has dtype int32, got an array of dtype int64 whose value 4294967303 at index \(1,\) "
         r"is outside int32's range"),
        (np.array([0.1], np.float64), "float32",
         r"feed 'ids': input has dtype float32, got an array of dtype float64 whose value 0.1 at index \(0,\) "
         r"is not exact in float32"),
        (np.array([[1.0, 70000.0]], np.float32), "float16", r"value 70000.0 at index \(0, 1\) is not exact in float16"),
        (np.array([9], np.int64), "int4", r"value 9 .* outside int4's range -8..7"),
        (np.array([-1], np.int64), "uint8", r"outside uint8's range 0..255"),
        (np.array([1.0], np.float32), "int32", r"dtype int32, got an array of dtype float32 \(float values, expected integer\)"),
        (np.array([1], np.int32), "float32", r"dtype float32, got an array of dtype int32 \(integer values, expected float\)"),
        (np.array([1], np.int32), "bool", r"expected bool"),
        (np.array([0.1], np.float64), "bfloat16", r"dtype bfloat16, got an array of dtype float64 whose value 0.1"),
    ],
)  # fmt: skip
def test_feeds_that_would_change_raise(value, dtype, match):
    with pytest.raises(ShapeError, match=match):
        dtypes.convert(value, dtype, name="feed 'ids'")


@pytest.mark.parametrize("dtype", ["bfloat16", "fp8", "fp4"])
def test_narrow_inputs_take_float32_rounded_as_a_cast(dtype, rng):
    torch = pytest.importorskip("torch")
    x = (rng.standard_normal(512) * 100).astype(np.float32)
    x[:3] = [1000.0, -1000.0, 0.0]
    got = dtypes.convert(x, dtype, name="x")
    assert got.dtype == dtypes.holder(dtype)
    if dtype == "bfloat16":  # torch's conversion is an independent implementation of the same rounding
        want = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    elif dtype == "fp8":  # TensorRT saturates to +-448; ml_dtypes alone would give NaN
        want = torch.from_numpy(np.clip(x, -448, 448)).to(torch.float8_e4m3fn).float().numpy()
    else:
        want = np.clip(x, -6, 6).astype(ml_dtypes.float4_e2m1fn).astype(np.float32)
    np.testing.assert_array_equal(got.astype(np.float32), want)
    assert not np.isnan(got.astype(np.float32)).any()


# ----------------------------------------------------------- the interpreter
def test_interpreter_takes_bfloat16_arrays_and_returns_them(rng):
    net = trtdsl.Network("bf", dtype="bfloat16")
    x = net.input("x", "bfloat16", (4,))
    net.output(x * 2.0, "y", dtype="bfloat16")
    xv = rng.standard_normal(4).astype(ml_dtypes.bfloat16)
    out = reference.run(net, {"x": xv})["y"]
    assert out.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(out.astype(np.float32), xv.astype(np.float32) * 2)
    # float32 feeds are rounded as a cast rounds them
    x32 = np.array([1.00390625, 3.0, -2.0, 0.5], np.float32)  # 1 + 2**-8 is a tie: rounds to even (1.0)
    out = reference.run(net, {"x": x32})["y"]
    np.testing.assert_array_equal(out.astype(np.float32), [2.0, 6.0, -4.0, 1.0])


def test_interpreter_refuses_ids_that_would_wrap():
    net = trtdsl.Network("ids")
    ids = net.input("ids", "int32", (2,))
    net.output(ids + 1, "y")
    np.testing.assert_array_equal(reference.run(net, {"ids": np.array([1, 2], np.int64)})["y"], [2, 3])
    with pytest.raises(ShapeError, match=r"feed 'ids': input has dtype int32.*4294967303"):
        reference.run(net, {"ids": np.array([1, 2**32 + 7], np.int64)})


@pytest.mark.parametrize("dtype", ["fp8", "fp4", "int4"])
def test_cast_to_low_precision_is_refused_as_tensorrt_does(dtype, trt):
    net = trtdsl.Network("c")
    x = net.input("x", "float32", (4,))
    with pytest.raises(
        ShapeError,
        match=rf"cast 'x': TensorRT only produces {dtype} tensors from Quantize, "
        r"DynamicQuantize, Constant, Concatenation, Shuffle or Identity layers, never from a Cast",
    ):
        ops.cast(x, dtype)
    layer = net.trt.add_cast(x.trt, dtypes.to_trt(dtype))  # the raw API lets it through: the interpreter refuses
    layer.name = "raw_cast"
    q = net.register(layer, "cast", "raw_cast")
    net.output(ops.dequantize(q, 1.0, dtype="float32"), "y")
    with pytest.raises(trtdsl.errors.InterpreterError, match=r"layer 0 'raw_cast' \(cast\) .*never from a Cast"):
        reference.run(net, {"x": np.ones(4, np.float32)})
    with pytest.raises(trtdsl.errors.BuildError, match="raw_cast"):
        trtdsl.build(net)  # TensorRT's builder refuses it too


def test_narrow_constants_hold_their_values(rng):
    net = trtdsl.Network("k")
    vals = np.array([1.3, 500.0, -0.1, 2.0], np.float32)
    for dt in ("bfloat16", "fp8", "fp4"):
        net.output(ops.dequantize(net.constant(vals, dt, dtype=dt), 1.0, dtype="float32") if dt != "bfloat16"
                   else ops.cast(net.constant(vals, dt, dtype=dt), "float32"), f"y_{dt}")  # fmt: skip
    net.output(ops.dequantize(net.constant([7, -8, 1, 0], "i4", dtype="int4"), 0.5, dtype="float32"), "y_int4")
    out = reference.run(net, {})
    np.testing.assert_array_equal(out["y_bfloat16"], vals.astype(ml_dtypes.bfloat16).astype(np.float32))
    np.testing.assert_array_equal(out["y_fp8"], [1.25, 448.0, -0.1015625, 2.0])
    np.testing.assert_array_equal(out["y_fp4"], [1.5, 6.0, -0.0, 2.0])
    np.testing.assert_array_equal(out["y_int4"], [3.5, -4.0, 0.5, 0.0])


# ------------------------------------------------- one fact in one place
_FACTS = {127, -128, 448, 255, -8}  # integer ranges and float maxima that belong to dtypes.py


def test_no_other_module_defines_a_range_or_size_table():
    """dtypes.TABLE holds the ranges, maxima, item sizes and DLPack codes; no other module restates them."""
    root = pathlib.Path(trtdsl.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "dtypes.py" and path.parent == root:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            value = None
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, (int, float))
                and not isinstance(node.value, bool)
            ):
                value = node.value
            elif (
                isinstance(node, ast.UnaryOp)
                and isinstance(node.op, ast.USub)
                and isinstance(node.operand, ast.Constant)
            ):
                value = -node.operand.value if isinstance(node.operand.value, (int, float)) else None
            if value in _FACTS:
                offenders.append(f"{path.relative_to(root)}:{node.lineno} literal {value}")
            if isinstance(node, ast.Dict):  # {"float32": 4, "int8": 1, ...}: a per-dtype size/code table
                keys = {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
                if len(keys & set(dtypes.TABLE)) >= 3:
                    offenders.append(f"{path.relative_to(root)}:{node.lineno} dict keyed by dtype names")
    assert not offenders, "dtype facts outside trtdsl/dtypes.py:\n" + "\n".join(offenders)


def test_reading_low_precision_outside_dequantize_is_refused_as_tensorrt_does(trt):
    net = trtdsl.Network("r")
    x = net.input("x", "float32", (4,))
    q = ops.quantize(x, 0.1, dtype="fp8")
    layer = net.trt.add_cast(q.trt, dtypes.to_trt("float32"))
    net.output(net.register(layer, "cast", "back"), "y")
    with pytest.raises(trtdsl.errors.InterpreterError, match=r"'back' \(cast\) reads fp8 tensor 'quantize.out'"):
        reference.run(net, {"x": np.ones(4, np.float32)})
    with pytest.raises(trtdsl.errors.BuildError, match="has datatype FP8 but is not consumed by"):
        trtdsl.build(net)  # TensorRT's own builder says the same


@pytest.mark.parametrize("dt", ALL)
def test_every_type_round_trips_through_an_input_and_an_output(dt):
    d = dtypes.info(dt)
    net = trtdsl.Network("io")
    x = net.input("x", dt, (4,))
    assert x.dtype == dt
    layer = net.trt.add_identity(x.trt)
    net.output(net.register(layer, "identity", "id"), "y", dtype=dt)
    values = {"bool": [1, 0, 1, 0], "e8m0": [1, 2, 4, 0.5], "uint8": [1, 2, 3, 0]}.get(dt, [1, -2, 3, 0])
    v = np.array(values).astype(d.holder)
    out = reference.run(net, {"x": v})["y"]
    assert out.dtype == d.holder
    np.testing.assert_array_equal(out.astype(np.float64), v.astype(np.float64))


def test_ops_on_low_precision_tensors_say_to_dequantize_first():
    net = trtdsl.Network("lp")
    x = net.input("x", "float32", (4,))
    q = ops.quantize(x, 0.1, dtype="fp8")
    with pytest.raises(ShapeError, match=r"cast 'quantize.out': TensorRT lets only Dequantize.*read fp8 tensors"):
        ops.relu(q)  # a compute op would cast its input to the compute dtype
    with pytest.raises(ShapeError, match=r"use ops.dequantize first"):
        ops.cast(q, "float32")
    assert ops.reshape(q, (2, 2)).dtype == "fp8"  # a shuffle may read it


def test_quantized_outputs_keep_their_type_and_build(trt):
    import ml_dtypes

    net = trtdsl.Network("qo")
    x = net.input("x", "float32", (4,))
    q = ops.quantize(x, 0.5, dtype="fp8")
    assert net.output(q, "q").dtype == "fp8"  # no float32 cast: TensorRT refuses a Cast reading fp8
    with pytest.raises(ShapeError, match=r"output 'r': a fp8 tensor cannot be cast to float32; dequantize it first"):
        net.output(q, "r", dtype="float32")
    out = reference.run(net, {"x": np.array([1.0, 500.0, -0.3, 0.0], np.float32)})["q"]
    assert out.dtype == ml_dtypes.float8_e4m3fn
    np.testing.assert_array_equal(out.astype(np.float32), [2.0, 448.0, -0.625, 0.0])
    assert trtdsl.build(net) is not None
