"""Network and Tensor: names, raw access, kept-alive weights, precision policy, operators."""

from __future__ import annotations

import gc
import operator

import numpy as np
import pytest

import trtdsl
from trtdsl import ShapeError, TrtdslError, ops, reference

pytestmark = pytest.mark.usefixtures("trt")


def test_scopes_give_stable_readable_names():
    net = trtdsl.Network("n")
    x = net.input("x", "float32", (2, 3))
    with net.scope("layer1"), net.scope("0"):
        y = ops.exp(x, name="act")
        z = ops.exp(y, name="act")  # same name twice in a scope gets a suffix
        w = ops.exp(z)
    net.output(w, "out")
    names = [layer.name for layer in net.layers()]
    assert names == ["layer1.0.act", "layer1.0.act_1", "layer1.0.exp"]
    assert (y.name, z.name) == ("layer1.0.act.out", "layer1.0.act_1.out")
    assert w.name == "out"  # an output takes its given name, no extra layer when the dtype fits
    assert not any("Unnamed" in layer.name for layer in net.layers())


def test_repeated_names_take_the_next_free_suffix():
    net = trtdsl.Network("n")
    x = net.input("x", "float32", (2, 3))
    taken = net.unique_name("x.relu_2", scoped=False)  # a suffix taken by hand is skipped
    names = [ops.relu(x).layer.name for _ in range(400)]
    assert taken == "x.relu_2"
    assert names[:4] == ["x.relu", "x.relu_1", "x.relu_3", "x.relu_4"]
    assert len(set(names)) == 400 and names[-1] == "x.relu_400"


def test_raw_access(trt):
    net = trtdsl.Network("n")
    x = net.input("x", "float32", (2, 3))
    y = ops.exp(x, name="e")
    assert isinstance(net.trt, trt.INetworkDefinition)
    assert isinstance(y.trt, trt.ITensor)
    assert y.layer.name == "e" and y.layer.type == trt.LayerType.UNARY
    assert x.layer is None
    assert net.tensor("e.out").trt.name == "e.out"
    with pytest.raises(TrtdslError, match=r"no tensor 'e.uot'.*Did you mean 'e.out'"):
        net.tensor("e.uot")
    # Layers added with the raw API can join the naming scheme.
    (t,) = net.add(net.trt.add_unary(y.trt, trt.UnaryOperation.ABS), "abs", "hand_tuned")
    assert (t.name, t.layer.name) == ("hand_tuned.out", "hand_tuned")


def test_weights_are_kept_alive_and_named():
    net = trtdsl.Network("n")
    x = net.input("x", "float32", (4,))
    with net.scope("blk"):
        y = x + np.arange(4, dtype=np.float32) * 10  # a temporary the caller does not keep
    net.output(y, "y")
    gc.collect()
    assert list(net.weights) == ["blk.const"]
    out = reference.run(net, {"x": np.ones(4, np.float32)})["y"]
    np.testing.assert_array_equal(out, [1, 11, 21, 31])


def test_fp16_policy_casts_inputs_stores_weights_in_fp16_keeps_io_dtypes():
    net = trtdsl.Network("n", dtype="float16")
    x = net.input("x", "float32", (3,))
    y = x * np.float32(1 / 3)
    with net.precision("float32"):
        z = ops.exp(y)
    out = net.output(z, "out")
    assert (x.dtype, y.dtype, z.dtype, out.dtype) == ("float32", "float16", "float32", "float32")
    assert net.weights["const"].dtype == np.float16
    types = [layer.type.name for layer in net.layers()]
    assert types.count("CAST") == 2  # x -> fp16, y -> fp32 for the fp32 scope; z is already float32
    xv = np.array([1.0, 2.0, 3.0], np.float32)
    got = reference.run(net, {"x": xv})["out"]
    # Independent: numpy's float16 rounding at each storage point.
    third = np.float16(1 / 3)
    expected = np.exp((xv.astype(np.float16) * third).astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert not np.allclose(got, np.exp(xv / 3), rtol=1e-6, atol=0)  # the fp16 error shows


def test_output_keeps_declared_dtype_and_may_override():
    net = trtdsl.Network("n", dtype="bfloat16")
    x = net.input("x", "float16", (3,))
    y = ops.exp(x)
    assert y.dtype == "bfloat16"
    assert net.output(y, "a").dtype == "float32"
    assert net.output(y, "b", dtype="float16").dtype == "float16"


@pytest.mark.parametrize(
    "op",
    [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow],
)
@pytest.mark.parametrize("shapes", [((2, 3), (3,)), ((4, 1, 3), (2, 1)), ((3,), (2, 3))])
def test_binary_operators_broadcast_like_numpy(op, shapes, rng):
    net = trtdsl.Network("n")
    a = net.input("a", "float32", shapes[0])
    b = net.input("b", "float32", shapes[1])
    net.output(op(a, b), "y")
    av = rng.uniform(0.5, 2, shapes[0]).astype(np.float32)
    bv = rng.uniform(0.5, 2, shapes[1]).astype(np.float32)
    got = reference.run(net, {"a": av, "b": bv})["y"]
    np.testing.assert_allclose(got, op(av.astype(np.float64), bv), rtol=1e-6)


@pytest.mark.parametrize("op", [operator.lt, operator.gt, operator.le, operator.ge, operator.eq, operator.ne])
def test_comparisons(op):
    net = trtdsl.Network("n")
    a = net.input("a", "float32", (5,))
    net.output(op(a, 2.0), "y")
    av = np.array([0, 1, 2, 3, 4], np.float32)
    got = reference.run(net, {"a": av})["y"]
    np.testing.assert_array_equal(got, op(av, 2.0))


def test_scalars_on_either_side_and_unary():
    net = trtdsl.Network("n")
    a = net.input("a", "float32", (3,))
    net.output(2.0 - a, "r")
    net.output(-a, "n")
    net.output(abs(a), "abs")
    av = np.array([-1.5, 0.0, 2.5], np.float32)
    got = reference.run(net, {"a": av})
    np.testing.assert_array_equal(got["r"], 2 - av)
    np.testing.assert_array_equal(got["n"], -av)
    np.testing.assert_array_equal(got["abs"], np.abs(av))


def test_bad_definitions_raise_clear_errors():
    net = trtdsl.Network("n")
    with pytest.raises(ShapeError, match=r"input 'x': axis 1 must be a non-negative int or a dim name, got -3"):
        net.input("x", "float32", (2, -3))
    x = net.input("x", "float32", (2, 3))
    with pytest.raises(TrtdslError, match="input 'x' is already declared"):
        net.input("x", "float32", (2, 3))
    with pytest.raises(ShapeError, match=r"shapes \(2, 3\) \(x\) and \(4,\) \(y\) do not broadcast"):
        x + net.input("y", "float32", (4,))
    with pytest.raises(ShapeError, match="network compute dtype must be one of"):
        trtdsl.Network("bad", dtype="int8")
    with pytest.raises(TypeError, match="no truth value at definition time"):
        bool(x)
    other = trtdsl.Network("other").input("z", "float32", (2, 3))
    with pytest.raises(TrtdslError, match="tensor 'z' belongs to network 'other', not 'n'"):
        ops.add(x, other)
    net.output(x, "out")
    with pytest.raises(TrtdslError, match="output 'out' is already marked"):
        net.output(x, "out")


def test_a_constant_of_an_ml_dtypes_array_keeps_its_narrow_type():
    import ml_dtypes

    from trtdsl import ops

    net = trtdsl.Network("t")
    x = net.input("x", "float32", (4,))
    w = np.array([0.5, 1, 2, -3], np.float32).astype(ml_dtypes.float8_e4m3fn)  # as an fp8 checkpoint holds it
    c = net.constant(w, "w8")
    assert c.dtype == "fp8"
    net.output(x * ops.dequantize(c, np.float32(2.0), dtype="float32"), "y")
    expected = w.astype(np.float32) * 2  # ml_dtypes' own widening
    np.testing.assert_array_equal(trtdsl.reference.run(net, {"x": np.ones(4, np.float32)})["y"], expected)
    for t, name in ((ml_dtypes.float4_e2m1fn, "fp4"), (ml_dtypes.bfloat16, "bfloat16"), (ml_dtypes.int4, "int4")):
        assert net.constant(np.ones(4, np.float32).astype(t)).dtype == name
