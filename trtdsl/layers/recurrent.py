"""LSTM, GRU and simple RNN layers built on TensorRT loops (``ops.Loop`` over ``add_loop``).

TensorRT 11 has no RNN layer. Each direction of each layer here is one loop:
the input projection ``x @ W_ih.T + b`` for every time step is one matrix
multiply before the loop (a large GEMM instead of T small ones), and the loop
body holds only the recurrent ``h @ W_hh.T`` and the gate arithmetic.

Weights use torch's names and layout: ``weight_ih_l{k}`` (G*H, I),
``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}``, ``bias_hh_l{k}``, with a
``_reverse`` suffix for the backward direction. ``gate_order`` names the order
of the G gate blocks in those weights: torch's LSTM ``'ifgo'`` and GRU ``'rzn'``
by default; Keras stores ``'ifco'`` and ``'zrh'`` (c = g, h = n).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from .. import ops
from ..errors import ShapeError
from ..tensor import Tensor
from ..weights.store import WeightStore
from ._params import Weights, block

__all__ = ["lstm", "gru", "simple_rnn"]

MaskLike = Tensor | np.ndarray | None
Activation = Callable[[Tensor], Tensor]
_CANON = {"lstm": "ifgo", "gru": "rzn", "rnn": "h"}
_ALIAS = {"lstm": {"c": "g"}, "gru": {"h": "n"}, "rnn": {}}


def _gate_perm(kind: str, gate_order: str, where: str) -> list[int]:
    """Indices of the stored gate blocks in canonical order (torch's)."""
    canon = _CANON[kind]
    order = "".join(_ALIAS[kind].get(g, g) for g in gate_order.lower())
    if sorted(order) != sorted(canon):
        raise ShapeError(f"{where}: gate_order {gate_order!r} must be a permutation of {canon!r}")
    return [order.index(g) for g in canon]


def _reorder(a: np.ndarray | None, perm: list[int], hidden: int) -> np.ndarray | None:
    if a is None or perm == sorted(perm):
        return a
    return np.concatenate([a[i * hidden : (i + 1) * hidden] for i in perm])


def _time_mask(mask: MaskLike, lengths: Sequence[int] | np.ndarray | None, x: Tensor, where: str) -> Tensor | None:
    """A (T, B, 1) bool tensor, True on valid steps, from a (B, T) mask or per-sequence lengths."""
    t, b = x.shape[0], x.shape[1]
    if lengths is not None:
        if mask is not None:
            raise ShapeError(f"{where}: give mask or lengths, not both")
        if t < 0:
            raise ShapeError(f"{where}: lengths need a static sequence length; pass a (batch, seq) mask tensor")
        mask = np.arange(t)[None, :] < np.asarray(lengths).reshape(-1, 1)
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        m = np.asarray(mask).astype(bool)
        if m.ndim != 2 or (b >= 0 and m.shape[0] != b) or (t >= 0 and m.shape[1] != t):
            raise ShapeError(f"{where}: mask has shape {m.shape}; expected (batch, seq) = ({b}, {t})")
        return x.net.constant(np.ascontiguousarray(m.T[:, :, None]), "mask")
    if mask.ndim != 2:
        raise ShapeError(f"{where}: mask {mask.name!r} has shape {mask.shape}; expected (batch, seq)")
    m = mask if mask.dtype == "bool" else ops.not_equal(mask, 0, name="mask.bool")
    return ops.unsqueeze(ops.permute(m, (1, 0), name="mask.time_major"), 2, name="mask")


def _zeros(like: Tensor, hidden: int, name: str) -> Tensor:
    """(B, hidden) zeros; B is taken from ``like`` (T, B, ...)."""
    b = like.shape[1]
    if b >= 0:
        return like.net.constant(np.zeros((b, hidden), np.float32), name)
    # Dynamic batch: zeros shaped like one step of the input projection.
    return ops.mul(like[0, :, :hidden], 0.0, name=name)


def _named(fn: Activation, x: Tensor, name: str) -> Tensor:
    # The built-in activations take the readable layer name; a caller's function names its own layers.
    return fn(x, name=name) if fn in (ops.tanh, ops.relu, ops.sigmoid) else fn(x)  # type: ignore[call-arg]


def _direction(
    kind: str, xs: Tensor, p: WeightStore, suffix: str, hidden: int, init: list[Tensor | None], mask: Tensor | None,
    reverse: bool, perm: list[int], reset_after: bool, acts: tuple[Activation, Activation], zero_masked: bool = True,
) -> tuple[Tensor, list[Tensor]]:  # fmt: skip
    """One direction of one layer: (outputs (T, B, H), final states); ``acts`` = (activation, gate activation)."""
    act, gate = acts
    g = len(_CANON[kind])
    i_size = xs.shape[-1]
    w_ih = _reorder(p.take(f"weight_ih{suffix}", (g * hidden, i_size)), perm, hidden)
    w_hh = _reorder(p.take(f"weight_hh{suffix}", (g * hidden, hidden)), perm, hidden)
    b_ih = _reorder(p.optional(f"bias_ih{suffix}", (g * hidden,)), perm, hidden)
    b_hh = _reorder(p.optional(f"bias_hh{suffix}", (g * hidden,)), perm, hidden)
    b_in = np.zeros(g * hidden, np.float32) if b_ih is None else b_ih.copy()
    b_rec = np.zeros(g * hidden, np.float32) if b_hh is None else b_hh.copy()
    if kind == "gru" and reset_after:
        # r * (W_hn h + b_hn): b_hn stays inside the loop; the other recurrent biases fold into the projection.
        b_in[: 2 * hidden] += b_rec[: 2 * hidden]
        b_rec[: 2 * hidden] = 0
    else:
        b_in += b_rec
        b_rec = None
    net = xs.net
    name = f"l{suffix.rsplit('_l', maxsplit=1)[-1]}"
    xp = ops.linear(xs, w_ih, b_in, name=f"{name}.input_proj")  # (T, B, G*H) in one GEMM
    states = [
        s if s is not None else _zeros(xp, hidden, f"{name}.{s_name}0")
        for s, s_name in zip(init, "hc"[: len(init)], strict=True)
    ]
    loop = ops.Loop(net, xs.shape[0] if xs.shape[0] >= 0 else None, name=name)
    with loop:
        rec = [loop.recurrence(s) for s in states]
        xt = loop.iterate(xp, 0, reverse=reverse)
        h = rec[0]
        if kind == "lstm":
            gi, gf, gg, go = ops.chunk(ops.add(xt, ops.linear(h, w_hh, name="hh"), name="gates"), 4, 1, name="gate")
            c = ops.add(ops.mul(gate(gf), rec[1]), ops.mul(gate(gi), act(gg)), name="c")
            new = [ops.mul(gate(go), act(c), name="h"), c]
        elif kind == "gru":
            xr, xz, xn = ops.chunk(xt, 3, 1, name="x_gate")
            if reset_after:
                hr, hz, hn = ops.chunk(ops.linear(h, w_hh, b_rec, name="hh"), 3, 1, name="h_gate")
                r, z = gate(ops.add(xr, hr)), gate(ops.add(xz, hz))
                n = _named(act, ops.add(xn, ops.mul(r, hn)), "n")
            else:
                hr, hz = ops.chunk(ops.linear(h, w_hh[: 2 * hidden], name="hh_rz"), 2, 1, name="h_gate")
                r, z = gate(ops.add(xr, hr)), gate(ops.add(xz, hz))
                n = _named(act, ops.add(xn, ops.linear(ops.mul(r, h), w_hh[2 * hidden :], name="hh_n")), "n")
            # (1 - z) * n + z * h, written with one multiply.
            new = [ops.add(n, ops.mul(z, ops.sub(h, n)), name="h")]
        else:
            pre = ops.add(xt, ops.linear(h, w_hh, name="hh"), name="pre")
            new = [_named(act, pre, "h")]
        out = new[0]
        if mask is not None:
            # Masked steps keep the state and output zeros, as torch's packed sequences do.
            m = loop.iterate(mask, 0, reverse=reverse)
            new = [ops.where(m, v, r_, name=f"{v.name}.masked") for v, r_ in zip(new, rec, strict=True)]
            # Keras (zero_output_for_mask=False) repeats the kept state instead.
            out = ops.where(m, new[0], 0.0, name="out") if zero_masked else new[0]
        for r_, v in zip(rec, new, strict=True):
            r_.set_next(v)
        seq = loop.output(out, "reverse" if reverse else "concat")
        finals = [loop.output(r_, "last") for r_ in rec]
    return seq, finals


def _stack_states(states: list[Tensor], name: str) -> Tensor:
    return ops.stack(states, 0, name=name)


def _recurrent(
    kind: str, x: Tensor, w: Weights, prefix: str, hidden_size: int | None, *, num_layers: int,
    bidirectional: bool, batch_first: bool, initial: Sequence[Tensor | None], mask: MaskLike,
    lengths: Any, gate_order: str | None, reset_after: bool = True, nonlinearity: str = "tanh",
    zero_masked: bool = True, activation: Activation | None = None, recurrent_activation: Activation | None = None,
) -> tuple[Tensor, list[Tensor]]:  # fmt: skip
    p = block(w, prefix, kind if kind != "rnn" else "simple_rnn")
    if x.ndim != 3:
        raise ShapeError(f"{p.where}: input {x.name!r} has shape {x.shape}; expected (seq, batch, features)"
                         f"{' with batch_first' if batch_first else ''}")  # fmt: skip
    if nonlinearity not in ("tanh", "relu"):
        raise ShapeError(f"{p.where}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    acts = (activation or (ops.relu if nonlinearity == "relu" else ops.tanh), recurrent_activation or ops.sigmoid)
    if hidden_size is None:
        hidden_size = p.take("weight_hh_l0").shape[-1]
    perm = _gate_perm(kind, gate_order or _CANON[kind], p.where)
    dirs = 2 if bidirectional else 1
    net = x.net
    scope = net.scope(prefix) if prefix else net.scope(kind)
    with scope:
        xs = ops.permute(x, (1, 0, 2), name="time_major") if batch_first else x
        m = _time_mask(mask, lengths, xs, p.where)
        finals: list[list[Tensor]] = [[] for _ in initial]
        for layer in range(num_layers):
            outs = []
            for d in range(dirs):
                idx = layer * dirs + d
                init = [None if s is None else s[idx] for s in initial]
                suffix = f"_l{layer}{'_reverse' if d else ''}"
                seq, fin = _direction(
                    kind, xs, p, suffix, hidden_size, init, m, bool(d), perm, reset_after, acts, zero_masked
                )
                outs.append(seq)
                for f_list, f in zip(finals, fin, strict=True):
                    f_list.append(f)
            xs = outs[0] if dirs == 1 else ops.concat(outs, 2, name=f"l{layer}.concat")
        out = ops.permute(xs, (1, 0, 2), name="batch_major") if batch_first else xs
        return out, [_stack_states(f, f"{'hc'[i]}_n") for i, f in enumerate(finals)]


def lstm(
    x: Tensor,
    w: Weights,
    prefix: str = "",
    hidden_size: int | None = None,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    batch_first: bool = False,
    h0: Tensor | None = None,
    c0: Tensor | None = None,
    mask: MaskLike = None,
    lengths: Sequence[int] | np.ndarray | None = None,
    gate_order: str = "ifgo",
    zero_masked: bool = True,
    activation: Activation | None = None,
    recurrent_activation: Activation | None = None,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """``torch.nn.LSTM``: returns ``(output, (h_n, c_n))`` with torch's shapes.

    Args:
        x: (T, B, I), or (B, T, I) with ``batch_first``.
        h0, c0: (num_layers * directions, B, H); zeros when None.
        mask, lengths: a (B, T) mask (True = valid step) or per-sequence lengths: padded
            steps keep the state and output zeros, like ``pack_padded_sequence``.
        gate_order: order of the gate blocks in the weights ('ifgo' torch, 'ifco' Keras).
        zero_masked: masked steps output zeros (torch); False repeats the kept state (Keras' default).
        activation, recurrent_activation: ``fn(tensor) -> tensor`` in place of tanh (cell and output) and
            sigmoid (gates), as Keras' options of those names (``hard_sigmoid`` gates in Keras 2 models).

    Example::

        y, (h, c) = lstm(x, w, "encoder.rnn", 256, num_layers=2, bidirectional=True)
    """
    out, (h, c) = _recurrent(
        "lstm", x, w, prefix, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
        batch_first=batch_first, initial=(h0, c0), mask=mask, lengths=lengths, gate_order=gate_order,
        zero_masked=zero_masked, activation=activation, recurrent_activation=recurrent_activation,
    )  # fmt: skip
    return out, (h, c)


def gru(
    x: Tensor,
    w: Weights,
    prefix: str = "",
    hidden_size: int | None = None,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    batch_first: bool = False,
    h0: Tensor | None = None,
    mask: MaskLike = None,
    lengths: Sequence[int] | np.ndarray | None = None,
    gate_order: str = "rzn",
    reset_after: bool = True,
    zero_masked: bool = True,
    activation: Activation | None = None,
    recurrent_activation: Activation | None = None,
) -> tuple[Tensor, Tensor]:
    """``torch.nn.GRU``: returns ``(output, h_n)``.

    ``reset_after=True`` is torch's (and Keras' default) form ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``;
    ``reset_after=False`` is Keras' other form ``n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)``.
    Keras stores its gates as ``gate_order='zrh'``. Other arguments as for ``lstm`` (``activation`` replaces
    the tanh of n, ``recurrent_activation`` the sigmoid of r and z).

    Example::

        y, h = gru(x, w, "", 64, bidirectional=True)
    """
    out, (h,) = _recurrent(
        "gru", x, w, prefix, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
        batch_first=batch_first, initial=(h0,), mask=mask, lengths=lengths, gate_order=gate_order,
        reset_after=reset_after, zero_masked=zero_masked, activation=activation,
        recurrent_activation=recurrent_activation,
    )  # fmt: skip
    return out, h


def simple_rnn(
    x: Tensor,
    w: Weights,
    prefix: str = "",
    hidden_size: int | None = None,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    batch_first: bool = False,
    h0: Tensor | None = None,
    mask: MaskLike = None,
    lengths: Sequence[int] | np.ndarray | None = None,
    nonlinearity: Literal["tanh", "relu"] = "tanh",
    zero_masked: bool = True,
    activation: Activation | None = None,
) -> tuple[Tensor, Tensor]:
    """``torch.nn.RNN``: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)``; returns ``(output, h_n)``.

    ``activation`` (``fn(tensor) -> tensor``) replaces the ``nonlinearity`` (Keras' SimpleRNN option).

    Example::

        y, h = simple_rnn(x, w, "rnn", 32, nonlinearity="relu")
    """
    out, (h,) = _recurrent(
        "rnn", x, w, prefix, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
        batch_first=batch_first, initial=(h0,), mask=mask, lengths=lengths, gate_order=None,
        nonlinearity=nonlinearity, zero_masked=zero_masked, activation=activation,
    )  # fmt: skip
    return out, h
