"""Constant and shape-derived values kept between runs (reference/folding.py).

Expected values come from NumPy on the feeds (a reshape, a sum, the constants themselves),
not from the interpreter.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import trtdsl
from trtdsl.reference import Interpreter, registry

pytestmark = pytest.mark.usefixtures("trt")

C1 = np.arange(12, dtype=np.float32).reshape(1, 4, 3)
C2 = np.full((1, 4, 3), 0.5, np.float32)


def _network(trt):
    """y = x.reshape(batch, 12) with the dims computed from x's Shape (as torch's flatten
    exports it); z = x + c1 * c2 (a constant product that dies at the add, where it could
    be donated); w = the constant c1 itself."""
    net = trtdsl.Network("folding")
    net.dim("batch", 1, 2, 4)
    x = net.input("x", "float32", ("batch", 4, 3))
    shape = net.register(net.trt.add_shape(x.trt), "shape")
    batch = net.register(
        net.trt.add_gather(shape.trt, net.constant(np.array([0], np.int64), "zero", dtype="int64").trt, 0), "batch"
    )
    rest = net.constant(np.array([12], np.int64), "twelve", dtype="int64")
    dims = net.register(net.trt.add_concatenation([batch.trt, rest.trt]), "dims")
    flat = net.trt.add_shuffle(x.trt)
    flat.set_input(1, dims.trt)
    net.output(net.register(flat, "flat"), "y")
    c1 = net.constant(C1, "c1")
    product = net.register(
        net.trt.add_elementwise(c1.trt, net.constant(C2, "c2").trt, trt.ElementWiseOperation.PROD), "product"
    )
    net.output(net.register(net.trt.add_elementwise(x.trt, product.trt, trt.ElementWiseOperation.SUM), "sum"), "z")
    net.output(net.register(net.trt.add_identity(c1.trt), "copy"), "w")
    net.names = {"product": product.name, "dims": dims.name}  # for the tests that look inside
    return net


def _counting(monkeypatch, kind: str) -> list:
    calls = []
    real = registry.REGISTRY[kind]

    @functools.wraps(real)  # keeps the registry's fresh/donates/fuses promises
    def counted(*args, **kwargs):
        calls.append(kind)
        return real(*args, **kwargs)

    monkeypatch.setitem(registry.REGISTRY, kind, counted)
    return calls


def test_values_from_constants_and_shapes_are_computed_once_per_input_shapes(trt, rng, monkeypatch):
    shapes = _counting(monkeypatch, "shape")
    products = _counting(monkeypatch, "elementwise")
    interp = Interpreter(_network(trt), fast=True)
    for batch in (2, 2, 3, 2, 3):
        xv = rng.standard_normal((batch, 4, 3)).astype(np.float32)
        out = interp.run({"x": xv})
        np.testing.assert_array_equal(out["y"], xv.reshape(batch, 12))
        np.testing.assert_array_equal(out["z"], xv + C1 * C2)  # the kept product was not overwritten
        np.testing.assert_array_equal(out["w"], C1)
    assert len(shapes) == 2  # once for batch 2, once for batch 3
    assert len(products) == 1 + 5  # the constant product once, the sum with x every run


def test_a_kept_value_returned_as_an_output_is_a_copy(trt, rng):
    interp = Interpreter(_network(trt), fast=True)
    xv = rng.standard_normal((1, 4, 3)).astype(np.float32)
    interp.run({"x": xv})["w"][...] = -1.0  # the caller's array to change
    np.testing.assert_array_equal(interp.run({"x": xv})["w"], C1)
    np.testing.assert_array_equal(interp.run({"x": xv})["z"], xv + C1 * C2)


def test_observed_and_captured_runs_compute_every_layer(trt, rng, monkeypatch):
    shapes = _counting(monkeypatch, "shape")
    net = _network(trt)
    interp = Interpreter(net, fast=True)
    xv = rng.standard_normal((2, 4, 3)).astype(np.float32)
    interp.run({"x": xv})
    seen = []
    out = interp.run({"x": xv}, observe={net.names["product"]: lambda name, a: seen.append(a.copy())})
    np.testing.assert_array_equal(seen[0], C1 * C2)
    dims = net.names["dims"]
    np.testing.assert_array_equal(interp.run({"x": xv}, capture=dims)[dims], [2, 12])
    np.testing.assert_array_equal(out["y"], xv.reshape(2, 12))
    assert len(shapes) == 3  # the first run, and both runs that look inside


def test_the_plain_mode_keeps_nothing(trt, rng, monkeypatch):
    shapes = _counting(monkeypatch, "shape")
    interp = Interpreter(_network(trt), fast=False)
    for _ in range(2):
        xv = rng.standard_normal((2, 4, 3)).astype(np.float32)
        np.testing.assert_array_equal(interp.run({"x": xv})["y"], xv.reshape(2, 12))
    assert len(shapes) == 2


def test_a_shape_that_depends_on_values_is_checked_every_run(trt, rng):
    """NonZero's output shape depends on its input's values: the kept shape-derived values (here
    the count of positive entries, read with a Shape layer) are used only while that shape holds."""
    net = trtdsl.Network("data-dependent")
    x = net.input("x", "float32", (2, 5))
    zero = net.constant(np.zeros((1, 1), np.float32), "zero")
    positive = net.register(net.trt.add_elementwise(x.trt, zero.trt, trt.ElementWiseOperation.GREATER), "positive")
    where = net.register(net.trt.add_non_zero(positive.trt), "where")
    shape = net.register(net.trt.add_shape(where.trt), "shape")
    count = net.register(
        net.trt.add_gather(shape.trt, net.constant(np.array([1], np.int64), "one", dtype="int64").trt, 0), "count"
    )
    net.output(count, "count")
    interp = Interpreter(net, fast=True)
    for _ in range(4):
        xv = rng.standard_normal((2, 5)).astype(np.float32)
        np.testing.assert_array_equal(interp.run({"x": xv})["count"], [np.count_nonzero(xv > 0)])
    xv = np.ones((2, 5), np.float32)
    np.testing.assert_array_equal(interp.run({"x": xv})["count"], [10])
    np.testing.assert_array_equal(interp.run({"x": -xv})["count"], [0])


def test_values_past_the_budget_are_computed_in_every_run(trt, rng, monkeypatch):
    from trtdsl.reference import folding

    monkeypatch.setattr(folding, "BUDGET", 40)  # room for the int64 dims, not for the 48-byte product
    products = _counting(monkeypatch, "elementwise")
    shapes = _counting(monkeypatch, "shape")
    interp = Interpreter(_network(trt), fast=True)
    for _ in range(3):
        xv = rng.standard_normal((2, 4, 3)).astype(np.float32)
        out = interp.run({"x": xv})
        np.testing.assert_array_equal(out["z"], xv + C1 * C2)
        np.testing.assert_array_equal(out["y"], xv.reshape(2, 12))
    assert len(products) == 3 * 2  # the product is not kept: it runs with the sum
    assert len(shapes) == 1  # the shape arithmetic is
