"""Every op has an interpreter function and an independent test; what cannot be tested is listed with a reason.

Also the independent tests of the ops no other file exercised by name: explicit comparison
ops against NumPy and the 1-D/3-D and max adaptive pools against torch.
"""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
import torch

import trtdsl
from trtdsl import ops, reference
from trtdsl.reference.registry import REGISTRY

from ._oprun import run_one

pytestmark = pytest.mark.usefixtures("trt")

TESTS = pathlib.Path(__file__).resolve().parents[1]


def test_every_layer_type_is_interpreted_or_listed_as_untestable(trt):
    listed = set(ops.UNTESTABLE)
    for name in (n.lower() for n in trt.LayerType.__members__):
        assert name in REGISTRY or name in listed, (
            f"LayerType.{name.upper()} has no interpreter function and no reason in ops.UNTESTABLE"
        )
    assert not listed & set(REGISTRY), "a layer type listed as untestable has an interpreter function"
    for name, reason in ops.UNTESTABLE.items():
        assert name in ops.__doc__ and len(reason) > 20


def test_every_op_has_a_test():
    text = "\n".join(p.read_text() for p in TESTS.rglob("test_*.py"))
    missing = [
        n for n in ops.__all__ if not re.search(rf"(ops\.{n}\b|[\"']{n}[\"']|\b{n}\()", text) and n != "Recurrence"
    ]
    assert not missing, f"ops without a test that names them: {missing}"
    assert "Recurrence" in text or "ops.loop" in text  # the loop-carried tensor type, tested through loops


@pytest.mark.parametrize(
    ("op", "ref"),
    [
        (ops.equal, np.equal),
        (ops.not_equal, np.not_equal),
        (ops.greater, np.greater),
        (ops.greater_equal, np.greater_equal),
        (ops.less, np.less),
        (ops.less_equal, np.less_equal),
    ],
)
def test_comparisons_match_numpy(op, ref, rng):
    a = rng.integers(-3, 3, (4, 5)).astype(np.float32)
    b = rng.integers(-3, 3, (5,)).astype(np.float32)
    got, shape, _ = run_one(op, a, b)
    assert got.dtype == np.bool_ and shape == (4, 5)
    np.testing.assert_array_equal(got, ref(a, b))


@pytest.mark.parametrize(
    ("op", "ref", "shape", "size"),
    [
        (ops.adaptive_avg_pool1d, torch.nn.functional.adaptive_avg_pool1d, (2, 3, 12), 4),
        (ops.adaptive_max_pool1d, torch.nn.functional.adaptive_max_pool1d, (2, 3, 12), 3),
        (ops.adaptive_max_pool2d, torch.nn.functional.adaptive_max_pool2d, (2, 3, 8, 6), (2, 3)),
        (ops.adaptive_avg_pool3d, torch.nn.functional.adaptive_avg_pool3d, (1, 2, 4, 6, 8), (2, 3, 1)),
        (ops.adaptive_max_pool3d, torch.nn.functional.adaptive_max_pool3d, (1, 2, 4, 6, 8), 1),
    ],
)
def test_adaptive_pools_match_torch(op, ref, shape, size, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    got, _, net = run_one(lambda t: op(t, size), x)
    np.testing.assert_allclose(got, ref(torch.from_numpy(x).double(), size).numpy(), rtol=1e-5, atol=1e-6)
    assert trtdsl.build(net) is not None


def test_untestable_layer_types_have_no_op():
    assert not any(hasattr(ops, n) for n in ops.UNTESTABLE)


def test_assertion_layer_fails_the_run_with_its_message(trt):
    """IAssertionLayer (NvInfer.h): an error when any element of the bool condition is false."""
    net = trtdsl.Network("a")
    net.dim("seq", 1, 4, 8)
    x = net.input("x", "float32", (2, "seq"))
    n = ops.shape_of(x)
    ok = ops.greater(n, ops.constant(net, np.array([0, 2], np.int64)))
    ok = ops.logical_or(ok, ops.equal(n, ops.constant(net, np.array([2, 0], np.int64))))
    layer = net.trt.add_assertion(ok.trt, "seq must exceed 2")
    layer.name = "check"
    net.output(x * 2.0, "y")
    assert reference.run(net, {"x": np.ones((2, 3), np.float32)})["y"].shape == (2, 3)
    with pytest.raises(trtdsl.errors.InterpreterError, match=r"assertion layer .* 'check' failed: seq must exceed 2"):
        reference.run(net, {"x": np.ones((2, 1), np.float32)})
