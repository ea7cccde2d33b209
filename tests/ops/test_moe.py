"""ops.moe (IMoELayer) through the reference interpreter, against a torch mixture of experts.

The reference is written here from NvInfer.h's description of IMoELayer, in float64 torch and
token by token: for each token and each of its topK choices, the chosen expert's GLU
``fcDown(fcUp(x) * act(fcGate(x)))`` with ``fc(x) = x @ w + b`` and ``act`` =
``torch.nn.functional.silu`` or identity, weighted by the choice's score and summed. The
interpreter instead groups the tokens by expert; both modes run (tests/ops/conftest.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ops, reference
from trtdsl.errors import InterpreterError, ShapeError, TrtdslError, UnsupportedLayerError
from trtdsl.layerinfo import downcast

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.usefixtures("trt")

TOL = {
    "float32": dict(rtol=1e-5, atol=1e-5),
    # the weights, activations and scores are stored in the narrow type; sums of ~H*I products
    "float16": dict(rtol=1e-2, atol=2e-2),
    "bfloat16": dict(rtol=6e-2, atol=1.5e-1),
}


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def moe_torch(x, experts, scores, gate_w, up_w, down_w, biases=None, activation="silu"):
    """Σ_k score_k * expert_{id_k}(x), one token and one choice at a time, in float64."""
    xs, sc = _t(x), _t(scores)
    wg, wu, wd = _t(gate_w), _t(up_w), _t(down_w)
    bg, bu, bd = (None, None, None) if biases is None else (_t(b) for b in biases)
    act = F.silu if activation == "silu" else (lambda v: v)
    out = torch.zeros_like(xs)
    batch, seq, top_k = experts.shape
    for b in range(batch):
        for s in range(seq):
            token = xs[b, s]
            for k in range(top_k):
                e = int(experts[b, s, k])
                gate = token @ wg[e] + (0 if bg is None else bg[e])
                up = token @ wu[e] + (0 if bu is None else bu[e])
                y = (act(gate) * up) @ wd[e] + (0 if bd is None else bd[e])
                out[b, s] += sc[b, s, k] * y
    return out.numpy()


def _routing(rng, batch, seq, n_experts, top_k):
    """Distinct experts per token, as a router's top-k picks them, and softmax-normalized scores."""
    ids = np.stack([rng.permutation(n_experts)[:top_k] for _ in range(batch * seq)]).reshape(batch, seq, top_k)
    logits = rng.standard_normal((batch, seq, top_k))
    scores = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return ids.astype(np.int32), scores.astype(np.float32)


def _weights(rng, n_experts, hidden, inter, bias):
    w = (
        (rng.standard_normal((n_experts, hidden, inter)) / np.sqrt(hidden)).astype(np.float32),
        (rng.standard_normal((n_experts, hidden, inter)) / np.sqrt(hidden)).astype(np.float32),
        (rng.standard_normal((n_experts, inter, hidden)) / np.sqrt(inter)).astype(np.float32),
    )
    b = None
    if bias:
        b = (
            rng.standard_normal((n_experts, inter)).astype(np.float32),
            rng.standard_normal((n_experts, inter)).astype(np.float32),
            rng.standard_normal((n_experts, hidden)).astype(np.float32),
        )
    return w, b


def _net(x, ids, scores, dtype="float32", ids_dtype="int32"):
    net = trtdsl.Network("moe", dtype=dtype)
    tx = net.input("x", "float32", x.shape)
    ti = net.input("ids", ids_dtype, ids.shape)
    ts = net.input("scores", "float32", scores.shape)
    return net, tx, ti, ts


def _run(net, y, feeds):
    net.output(y, "y")
    return reference.run(net, feeds)["y"]


# (B, S, H, I, numExperts, topK)
SHAPES = [
    (1, 1, 8, 16, 4, 1),
    (2, 3, 16, 32, 8, 2),
    (1, 5, 12, 6, 3, 3),  # I < H, every expert chosen by every token
    (3, 2, 8, 8, 2, 2),  # H == I
    (2, 4, 16, 24, 6, 4),
]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("activation", ["silu", None])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}S{}H{}I{}E{}K{}".format(*s))
def test_moe_matches_torch(shape, bias, activation, dtype, rng):
    batch, seq, hidden, inter, n_experts, top_k = shape
    x = rng.standard_normal((batch, seq, hidden)).astype(np.float32)
    ids, scores = _routing(rng, batch, seq, n_experts, top_k)
    (wg, wu, wd), biases = _weights(rng, n_experts, hidden, inter, bias)
    net, tx, ti, ts = _net(x, ids, scores, dtype)
    y = ops.moe(tx, ti, ts, wg, wu, wd, *(biases or ()), activation=activation)
    assert y.shape == x.shape and y.dtype == dtype
    got = _run(net, y, {"x": x, "ids": ids, "scores": scores})
    expected = moe_torch(x, ids, scores, wg, wu, wd, biases, "silu" if activation else None)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.astype(np.float64), expected, **TOL[dtype])


def test_moe_bfloat16_network(rng):
    x = rng.standard_normal((2, 3, 16)).astype(np.float32)
    ids, scores = _routing(rng, 2, 3, 4, 2)
    (wg, wu, wd), biases = _weights(rng, 4, 16, 32, True)
    net, tx, ti, ts = _net(x, ids, scores, "bfloat16")
    y = ops.moe(tx, ti, ts, wg, wu, wd, *biases)
    got = np.asarray(_run(net, y, {"x": x, "ids": ids, "scores": scores}), np.float64)
    expected = moe_torch(x, ids, scores, wg, wu, wd, biases)
    np.testing.assert_allclose(got, expected, **TOL["bfloat16"])
    assert np.abs(got - expected).max() > 1e-4  # the bfloat16 storage shows: not a float32 run


def test_moe_int64_ids_tensor_weights_and_repeated_experts(rng):
    """Weights as network inputs (read from inputs 3-5), int64 ids, and a token that lists one expert twice."""
    x = rng.standard_normal((1, 4, 8)).astype(np.float32)
    ids = np.array([[[0, 2], [1, 1], [2, 0], [2, 2]]], np.int64)
    scores = rng.random((1, 4, 2)).astype(np.float32)
    (wg, wu, wd), biases = _weights(rng, 3, 8, 12, True)
    net, tx, ti, ts = _net(x, ids, scores, ids_dtype="int64")
    ws = [net.input(n, "float32", a.shape) for n, a in zip(("wg", "wu", "wd", "bg", "bu", "bd"), (wg, wu, wd, *biases))]
    y = ops.moe(tx, ti, ts, *ws)
    feeds = {"x": x, "ids": ids, "scores": scores, "wg": wg, "wu": wu, "wd": wd}
    feeds |= dict(zip(("bg", "bu", "bd"), biases, strict=True))
    got = _run(net, y, feeds)
    np.testing.assert_allclose(got, moe_torch(x, ids, scores, wg, wu, wd, biases), rtol=1e-5, atol=1e-5)


def test_moe_missing_biases_are_zeros(rng):
    """IMoELayer takes all three biases or none; a bias not given is a zero bias."""
    x = rng.standard_normal((2, 2, 8)).astype(np.float32)
    ids, scores = _routing(rng, 2, 2, 3, 2)
    (wg, wu, wd), (bg, bu, bd) = _weights(rng, 3, 8, 4, True)
    net, tx, ti, ts = _net(x, ids, scores)
    y = ops.moe(tx, ti, ts, wg, wu, wd, down_bias=bd)
    assert downcast(net.trt.get_layer(net.trt.num_layers - 1)).num_inputs == 9
    got = _run(net, y, {"x": x, "ids": ids, "scores": scores})
    zeros = (np.zeros_like(bg), np.zeros_like(bu), bd)
    np.testing.assert_allclose(got, moe_torch(x, ids, scores, wg, wu, wd, zeros), rtol=1e-5, atol=1e-5)


def test_moe_with_a_router_built_from_ops(rng):
    """The usual block: softmax over router logits, top-k, then the experts (torch.topk in the reference)."""
    x = rng.standard_normal((2, 5, 16)).astype(np.float32)
    router = rng.standard_normal((16, 6)).astype(np.float32)
    (wg, wu, wd), _ = _weights(rng, 6, 16, 24, False)
    net = trtdsl.Network("routed")
    tx = net.input("x", "float32", x.shape)
    probs = ops.softmax(ops.matmul(tx, router), -1)
    top, ids = ops.topk(probs, 2)
    got = _run(net, ops.moe(tx, ids, top, wg, wu, wd), {"x": x})
    p = torch.softmax(_t(x) @ _t(router), -1)
    top_ref, ids_ref = torch.topk(p, 2)
    expected = moe_torch(x, ids_ref.numpy(), top_ref.numpy(), wg, wu, wd)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_moe_dynamic_sequence(rng):
    (wg, wu, wd), biases = _weights(rng, 4, 8, 16, True)
    net = trtdsl.Network("dyn")
    net.dim("seq", 1, 4, 8)
    tx = net.input("x", "float32", (1, "seq", 8))
    ti, ts = net.input("ids", "int32", (1, "seq", 2)), net.input("scores", "float32", (1, "seq", 2))
    y = ops.moe(tx, ti, ts, wg, wu, wd, *biases)
    assert y.shape == (1, -1, 8)
    net.output(y, "y")
    for seq in (1, 3, 8):
        x = rng.standard_normal((1, seq, 8)).astype(np.float32)
        ids, scores = _routing(rng, 1, seq, 4, 2)
        got = reference.run(net, {"x": x, "ids": ids, "scores": scores})["y"]
        np.testing.assert_allclose(got, moe_torch(x, ids, scores, wg, wu, wd, biases), rtol=1e-5, atol=1e-5)


def test_moe_constant_routing_and_names(trt, rng):
    x = rng.standard_normal((1, 2, 8)).astype(np.float32)
    ids, scores = _routing(rng, 1, 2, 3, 2)
    (wg, wu, wd), biases = _weights(rng, 3, 8, 4, True)
    net = trtdsl.Network("names")
    tx = net.input("x", "float32", x.shape)
    with net.scope("block"):
        y = ops.moe(tx, ids, scores, wg, wu, wd, *biases, name="experts")
    assert y.name == "block.experts.out"
    layer = downcast(net.trt.get_layer(net.trt.num_layers - 1))
    assert layer.name == "block.experts" and layer.type == trt.LayerType.MOE
    assert layer.activation_type == trt.MoEActType.SILU and layer.num_inputs == 9
    inputs = [layer.get_input(i).name for i in range(layer.num_inputs)]
    roles = ["selected_experts", "scores", "gate_weight", "up_weight", "down_weight", "gate_bias", "up_bias"]
    assert inputs == ["x", *(f"block.experts.{r}.out" for r in roles), "block.experts.down_bias.out"]
    # The weights are stored as given, (numExperts, in, out), under the layer's name.
    np.testing.assert_array_equal(net.weights["block.experts.gate_weight"], wg)
    np.testing.assert_array_equal(net.weights["block.experts.down_weight"], wd)
    np.testing.assert_array_equal(net.weights["block.experts.selected_experts"], ids)
    got = _run(net, y, {"x": x})
    np.testing.assert_allclose(got, moe_torch(x, ids, scores, wg, wu, wd, biases), rtol=1e-5, atol=1e-5)


def test_moe_has_no_cpu_plan_in_rtx(trt, rng):
    """IMoELayer needs SM 10.x/11.x (NvInfer.h); TensorRT-RTX's CPU build refuses it (measured, 1.7.1)."""
    if not trt.__name__.startswith("tensorrt_rtx"):
        pytest.skip("only TensorRT-RTX's CPU build is known to refuse MoE; full TensorRT builds it on Blackwell")
    (wg, wu, wd), _ = _weights(rng, 4, 16, 32, False)
    net = trtdsl.Network("build")
    tx = net.input("x", "float32", (1, 2, 16))
    ti, ts = net.input("ids", "int32", (1, 2, 2)), net.input("scores", "float32", (1, 2, 2))
    net.output(ops.moe(tx, ti, ts, wg, wu, wd), "y")
    with pytest.raises(trtdsl.errors.BuildError, match="moe"):
        trtdsl.build(net, progress=False)
    pytest.skip("IMoELayer cannot be built into a plan by TensorRT-RTX's CPU build ('Cannot decompose ... moe_fc1')")


# ------------------------------------------------------------------ errors
def _bad_net():
    net = trtdsl.Network("bad")
    x = net.input("x", "float32", (2, 3, 8))
    ids, scores = net.input("ids", "int32", (2, 3, 2)), net.input("scores", "float32", (2, 3, 2))
    return net, x, ids, scores


E, H, INTER = 4, 8, 16
G, U, D = (np.zeros(s, np.float32) for s in ((E, H, INTER), (E, H, INTER), (E, INTER, H)))


def test_moe_rejects_wrong_ranks_and_dtypes():
    net, x, ids, scores = _bad_net()
    with pytest.raises(ShapeError, match=r"moe: hidden_states 'x4' is float32 \(2, 3, 8, 1\); expected float \(batch"):
        ops.moe(net.input("x4", "float32", (2, 3, 8, 1)), ids, scores, G, U, D)
    with pytest.raises(ShapeError, match=r"selected_experts 'fids' has dtype float32; IMoELayer takes int32 or int64"):
        ops.moe(x, net.input("fids", "float32", (2, 3, 2)), scores, G, U, D)
    with pytest.raises(ShapeError, match="selected_experts has dtype float64; expected integer expert indices"):
        ops.moe(x, np.zeros((2, 3, 2)), scores, G, U, D)
    with pytest.raises(ShapeError, match=r"selected_experts 'ids2' has shape \(6, 2\); expected .* \(2, 3, topK\)"):
        ops.moe(x, net.input("ids2", "int32", (6, 2)), scores, G, U, D)
    with pytest.raises(ShapeError, match=r"'x.moe.*selected_experts 'ids4' has shape \(2, 4, 2\)"):
        ops.moe(x, net.input("ids4", "int32", (2, 4, 2)), net.input("sc4", "float32", (2, 4, 2)), G, U, D)
    with pytest.raises(ShapeError, match=r"scores 'sc3' has shape \(2, 3, 3\); expected the shape of selected_expe"):
        ops.moe(x, ids, net.input("sc3", "float32", (2, 3, 3)), G, U, D)


def test_moe_rejects_mismatched_weights():
    _, x, ids, scores = _bad_net()
    with pytest.raises(ShapeError, match=r"gate_weight .* has shape \(4, 16, 8\); expected \(numExperts, H, I\) with H = 8.*np.swapaxes"):  # fmt: skip
        ops.moe(x, ids, scores, np.zeros((E, INTER, H), np.float32), U, D)
    with pytest.raises(ShapeError, match=r"up_weight .* has shape \(5, 8, 16\); expected \(numExperts, H, I\) like gate_weight = \(4, 8, 16\)"):  # fmt: skip
        ops.moe(x, ids, scores, G, np.zeros((E + 1, H, INTER), np.float32), D)
    with pytest.raises(ShapeError, match=r"down_weight .* has shape \(4, 8, 16\); expected \(numExperts, I, H\) = \(4, 16, 8\).*swapaxes"):  # fmt: skip
        ops.moe(x, ids, scores, G, U, np.zeros((E, H, INTER), np.float32))
    with pytest.raises(ShapeError, match=r"gate_weight .* has shape \(8, 16\); expected \(numExperts, H, I\)"):
        ops.moe(x, ids, scores, G[0], U, D)
    with pytest.raises(ShapeError, match=r"down_bias .* has shape \(4, 16\); expected \(numExperts, H\) = \(4, 8\)"):
        ops.moe(x, ids, scores, G, U, D, down_bias=np.zeros((E, INTER), np.float32))
    with pytest.raises(ShapeError, match=r"gate_bias .* has shape \(3, 16\); expected \(numExperts, I\) = \(4, 16\)"):
        ops.moe(x, ids, scores, G, U, D, gate_bias=np.zeros((3, INTER), np.float32))


def test_moe_rejects_bad_activation_and_constant_ids_out_of_range():
    _, x, ids, scores = _bad_net()
    with pytest.raises(TrtdslError, match=r"moe: activation 'gelu' is not one IMoELayer has; expected 'silu'"):
        ops.moe(x, ids, scores, G, U, D, activation="gelu")
    bad = np.array([[[0, 1], [2, 4], [3, 0]]] * 2, np.int32)
    with pytest.raises(ShapeError, match=r"selected expert 4 is outside the 4 experts \(valid 0..3\)"):
        ops.moe(x, bad, scores, G, U, D)


# ---------------------------------------------- what the interpreter refuses
def _raw_moe(trt, rng, configure):
    """A raw-API MoE network, set up by ``configure(layer, net)``, and feeds for it."""
    (wg, wu, wd), _ = _weights(rng, 4, 8, 16, False)
    net = trtdsl.Network("raw")
    x = net.input("x", "float32", (1, 2, 8))
    ids, scores = net.input("ids", "int32", (1, 2, 2)), net.input("scores", "float32", (1, 2, 2))
    cs = [net.constant(w, n) for w, n in ((wg, "wg"), (wu, "wu"), (wd, "wd"))]
    layer = net.trt.add_moe(x.trt, ids.trt, scores.trt)
    layer.set_gated_weights(*(c.trt for c in cs), trt.MoEActType.SILU)
    configure(layer, net)
    net.output(net.register(layer, "moe", "raw_moe"), "y")
    feeds = {"x": rng.standard_normal((1, 2, 8)).astype(np.float32), "ids": np.array([[[0, 1], [2, 3]]], np.int32)}
    feeds["scores"] = np.full((1, 2, 2), 0.5, np.float32)
    return net, feeds, (wg, wu, wd)


def test_interpreter_runs_a_raw_api_moe(trt, rng):
    net, feeds, (wg, wu, wd) = _raw_moe(trt, rng, lambda layer, net: None)
    got = reference.run(net, feeds)["y"]
    np.testing.assert_allclose(got, moe_torch(feeds["x"], feeds["ids"], feeds["scores"], wg, wu, wd), rtol=1e-5, atol=1e-5)  # fmt: skip


def test_interpreter_refuses_quantized_moe(trt, rng):
    def static_fp8(layer, net):
        layer.set_quantization_static(net.constant(np.float32(0.1), "s").trt, trt.fp8)

    net, feeds, _ = _raw_moe(trt, rng, static_fp8)
    with pytest.raises(UnsupportedLayerError, match=r"moe 'raw_moe': quantization of the mul output .*FP8, 1 scale"):
        reference.run(net, feeds)


def test_interpreter_refuses_swiglu_params(trt, rng):
    net, feeds, _ = _raw_moe(trt, rng, lambda layer, net: layer.set_swiglu_params(7.0, 1.702, 1.0))
    with pytest.raises(UnsupportedLayerError, match=r"moe 'raw_moe': SwiGLU parameters .* \(7.0, 1.70.*, 1.0\) differ"):
        reference.run(net, feeds)


@pytest.mark.parametrize("bad", [4, -1])
def test_interpreter_refuses_expert_ids_out_of_range(trt, rng, bad):
    net, feeds, _ = _raw_moe(trt, rng, lambda layer, net: None)
    feeds["ids"] = np.array([[[0, 1], [bad, 3]]], np.int32)
    with pytest.raises(
        InterpreterError, match=rf"moe 'raw_moe': selected expert {bad} at \(0, 1, 0\) is outside the 4"
    ):
        reference.run(net, feeds)
