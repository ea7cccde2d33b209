"""lstm, gru and simple_rnn (TensorRT loops) against torch.nn.LSTM/GRU/RNN and the math written out."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import layers
from trtdsl.errors import ShapeError

torch = pytest.importorskip("torch")
from ._torch_util import close, randomize, run, state  # noqa: E402

nn = torch.nn
T, B, D_IN, H = 6, 2, 5, 4


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _build(fn, w, x, **kw):
    net = trtdsl.Network("t")
    out, state_ = fn(net.input("x", "float32", x.shape), w, "rnn", H, **kw)
    net.output(out, "out")
    states = state_ if isinstance(state_, tuple) else (state_,)
    for i, s in enumerate(states):
        net.output(s, f"s{i}")
    got = run(net, {"x": x})
    return net, got["out"], [got[f"s{i}"] for i in range(len(states))]


CASES = [
    dict(num_layers=1, bidirectional=False, batch_first=False),
    dict(num_layers=2, bidirectional=False, batch_first=True),
    dict(num_layers=1, bidirectional=True, batch_first=False),
    dict(num_layers=2, bidirectional=True, batch_first=True),
]


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize(
    "case", CASES, ids=lambda c: f"L{c['num_layers']}{'bi' * c['bidirectional']}{'bf' * c['batch_first']}"
)
def test_recurrent_layers_match_torch(kind, case, trt):
    module = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind](D_IN, H, **case)
    m = randomize(module)
    x = _x((B, T, D_IN) if case["batch_first"] else (T, B, D_IN))
    fn = {"lstm": layers.lstm, "gru": layers.gru, "rnn": layers.simple_rnn}[kind]
    net, out, states = _build(fn, state(m, "rnn."), x, **case)
    with torch.no_grad():
        want_out, want_state = m(torch.from_numpy(x))
    close(out, want_out)
    for got, want in zip(states, want_state if kind == "lstm" else (want_state,)):
        close(got, want)
    # Built on TensorRT loops: one per layer and direction.
    n_loops = case["num_layers"] * (2 if case["bidirectional"] else 1)
    assert sum(layer.type == trt.LayerType.TRIP_LIMIT for layer in net.layers()) == n_loops


def test_lstm_with_initial_states_matches_torch():
    m = randomize(nn.LSTM(D_IN, H, num_layers=2))
    x, h0, c0 = _x((T, B, D_IN)), _x((2, B, H), 1), _x((2, B, H), 2)
    net = trtdsl.Network("t")
    out, (_, c) = layers.lstm(net.input("x", "float32", x.shape), state(m), "", H, num_layers=2,
                              h0=net.input("h0", "float32", h0.shape), c0=net.input("c0", "float32", c0.shape))  # fmt: skip
    net.output(out, "out")
    net.output(c, "c")
    got = run(net, {"x": x, "h0": h0, "c0": c0})
    with torch.no_grad():
        want, (_, wc) = m(torch.from_numpy(x), (torch.from_numpy(h0), torch.from_numpy(c0)))
    close(got["out"], want)
    close(got["c"], wc)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_match_packed_sequences(kind, bidirectional):
    m = randomize({"lstm": nn.LSTM, "gru": nn.GRU}[kind](D_IN, H, bidirectional=bidirectional, batch_first=True))
    x = _x((B, T, D_IN))
    lengths = [T, 3]
    fn = {"lstm": layers.lstm, "gru": layers.gru}[kind]
    _, out, states = _build(fn, state(m, "rnn."), x, bidirectional=bidirectional, batch_first=True, lengths=lengths)
    packed = nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.tensor(lengths), batch_first=True)
    with torch.no_grad():
        want_packed, want_state = m(packed)
    want_out, _ = nn.utils.rnn.pad_packed_sequence(want_packed, batch_first=True, total_length=T)
    close(out, want_out)
    close(states[0], want_state[0] if kind == "lstm" else want_state)


def test_gru_with_keras_gate_order_matches_torch():
    """Keras stores GRU gates z, r, h: reorder torch's weights that way and say so with gate_order."""
    m = randomize(nn.GRU(D_IN, H))
    w = state(m)
    zrh = [1, 0, 2]  # torch blocks r, z, n -> stored z, r, n
    for k in list(w):
        w[k] = np.concatenate([w[k][g * H : (g + 1) * H] for g in zrh])
    x = _x((T, B, D_IN))
    _, out, _ = _build(layers.gru, {"rnn." + k: v for k, v in w.items()}, x, gate_order="zrh")
    with torch.no_grad():
        close(out, m(torch.from_numpy(x))[0])


def test_lstm_with_keras_gate_order_matches_torch():
    m = randomize(nn.LSTM(D_IN, H))
    w = {"rnn." + k: v for k, v in state(m).items()}  # torch i, f, g, o; Keras i, f, c, o is the same order
    x = _x((T, B, D_IN))
    _, out, _ = _build(layers.lstm, w, x, gate_order="ifco")
    with torch.no_grad():
        close(out, m(torch.from_numpy(x))[0])


def _gru_reset_before(x, w_ih, w_hh, b_ih, b_hh):
    """Keras GRU(reset_after=False) written from its equations, gates r, z, n, in float64."""
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h = np.zeros((x.shape[1], H))
    outs = []
    for t in range(x.shape[0]):
        xr, xz, xn = np.split(x[t] @ w_ih.T + b_ih, 3, axis=1)
        r = sig(xr + h @ w_hh[:H].T + b_hh[:H])
        z = sig(xz + h @ w_hh[H : 2 * H].T + b_hh[H : 2 * H])
        n = np.tanh(xn + (r * h) @ w_hh[2 * H :].T + b_hh[2 * H :])
        h = (1 - z) * n + z * h
        outs.append(h)
    return np.stack(outs)


def test_gru_reset_before_matches_the_equations():
    m = randomize(nn.GRU(D_IN, H))
    w = state(m)
    x = _x((T, B, D_IN))
    _, out, (h,) = _build(layers.gru, {"rnn." + k: v for k, v in w.items()}, x, reset_after=False)
    want = _gru_reset_before(x.astype(np.float64), *(w[k].astype(np.float64) for k in
                             ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")))  # fmt: skip
    close(out, want.astype(np.float32))
    close(h, want[-1:].astype(np.float32))
    # The reset gate is applied before the recurrent matmul, so torch's GRU differs:
    with torch.no_grad():
        assert not np.allclose(out, m(torch.from_numpy(x))[0].numpy(), atol=1e-3)


def test_relu_rnn_matches_torch():
    m = randomize(nn.RNN(D_IN, H, nonlinearity="relu"))
    x = _x((T, B, D_IN))
    _, out, _ = _build(layers.simple_rnn, {"rnn." + k: v for k, v in state(m).items()}, x, nonlinearity="relu")
    with torch.no_grad():
        close(out, m(torch.from_numpy(x))[0])


def test_recurrent_errors():
    w = {"rnn." + k: v for k, v in state(randomize(nn.LSTM(D_IN, H))).items()}
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (T, B, D_IN + 1))
    with pytest.raises(
        ShapeError, match=r"lstm 'rnn': weight 'rnn\.weight_ih_l0' has shape \(16, 5\), expected \(16, 6\)"
    ):
        layers.lstm(x, w, "rnn", H)
    with pytest.raises(ShapeError, match=r"gate_order 'ifgx' must be a permutation of 'ifgo'"):
        layers.lstm(x, w, "rnn", H, gate_order="ifgx")
    with pytest.raises(ShapeError, match=r"expected \(seq, batch, features\)"):
        layers.lstm(net.input("y", "float32", (T, D_IN)), w, "rnn", H)


def test_gru_with_dynamic_batch():
    m = randomize(nn.GRU(D_IN, H, bidirectional=True))
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (T, net.dim("batch", 1, 2, 4), D_IN))
    out, h = layers.gru(x, state(m), "", H, bidirectional=True)
    net.output(out, "out")
    net.output(h, "h")
    assert out.shape == (T, -1, 2 * H)
    xv = _x((T, 3, D_IN))
    got = run(net, {"x": xv})
    with torch.no_grad():
        want, want_h = m(torch.from_numpy(xv))
    close(got["out"], want)
    close(got["h"], want_h)
