"""Loops and if-conditionals: the DSL helpers, TensorRT's acceptance, and the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import trtdsl
from trtdsl import ShapeError, TrtdslError, ops, reference

from ._raw_networks import loop_then_conditional

pytestmark = pytest.mark.usefixtures("trt", "reference_mode")  # fast and plain paths


def _builds(net: trtdsl.Network) -> bool:
    engine = net.builder.build_serialized_network(net.trt, net.builder.create_builder_config())
    return engine is not None and engine.nbytes > 0


def _cumsum_net(shape, axis, reverse=False):
    net = trtdsl.Network("cumsum")
    x = net.input("x", "float32", shape)
    rest = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    loop = ops.Loop(net, name="scan")
    with loop:
        acc = loop.recurrence(net.constant(np.zeros(rest, np.float32), "zeros"))
        acc.set_next(acc + loop.iterate(x, axis, reverse=reverse))
    net.output(loop.output(acc, "last"), "total")
    net.output(loop.output(acc.next, "concat", axis=axis), "partial")
    net.output(loop.output(acc, "reverse", axis=axis), "before_reversed")
    return net


@pytest.mark.parametrize(("shape", "axis"), [((5,), 0), ((6, 3), 0), ((2, 7, 3), 1), ((3, 2, 4), -1)])
@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum_loop(shape, axis, reverse, rng):
    net = _cumsum_net(shape, axis, reverse)
    assert net.outputs["partial"].shape == shape
    xv = rng.standard_normal(shape).astype(np.float32)
    out = reference.run(net, {"x": xv})
    seq = np.flip(xv, axis) if reverse else xv
    partial = np.cumsum(seq.astype(np.float64), axis=axis)
    np.testing.assert_allclose(out["total"], np.sum(xv, axis=axis), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["partial"], partial, rtol=1e-5, atol=1e-5)
    # The recurrence's value at the start of each iteration, stacked last-to-first.
    before = np.concatenate([np.zeros_like(np.take(partial, [0], axis)), partial], axis=axis)
    before = np.take(before, range(shape[axis]), axis=axis)
    np.testing.assert_allclose(out["before_reversed"], np.flip(before, axis), rtol=1e-5, atol=1e-5)


def test_cumsum_loop_builds():
    assert _builds(_cumsum_net((6, 3), 0))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize(("seq", "batch", "n_in", "hidden"), [(5, 2, 3, 4), (1, 1, 2, 3), (12, 3, 8, 16)])
def test_rnn_cell_loop_matches_torch_rnn(dtype, seq, batch, n_in, hidden, rng):
    torch.manual_seed(0)
    rnn = torch.nn.RNN(n_in, hidden, nonlinearity="tanh").double()
    w_ih, w_hh = rnn.weight_ih_l0.detach().numpy(), rnn.weight_hh_l0.detach().numpy()
    bias = (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().numpy()
    xv = rng.standard_normal((seq, batch, n_in)).astype(np.float32)
    h0v = rng.standard_normal((batch, hidden)).astype(np.float32)

    net = trtdsl.Network("rnn", dtype=dtype)
    x = net.input("x", "float32", (seq, batch, n_in))
    h0 = net.input("h0", "float32", (batch, hidden))
    loop = ops.Loop(net, seq, name="rnn")
    with loop:
        h = loop.recurrence(net.to_compute(h0))
        x_t = loop.iterate(net.to_compute(x), 0)
        h_next = ops.tanh(ops.matmul(x_t, w_ih.T) + ops.matmul(h, w_hh.T) + bias)
        h.set_next(h_next)
    net.output(loop.output(h_next, "concat"), "y")
    net.output(loop.output(h, "last"), "h_n")
    out = reference.run(net, {"x": xv, "h0": h0v})

    y_ref, h_ref = rnn(torch.from_numpy(xv).double(), torch.from_numpy(h0v).double()[None])
    tol = 1e-5 if dtype == "float32" else 1e-2
    np.testing.assert_allclose(out["y"], y_ref.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(out["h_n"], h_ref[0].detach().numpy(), rtol=tol, atol=tol)
    if dtype == "float16":
        assert out["y"].dtype == np.float32 and np.all(out["y"] == out["y"].astype(np.float16))


def test_while_loop_doubles_until_limit(trt):
    """i = 0; v = x; while i < n: v = 2 v; i += 1 — a WHILE trip limit computed from a recurrence."""
    net = trtdsl.Network("while")
    x = net.input("x", "float32", (3,))
    loop = ops.Loop(net, name="doubling")
    with loop:
        i = loop.recurrence(net.constant(np.array(0, np.int32), "zero"))
        v = loop.recurrence(x)
        loop.while_true(i < np.array(4, np.int32))
        i.set_next(i + np.array(1, np.int32))
        v.set_next(v * 2.0)
    net.output(loop.output(v, "last"), "v")
    net.output(loop.output(i, "last"), "i")
    xv = np.array([1.0, -0.5, 3.0], np.float32)
    out = reference.run(net, {"x": xv})
    np.testing.assert_array_equal(out["v"], xv * 16)
    assert out["i"] == 4
    assert _builds(net)


def test_loop_with_interleaved_outside_layers_and_trip_count_tensor(rng):
    """Layers outside the loop added between its boundary layers must not be pulled into it."""
    net = trtdsl.Network("interleaved")
    x = net.input("x", "float32", (4, 3))
    y = net.input("y", "float32", (3,))
    count = net.constant(np.array(4, np.int32), "count", dtype="int32")
    loop = ops.Loop(net, count, name="loop")
    acc = loop.recurrence(y)
    outside = ops.exp(y, name="outside")  # added mid-loop, reads only an outer tensor
    scale = net.constant(np.float32(0.5), "half")  # a loop-invariant used inside the body
    acc.set_next(acc * scale + loop.iterate(x) + outside)
    net.output(loop.output(acc, "last"), "acc")
    net.output(outside * 2.0, "outside2")
    xv, yv = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    out = reference.run(net, {"x": xv, "y": yv})
    want = yv.astype(np.float64)
    for t in range(4):
        want = want * 0.5 + xv[t] + np.exp(yv)
    np.testing.assert_allclose(out["acc"], want, rtol=1e-5)
    np.testing.assert_allclose(out["outside2"], 2 * np.exp(yv), rtol=1e-6)
    steps = reference.prepare(net).steps
    assert [s.type for s in steps].count("loop") == 1
    loop_step = next(s for s in steps if s.type == "loop")
    assert "outside.out" not in loop_step.outputs and loop_step.name == "loop"


def test_nested_loops_and_cond_inside_loop(rng):
    """Outer loop over rows; inner loop sums a row; a conditional per row picks exp or negation."""
    net = trtdsl.Network("nested")
    x = net.input("x", "float32", (4, 5))
    outer = ops.Loop(net, name="outer")
    with outer:
        row = outer.iterate(x, 0)
        inner = ops.Loop(net, name="inner")
        with inner:
            s = inner.recurrence(net.constant(np.float32(0), "zero"))
            s.set_next(s + inner.iterate(row, 0))
        row_sum = inner.output(s, "last")
        picked = ops.cond(row_sum > 0.0, ops.exp, ops.neg, row, name="pick")
    net.output(outer.output(picked, "concat"), "picked")
    xv = rng.standard_normal((4, 5)).astype(np.float32)
    xv[0] += 3  # make both branches occur
    xv[1] -= 3
    out = reference.run(net, {"x": xv}, capture="all")
    want = np.where(xv.sum(1, keepdims=True) > 0, np.exp(xv), -xv)
    np.testing.assert_allclose(out["picked"], want, rtol=1e-6)
    top = [s.type for s in reference.prepare(net).steps]
    assert top.count("loop") == 1 and set(top) == {"constant", "loop"}  # inner loop and cond nest in the outer
    assert _builds(net)


@pytest.mark.parametrize("flag", [True, False])
def test_if_conditional_runs_only_the_chosen_branch(flag, rng):
    net = trtdsl.Network("cond")
    x = net.input("x", "float32", (2, 3))
    y = net.input("y", "float32", (2, 3))
    p = net.input("p", "bool", ())
    out1, out2 = ops.cond(p, lambda a, b: (ops.exp(a), a + b), lambda a, b: (a * 2.0, a - b), x, y, name="choose")
    net.output(out1, "o1")
    net.output(out2, "o2")
    xv, yv = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal((2, 3)).astype(np.float32)
    out = reference.run(net, {"x": xv, "y": yv, "p": np.array(flag)}, capture="all")
    np.testing.assert_allclose(out["o1"], np.exp(xv) if flag else xv * 2, rtol=1e-6)
    np.testing.assert_allclose(out["o2"], xv + yv if flag else xv - yv, rtol=1e-6)
    # Branch layers of the untaken side never ran (constants are loop/branch invariant and run once).
    ran = {n for n in out if n.startswith(("choose.then.", "choose.else.")) and ".const" not in n}
    assert ran == (
        {"choose.then.exp.out", "choose.then.add.out"} if flag else {"choose.else.mul.out", "choose.else.sub.out"}
    )
    assert _builds(net)


def test_raw_trt_loop_and_conditional(trt, rng):
    """Networks written with the raw API (unnamed layers, a later set_input) run too."""
    _builder, n, _arrays = loop_then_conditional(reverse=True)  # kept alive with the network
    xv = rng.uniform(0.5, 1.5, (5, 2)).astype(np.float32)
    for flag in (True, False):
        got = reference.run(n, {"x": xv, "p": np.array(flag)})
        (value,) = got.values()
        np.testing.assert_allclose(value, -xv.prod(0) if flag else xv.prod(0), rtol=1e-6)


# ---------------------------------------------------------------------- errors
def test_loop_and_cond_errors():
    net = trtdsl.Network("errors")
    x = net.input("x", "float32", (4, 3))
    loop = ops.Loop(net, 4, name="l")
    h = loop.recurrence(net.constant(np.zeros(3, np.float32), "h0"))
    with pytest.raises(ShapeError, match=r"recurrence 'l.recurrence.out': next value 'x' has shape \(4, 3\)"):
        h.set_next(x)
    x_t = loop.iterate(x)
    with pytest.raises(TrtdslError, match=r"loop 'l': a 'last' output must be a recurrence or a recurrence's next"):
        loop.output(x_t, "last")
    with pytest.raises(TrtdslError, match=r"output kind must be one of \['last', 'concat', 'reverse'\], got 'first'"):
        loop.output(h, "first")
    with pytest.raises(ShapeError, match=r"cond: predicate 'x' must be a 0-D bool tensor, got shape \(4, 3\) float32"):
        ops.cond(x, lambda a: a, lambda a: a, x)
    p = net.input("p", "bool", ())
    with pytest.raises(ShapeError, match=r"cond 'bad': output 0 is \(4, 3\) float32 in the true branch but \(3,\)"):
        ops.cond(p, lambda a: a, lambda a: ops.sum(a, 0), x, name="bad")


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [("RNN", {}), ("GRU", {"bidirectional": True}), ("LSTM", {"num_layers": 2})],
    ids=["rnn", "gru-bidirectional", "lstm-2-layers"],
)
def test_onnx_parser_recurrent_loops_match_torch(trt, kind, kwargs):
    """TensorRT's own ONNX parser writes the loops (reverse iterators included); torch is the reference."""
    import io
    import warnings

    from trtdsl import _trt

    torch.manual_seed(0)
    module = getattr(torch.nn, kind)(3, 4, **kwargs).eval()
    x = torch.randn(6, 2, 3)
    names = ["y", "h_n", "c_n"] if kind == "LSTM" else ["y", "h_n"]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buffer, dynamo=False, opset_version=17, input_names=["x"], output_names=names)
    network = trt.Builder(_trt.logger()).create_network(0)
    parser = trt.OnnxParser(network, _trt.logger())
    assert parser.parse(buffer.getvalue()), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    assert "loop" in {s.type for s in reference.prepare(network).steps}
    got = reference.run(network, {"x": x.numpy()})
    y, state = module(x)
    want = dict(zip(names, [y, *(state if kind == "LSTM" else (state,))], strict=True))
    for name in names:
        np.testing.assert_allclose(got[name], want[name].detach().numpy(), rtol=1e-5, atol=1e-6)


def test_capture_inside_loop_and_untaken_branch(rng):
    net = _cumsum_net((4, 3), 0)
    p = net.input("p", "bool", ())
    net.output(ops.cond(p, ops.exp, ops.neg, net.outputs["total"], name="c"), "z")
    xv = rng.standard_normal((4, 3)).astype(np.float32)
    out = reference.run(net, {"x": xv, "p": np.array(True)}, capture=["scan.add.out", "scan.iterator.out"])
    np.testing.assert_array_equal(out["scan.iterator.out"], xv[-1])  # a body tensor holds its last value
    np.testing.assert_allclose(out["scan.add.out"], xv.sum(0), rtol=1e-6)
    with pytest.raises(trtdsl.InterpreterError, match=r"cannot capture 'c.else.neg.out': it was not computed"):
        reference.run(net, {"x": xv, "p": np.array(True)}, capture="c.else.neg.out")
