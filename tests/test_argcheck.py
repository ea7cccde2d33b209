"""Wrongly typed arguments to public ops, blocks and models are ArgumentErrors naming the argument."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import trtdsl
from trtdsl import layers, models, ops
from trtdsl.argcheck import checked
from trtdsl.errors import ArgumentError, TrtdslError

pytestmark = pytest.mark.usefixtures("trt")


@pytest.fixture
def x():
    return trtdsl.Network("args").input("x", "float32", (2, 4, 6, 6))


@pytest.mark.parametrize("package", [ops, layers, models, trtdsl.calib, trtdsl.rewrite, trtdsl.golden])
def test_every_public_function_is_checked_and_keeps_its_signature(package):
    functions = [getattr(package, n) for n in package.__all__ if inspect.isfunction(getattr(package, n))]
    assert functions
    for fn in functions:
        assert hasattr(fn, "__wrapped__"), fn.__name__
        assert inspect.signature(fn) == inspect.signature(fn.__wrapped__)
        assert fn.__doc__ == fn.__wrapped__.__doc__


# (call, the message's pattern): each used to end in AttributeError, TypeError or ValueError from inside the op.
CASES = {
    "array for a Tensor": (
        lambda x: ops.relu(np.ones(3)),
        r"^ops\.relu: argument 'x' must be a trtdsl\.Tensor, got numpy\.ndarray of shape \(3,\); make it a constant "
        r"with net\.constant\(value\)",
    ),
    "list for a Tensor": (lambda x: ops.max_pool2d([1, 2], 2), r"ops\.max_pool2d: argument 'x' .* got list \[1, 2\]"),
    "None for a Tensor": (lambda x: ops.linear(None, np.ones((2, 2))), r"ops\.linear: argument 'x' .* got NoneType"),
    "no network first": (
        lambda x: ops.arange(0, 5),
        r"ops\.arange: argument 'net' must be a trtdsl\.Network, got int 0; the network comes first: ops\.arange\(net",
    ),
    "str axis": (lambda x: ops.softmax(x, "a"), r"ops\.softmax: argument 'dim' must be an int, got str 'a'$"),
    "float axis": (lambda x: ops.flatten(x, 1.5), r"ops\.flatten: argument 'start_dim' must be an int, got float 1\.5"),
    "str k": (lambda x: ops.topk(x, "k", 1), r"ops\.topk: argument 'k' must be an int, got str 'k'"),
    "str shape": (lambda x: ops.reshape(x, "ab"), r"ops\.reshape: argument 'shape' must be .*a sequence of ints"),
    "str size": (lambda x: ops.interpolate(x, size="a"), r"ops\.interpolate: argument 'size' must be an int or a seq"),
    "array into a block": (
        lambda x: layers.linear(np.ones((2, 3)), {"fc.weight": np.ones((4, 3), np.float32)}, "fc"),
        r"^layers\.linear: argument 'x' must be a trtdsl\.Tensor, got numpy\.ndarray of shape \(2, 3\)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_wrongly_typed_argument_is_named(x, case):
    call, pattern = CASES[case]
    with pytest.raises(ArgumentError, match=pattern) as info:
        call(x)
    assert isinstance(info.value, TypeError) and isinstance(info.value, TrtdslError)  # except TypeError still works
    assert info.value.__cause__ is not None  # the original error stays attached


def test_an_error_with_well_typed_arguments_is_not_disguised():
    def op(x: int, name: str | None = None) -> int:
        raise AttributeError("a bug inside the op")

    wrapped = checked(op, "ops")
    with pytest.raises(AttributeError, match="a bug inside the op"):
        wrapped(3, name="n")
    with pytest.raises(ArgumentError, match=r"ops\.op: argument 'name' must be a string or None, got int 4"):
        wrapped(3, name=4)
    with pytest.raises(TypeError, match="unexpected keyword"):  # a wrong call: Python's own message
        wrapped(3, nope=1)


def test_trtdsl_errors_and_good_calls_pass_through(x):
    with pytest.raises(trtdsl.ShapeError, match="out of range"):
        ops.mean(x, 7)
    assert ops.softmax(x, np.int64(1)).shape == (2, 4, 6, 6)  # a NumPy integer is an int


def test_network_methods_that_scripts_call_are_checked():
    net = trtdsl.Network("args")
    with pytest.raises(
        ArgumentError, match=r"^Network\.input: argument 'shape' must be a sequence of values, got int 5"
    ):
        net.input("x", "float32", 5)  # was TypeError: 'int' object is not iterable
    with pytest.raises(ArgumentError, match=r"^Network\.input: argument 'name' must be a string, got int 5"):
        net.input(5, "float32", (2,))  # was the bindings' "incompatible function arguments"
    with pytest.raises(ArgumentError, match=r"^Network: the name must be a non-empty string, got int 5"):
        trtdsl.Network(5)
    x = net.input("x", "float32", (2, 3))
    assert net.output(ops.relu(x), "y").name == "y"


def test_entry_points_name_a_wrongly_typed_argument(tmp_path):
    from trtdsl import calib, reference, weights
    from trtdsl import keras as tk
    from trtdsl import onnx as tonnx

    cases = [
        (lambda: trtdsl.build(None), r"^trtdsl\.build: argument 'net' must be a trtdsl\.Network, got NoneType None$"),
        (lambda: trtdsl.build(np.ones(3)), r"^trtdsl\.build: argument 'net' .* the network comes first"),
        (lambda: weights.load(5), r"^trtdsl\.weights\.load: argument 'path' must be a string or a path"),
        (lambda: tk.load_model(5), r"^trtdsl\.keras\.load_model: argument 'path' must be a string or a pathlib\.Path"),
        (lambda: tonnx.parse(5), r"^trtdsl\.onnx\.parse: argument 'path' must be a string or a path"),
        (lambda: calib.quantize(None, {}), r"^trtdsl\.calib\.quantize: argument 'net' must be a trtdsl\.Network"),
        (lambda: trtdsl.Plan.load(5), r"^Plan\.load: argument 'path' must be a string or a path"),
        (lambda: reference.run(None, {}), r"^trtdsl\.reference: expected a trtdsl\.Network or a TensorRT "
         r"INetworkDefinition, got NoneType None"),  # was TypeError: cannot create weak reference to 'NoneType'
        (lambda: reference.Interpreter(5), r"^reference\.Interpreter: expected a trtdsl\.Network"),
        (lambda: trtdsl.ReferenceSession(None), r"^ReferenceSession: expected a trtdsl\.Network"),
    ]  # fmt: skip
    for call, pattern in cases:
        with pytest.raises(ArgumentError, match=pattern):
            call()


def test_weight_store_methods_name_a_wrong_argument():
    from trtdsl.errors import WeightError
    from trtdsl.weights import WeightStore

    w = WeightStore.from_mapping({"conv.weight": np.ones((2, 3), np.float32)})
    cases = [
        (lambda: w.scope(5), ArgumentError, r"^WeightStore\.scope: argument 'prefix' must be a string, got int 5"),
        (lambda: WeightStore.from_mapping([1, 2]), ArgumentError, r"^WeightStore\.from_mapping: argument 'mapping' "
         r"must be a mapping of name -> value \(a dict\), got list"),
        (lambda: w.rename("["), WeightError, r"^rename: pattern '\[' is not a regular expression"),  # was re.error
        (lambda: w.take("conv.weight", 5), WeightError, r"^take 'conv\.weight': shape must be a sequence of ints"),
        (lambda: w.take("conv.weight", dtype="flaot"), WeightError, r"^take: dtype 'flaot' is not a NumPy dtype"),
    ]  # fmt: skip
    for call, kind, pattern in cases:
        with pytest.raises(kind, match=pattern):
            call()
    assert sorted(w.rename(r"^conv\.", "c.")) == ["c.weight"]


def test_the_check_itself_never_raises(x):
    # An array against a Literal compared elementwise, a 0-d array iterated: both escaped from the check itself.
    with pytest.raises(ArgumentError, match=r"ops\.gelu: argument 'approximate' must be one of 'none', 'tanh'"):
        ops.gelu(x, approximate=np.array(["tanh", "none"]))
    with pytest.raises(ArgumentError, match=r"ops\.max_pool2d: argument 'kernel_size' must be an int or a seq"):
        ops.max_pool2d(x, np.array(2))
