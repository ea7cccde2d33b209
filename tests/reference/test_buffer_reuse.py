"""Buffer reuse in the interpreter: donated inputs and kept im2col matrices.

A layer may overwrite an input that dies with it (a ReLU after a convolution
writes into the convolution's output); these tests pin down that this never
touches what the caller or a later layer can still see: feeds, constants,
captured or output tensors, and views of a dying tensor. A convolution keeps
its zero-padded im2col matrix between calls; running twice with other inputs
checks that nothing stale survives. References are torch and NumPy math.
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ops
from trtdsl.reference import run
from trtdsl.reference.buffers import BufferPool
from trtdsl.reference.fusion import Epilogue
from trtdsl.reference.interpreter import Interpreter
from trtdsl.reference.kernels import scratch

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.usefixtures("trt")


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def _plan(net) -> dict[str, tuple[int, ...]]:
    """Layer name -> donated input indices, as the interpreter planned them."""
    interp = Interpreter(net)
    return {step.name: d for step, d in zip(interp.steps, interp._donations, strict=True)}


def _residual_block(rng, dtype="float32"):
    """relu(conv2(relu(conv1(x))) + x1) with x1 = relu(conv0(x)), the ResNet pattern; and its torch reference."""
    w0, w1, w2 = (rng.standard_normal((4, 4, 3, 3)).astype(np.float32) * 0.3 for _ in range(3))
    b0, b1, b2 = (rng.standard_normal(4).astype(np.float32) for _ in range(3))
    net = trtdsl.Network("block", dtype=dtype)
    x = net.input("x", "float32", (2, 4, 6, 5))
    x1 = ops.relu(ops.conv2d(x, w0, b0, padding=1, name="conv0"), name="relu0")
    h = ops.relu(ops.conv2d(x1, w1, b1, padding=1, name="conv1"), name="relu1")
    y = ops.relu(ops.add(ops.conv2d(h, w2, b2, padding=1, name="conv2"), x1, name="add"), name="relu2")
    net.output(ops.exp(ops.sub(y, 1.0, name="sub"), name="exp"), "y")

    def reference(xv):
        t1 = F.relu(F.conv2d(_t(xv), _t(w0), _t(b0), padding=1))
        th = F.relu(F.conv2d(t1, _t(w1), _t(b1), padding=1))
        return torch.exp(F.relu(F.conv2d(th, _t(w2), _t(b2), padding=1) + t1) - 1).numpy()

    return net, reference


def test_residual_block_donates_dead_inputs(rng):
    plan = _plan(_residual_block(rng)[0])
    assert plan["relu0"] == (0,) and plan["relu1"] == (0,) and plan["relu2"] == (0,)
    assert plan["add"] == (0, 1)  # conv2's output and x1 are both read for the last time
    assert plan["sub"] == (0,)  # not the constant 1.0
    assert plan["conv1"] == () and plan["exp"] == (0,)


def test_results_equal_with_and_without_donation(rng):
    net, reference = _residual_block(rng)
    x = rng.standard_normal((2, 4, 6, 5)).astype(np.float32)
    interp = Interpreter(net)
    donated = interp.run({"x": x})["y"]
    interp._donations = [()] * len(interp.steps)
    plain = interp.run({"x": x})["y"]
    np.testing.assert_array_equal(donated, plain)  # same ufunc loops, so the same bits
    np.testing.assert_allclose(donated, reference(x), rtol=1e-4, atol=1e-5)


def test_feeds_and_constants_are_never_overwritten(rng):
    c = rng.standard_normal((2, 3)).astype(np.float32)
    net = trtdsl.Network("keep")
    x = net.input("x", "float32", (2, 3))
    const = net.constant(c, "c")
    # A ReLU of a feed, of a constant, and of a reshaped constant (a view of the cached array).
    a = ops.relu(x, name="relu_x")
    b = ops.relu(const, name="relu_c")
    v = ops.relu(ops.reshape(ops.reshape(const, (3, 2)), (2, 3)), name="relu_view")
    net.output(ops.add(ops.add(a, b, name="ab"), v, name="abv"), "y")
    plan = _plan(net)
    assert plan["relu_x"] == () and plan["relu_c"] == () and plan["relu_view"] == ()
    x0 = rng.standard_normal((2, 3)).astype(np.float32)
    xv = x0.copy()
    for _ in range(2):  # the second run would see a clobbered constant
        y = run(net, {"x": xv})["y"]
        np.testing.assert_allclose(y, np.maximum(x0, 0) + 2 * np.maximum(c, 0), rtol=1e-6)
    np.testing.assert_array_equal(xv, x0)


def test_a_view_of_a_dying_tensor_is_not_clobbered(rng):
    w = rng.standard_normal((3, 2, 1, 1)).astype(np.float32)
    net = trtdsl.Network("views")
    x = net.input("x", "float32", (1, 2, 4, 4))
    t = ops.conv2d(x, w, name="conv")
    flat = ops.reshape(t, (1, 48), name="flat")  # may be a view of t's array
    r = ops.relu(t, name="relu")  # t's last direct read, but flat still lives
    net.output(ops.add(ops.reshape(r, (1, 48)), flat, name="add"), "y")
    assert _plan(net)["relu"] == ()
    xv = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    tv = np.einsum("kc,nchw->nkhw", w[:, :, 0, 0], xv).reshape(1, 48)
    np.testing.assert_allclose(run(net, {"x": xv})["y"], np.maximum(tv, 0) + tv, rtol=1e-5, atol=1e-6)


def test_outputs_and_captures_keep_their_values(rng):
    w = rng.standard_normal((3, 2, 1, 1)).astype(np.float32)
    net = trtdsl.Network("outs")
    x = net.input("x", "float32", (1, 2, 3, 3))
    t = ops.conv2d(x, w, name="conv")
    h = ops.conv2d(x, w, name="hidden")
    net.output(t, "t")
    net.output(ops.add(ops.relu(t, name="relu"), ops.relu(h, name="relu_h"), name="add"), "y")
    assert _plan(net)["relu"] == () and _plan(net)["relu_h"] == (0,)
    xv = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    tv = np.einsum("kc,nchw->nkhw", w[:, :, 0, 0], xv)
    out = run(net, {"x": xv}, capture=[h.name])
    assert (out["t"] < 0).any()  # not rectified in place
    np.testing.assert_allclose(out["t"], tv, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[h.name], tv, rtol=1e-5, atol=1e-6)  # captured, so not donated to relu_h
    np.testing.assert_allclose(out["y"], 2 * np.maximum(tv, 0), rtol=1e-5, atol=1e-6)


# (nd, in channels, out channels, spatial, kernel, stride, padding, dilation, groups, bias)
CONVS = [
    (2, 3, 8, (19, 17), 7, 2, 3, 1, 1, True),  # stem: im2col by stride phases
    (3, 2, 4, (9, 8, 7), 5, 2, 2, 1, 1, True),  # 3-D stride phases
    (2, 4, 6, (15, 14), 5, (2, 1), (2, 1), (1, 2), 2, True),  # phases with dilation and groups
    (2, 4, 16, (6, 7), 1, 1, 0, 1, 1, True),  # expanding 1x1: the bias folds into the GEMM
    (2, 16, 4, (6, 7), 1, 1, 0, 1, 1, True),  # reducing 1x1: the bias is added after
    (2, 6, 8, (7, 9), 1, 2, 0, 1, 2, True),  # strided grouped 1x1: copied, bias folded
    (2, 4, 4, (5, 5), 3, 1, 4, 1, 1, False),  # padding so large that some offsets read only zeros
]


@pytest.mark.parametrize("case", CONVS, ids=[f"{c[0]}d-k{c[4]}-s{c[5]}-g{c[8]}" for c in CONVS])
def test_convolution_paths_match_torch_on_repeated_runs(case, rng):
    nd, cin, cout, spatial, k, s, p, d, g, with_bias = case
    w = rng.standard_normal((cout, cin // g, *([k] * nd))).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) if with_bias else None
    net = trtdsl.Network("conv")
    x = net.input("x", "float32", (2, cin, *spatial))
    conv = {2: ops.conv2d, 3: ops.conv3d}[nd]
    net.output(conv(x, w, b, stride=s, padding=p, dilation=d, groups=g), "y")
    tconv = {2: F.conv2d, 3: F.conv3d}[nd]
    for _ in range(2):  # the second run reuses the kept im2col matrix with other values
        xv = rng.standard_normal((2, cin, *spatial)).astype(np.float32)
        ref = tconv(_t(xv), _t(w), None if b is None else _t(b), stride=s, padding=p, dilation=d, groups=g).numpy()
        np.testing.assert_allclose(run(net, {"x": xv})["y"], ref, rtol=1e-4, atol=1e-4)


def test_kept_im2col_matrices_stay_within_their_budget(rng, monkeypatch):
    monkeypatch.setattr(scratch, "_SCRATCH_BYTES", 20_000)
    monkeypatch.setattr(scratch, "_scratch_local", type(scratch._scratch_local)())
    net = trtdsl.Network("budget")
    x = net.input("x", "float32", (1, 3, 12, 12))
    ws = [rng.standard_normal((3, 3, 3, 3)).astype(np.float32) for _ in range(3)]
    y = x
    for i, (w, pad) in enumerate(zip(ws, (1, 2, 0), strict=True)):  # three geometries, ~10-15 kB each
        y = ops.conv2d(y, w, padding=pad, name=f"conv{i}")
    net.output(y, "y")
    xv = rng.standard_normal((1, 3, 12, 12)).astype(np.float32)
    ref = _t(xv)
    for w, pad in zip(ws, (1, 2, 0), strict=True):
        ref = F.conv2d(ref, _t(w), padding=pad)
    for _ in range(2):
        np.testing.assert_allclose(run(net, {"x": xv})["y"], ref.numpy(), rtol=1e-4, atol=1e-4)
    kept = scratch._scratch_local.cache
    assert 0 < len(kept) < 3 and sum(a.nbytes for a in kept.values()) <= 20_000


# ------------------------------------------------------------- buffer pool
# pytest's assert rewriting keeps references to the values in an ``assert``, so each
# ``give`` runs in a statement of its own, its argument a temporary as in the interpreter.
def test_pool_reuses_a_dead_buffer_of_a_wanted_size():
    pool = BufferPool()
    pool.empty((4, 8), np.float32)  # asking marks 128 bytes as wanted
    unwanted = pool.give(np.empty(3, np.float32))
    kept = pool.give(np.empty((2, 16), np.float32))
    assert (unwanted, kept, pool.held) == (False, True, 128)
    address = pool._free[128][-1].ctypes.data
    again = pool.empty((128,), np.uint8)
    assert pool.held == 0 and again.shape == (128,) and again.ctypes.data == address
    fresh = pool.empty((128,), np.uint8)  # none left: a new allocation
    assert fresh.ctypes.data != address


def test_pool_refuses_memory_it_cannot_prove_dead():
    pool = BufferPool()
    pool.empty((16,), np.uint8)
    named = np.zeros(16, np.uint8)
    held_by_name = pool.give(named)
    holder = {"a": np.zeros(16, np.uint8)}
    view = holder["a"][:8]
    read_by_view = pool.give(holder.pop("a"))
    transposed = np.zeros((4, 4), np.uint8)
    view_of_named = pool.give(transposed.T)
    foreign = pool.give(np.frombuffer(bytearray(16), np.uint8))
    read_only = pool.give(_read_only(16))
    strided = pool.give(np.zeros(32, np.uint8)[::2])
    assert pool.held == 0
    assert not any((held_by_name, read_by_view, view_of_named, foreign, read_only, strided))
    assert view.shape == (8,) and named.shape == (16,) and transposed.shape == (4, 4)
    # The same arrays are kept once nothing else can reach them.
    del view
    proof = [pool.give(np.zeros(16, np.uint8)), pool.give(np.zeros((4, 4), np.uint8).T)]
    assert proof == [True, True] and pool.held == 32


def _read_only(n: int) -> np.ndarray:
    a = np.zeros(n, np.uint8)
    a.flags.writeable = False
    return a


def test_pool_stays_within_its_limit():
    pool = BufferPool(limit=1000)
    for n in (400, 300):
        pool.empty((n,), np.uint8)
    kept = [pool.give(np.empty(400, np.uint8)), pool.give(np.empty(400, np.uint8))]
    kept.append(pool.give(np.empty(300, np.uint8)))
    assert kept == [True, True, True]
    assert pool.held == 700  # over 1000 bytes, a buffer of the largest size was let go
    pool.clear()
    assert pool.held == 0


def test_pool_keeps_a_few_buffers_of_a_size_not_every_dead_one():
    # Many dead tensors of a wanted size between two requests: only PER_SIZE are kept.
    from trtdsl.reference.buffers import PER_SIZE

    pool = BufferPool()
    pool.empty((64,), np.float32)
    kept = [pool.give(np.empty(64, np.float32)) for _ in range(PER_SIZE + 5)]
    assert kept == [True] * PER_SIZE + [False] * 5
    assert pool.held == PER_SIZE * 256
    a, b = pool.empty((64,), np.float32), pool.empty((8, 8), np.float32)
    assert a.shape == (64,) and b.shape == (8, 8) and pool.held == (PER_SIZE - 2) * 256


def _conv_chain(rng, depth=4):
    ws = [rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.2 for _ in range(depth)]
    net = trtdsl.Network("chain")
    x = net.input("x", "float32", (1, 8, 10, 10))
    y = x
    for i, w in enumerate(ws):
        y = ops.relu(ops.conv2d(y, w, padding=1, name=f"conv{i}"), name=f"relu{i}")
    net.output(y, "y")

    def reference(xv):
        t = _t(xv)
        for w in ws:
            t = F.relu(F.conv2d(t, _t(w), padding=1))
        return t.numpy()

    return net, reference


def test_results_and_captures_of_an_earlier_run_survive_later_runs(rng):
    net, reference = _conv_chain(rng)
    interp = Interpreter(net)
    x1, x2 = (rng.standard_normal((1, 8, 10, 10)).astype(np.float32) for _ in range(2))
    first = interp.run({"x": x1}, capture=["conv1.out"])
    assert interp.pool.held > 0  # the dead activations of the run were kept for the next
    kept1 = {k: v.copy() for k, v in first.items()}
    for _ in range(3):
        second = interp.run({"x": x2})
    for k in first:
        np.testing.assert_array_equal(first[k], kept1[k])
    np.testing.assert_allclose(first["y"], reference(x1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(second["y"], reference(x2), rtol=1e-4, atol=1e-5)
    assert not np.shares_memory(first["y"], second["y"])


# ------------------------------------------------------------- ReLU fusion
def _fused(net) -> dict[str, bool]:
    """Layer name -> True (applies the next ReLU) / False (a ReLU folded into the layer before)."""
    interp = Interpreter(net)
    plan = interp._fusion
    assert all(v == Epilogue("RELU", 0.0, 0.0) for v in plan.values() if isinstance(v, Epilogue))
    return {interp.steps[pos].name: isinstance(v, Epilogue) for pos, v in plan.items()}


def test_relus_fuse_into_the_layer_before_when_nothing_else_reads_it(rng):
    net, _ = _residual_block(rng)
    assert _fused(net) == {"conv0": True, "relu0": False, "conv1": True, "relu1": False, "add": True, "relu2": False}
    # conv's output is a network output and relu_h's input is read by no one else.
    w = rng.standard_normal((3, 2, 1, 1)).astype(np.float32)
    net = trtdsl.Network("outs")
    x = net.input("x", "float32", (1, 2, 3, 3))
    t = ops.conv2d(x, w, name="conv")
    h = ops.conv2d(x, w, name="hidden")
    twice = ops.conv2d(x, w, name="twice")
    net.output(t, "t")
    y = ops.add(ops.relu(t, name="relu"), ops.relu(h, name="relu_h"), name="add")
    net.output(ops.add(y, ops.add(ops.relu(twice, name="relu_twice"), twice, name="add2"), name="add3"), "y")
    assert _fused(net) == {"hidden": True, "relu_h": False}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_fused_and_unfused_runs_agree_bit_for_bit(rng, dtype):
    net, reference = _residual_block(rng, dtype)
    x = rng.standard_normal((2, 4, 6, 5)).astype(np.float32)
    interp = Interpreter(net)
    assert len(interp._fusion) == (6 if dtype == "float32" else 0)  # float16 tensors are not fused
    fused = interp.run({"x": x})["y"]
    interp._fusion = {}
    plain = interp.run({"x": x})["y"]
    np.testing.assert_array_equal(fused, plain)  # rounding to float16 commutes with the ReLU
    tol = 1e-4 if dtype == "float32" else 2e-2
    np.testing.assert_allclose(fused, reference(x), rtol=tol, atol=tol)


def test_capturing_runs_unfused_so_pre_activations_are_seen(rng):
    net, _ = _conv_chain(rng, depth=2)
    xv = rng.standard_normal((1, 8, 10, 10)).astype(np.float32)
    out = run(net, {"x": xv}, capture="all")
    pre = out["conv0.out"]
    assert (pre < 0).any()  # not rectified in place by a fused ReLU
    np.testing.assert_array_equal(out["relu0.out"], np.maximum(pre, 0))


def test_float32_kernels_are_read_in_place_not_copied(rng):
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    net = trtdsl.Network("view")
    x = net.input("x", "float32", (1, 3, 5, 5))
    net.output(ops.conv2d(x, w, padding=1, name="conv"), "y")
    interp = Interpreter(net)
    xv = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(interp.run({"x": xv})["y"], F.conv2d(_t(xv), _t(w), padding=1).numpy(), rtol=1e-5)
    (node,) = [n for n in interp.nodes if n.type == "convolution"]
    kernels = [v for k, v in node.cache.items() if k[0] == "kernel"]
    assert len(kernels) == 1 and np.shares_memory(kernels[0], node.layer.kernel)
