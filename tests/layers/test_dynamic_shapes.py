"""Blocks with a dynamic batch AND a dynamic sequence, as users write them, against torch.nn.

A BERT-style encoder (token + learned position embeddings, a padding mask, two
encoder layers) is defined once with ``(batch, seq)`` both dynamic, run by the
reference interpreter at several shapes inside the profile and compared with
the same torch modules; TensorRT builds it too.
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import layers, ops
from trtdsl.errors import ShapeError

torch = pytest.importorskip("torch")
from ._torch_util import close, randomize, run, state  # noqa: E402

nn = torch.nn
E, H, V, MAXLEN = 16, 4, 40, 12


class TorchBert(nn.Module):
    """Token + learned position embeddings, then encoder layers with a key padding mask."""

    def __init__(self, n_layers: int = 2):
        super().__init__()
        self.tok = nn.Embedding(V, E)
        self.pos = nn.Embedding(MAXLEN, E)
        self.enc = nn.ModuleList(
            nn.TransformerEncoderLayer(E, H, 32, dropout=0.0, activation="gelu", batch_first=True)
            for _ in range(n_layers)
        )

    def forward(self, ids: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))[None]
        for layer in self.enc:
            x = layer(x, src_key_padding_mask=pad)
        return x


def _bert_net(w: dict[str, np.ndarray], n_layers: int = 2) -> trtdsl.Network:
    net = trtdsl.Network("bert")
    batch, seq = net.dim("batch", 1, 2, 4), net.dim("seq", 1, 6, MAXLEN)
    ids = net.input("ids", "int32", (batch, seq))
    pad = net.input("pad", "bool", (batch, seq))
    x = layers.embedding(ids, w, "tok", positions="pos.weight")
    for i in range(n_layers):
        x = layers.transformer_encoder_layer(x, w, f"enc.{i}", H, act="gelu", key_padding_mask=pad)
    net.output(x, "y")
    return net


@pytest.fixture(scope="module")
def bert():
    m = randomize(TorchBert())
    return m, _bert_net(state(m))


@pytest.mark.parametrize("b,s", [(1, 1), (2, 6), (3, 9), (4, MAXLEN)])
def test_bert_encoder_with_dynamic_batch_and_sequence_matches_torch(bert, b, s):
    m, net = bert
    rng = np.random.default_rng(b * 100 + s)
    ids = rng.integers(0, V, (b, s)).astype(np.int32)
    pad = np.zeros((b, s), bool)
    if s > 2:
        pad[-1, -2:] = True  # the last sequence is padded
    y = run(net, {"ids": ids, "pad": pad})["y"]
    assert y.shape == (b, s, E)
    with torch.no_grad():
        want = m(torch.from_numpy(ids).long(), torch.from_numpy(pad))
    close(y, want, rtol=1e-4, atol=2e-5)


def test_bert_encoder_shapes_stay_dynamic_and_tensorrt_builds_it(bert):
    _, net = bert
    assert net.outputs["y"].shape == (-1, -1, E)
    # One small layer is enough to show TensorRT accepts the dynamic reshapes and the fill.
    small = _bert_net(state(randomize(TorchBert(n_layers=1))), n_layers=1)
    plan = trtdsl.build(small, progress=False)
    assert plan.inputs["ids"].shape == ("batch", "seq")


def test_multi_head_attention_causal_with_dynamic_lengths_matches_torch():
    m = randomize(nn.MultiheadAttention(E, H, batch_first=True))
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (net.dim("b", 1, 2, 3), net.dim("s", 1, 4, 8), E))
    net.output(layers.multi_head_attention(x, state(m, "attn."), "attn", H, causal=True), "y")
    for b, s in [(1, 3), (3, 7)]:
        xv = np.random.default_rng(s).standard_normal((b, s, E)).astype(np.float32)
        mask = torch.triu(torch.ones(s, s, dtype=torch.bool), 1)
        with torch.no_grad():
            want, _ = m(*(torch.from_numpy(xv),) * 3, attn_mask=mask, need_weights=False)
        close(run(net, {"x": xv})["y"], want)


def test_sinusoidal_positions_with_dynamic_length_use_the_profile_maximum():
    emb = randomize(nn.Embedding(V, E))
    net = trtdsl.Network("t")
    ids = net.input("ids", "int32", (2, net.dim("seq", 1, 4, 9)))
    net.output(layers.embedding(ids, state(emb, "tok."), "tok", positions="sinusoidal"), "y")
    for s in (1, 9):
        iv = np.random.default_rng(s).integers(0, V, (2, s)).astype(np.int32)
        p, i = np.arange(s)[:, None], np.arange(E)[None, :]
        angle = p / np.power(10000.0, (i - i % 2) / E)  # the formula, written out independently
        want = emb(torch.from_numpy(iv).long()).detach().numpy() + np.where(i % 2 == 0, np.sin(angle), np.cos(angle))
        close(run(net, {"ids": iv})["y"], want, rtol=1e-5, atol=1e-5)


def test_sinusoidal_positions_for_an_intermediate_dynamic_tensor_need_max_length():
    emb = randomize(nn.Embedding(V, E))
    net = trtdsl.Network("t")
    ids = net.input("ids", "int32", (2, net.dim("seq", 1, 4, 9)))
    with pytest.raises(ShapeError, match=r"embedding 'tok': sinusoidal positions for a dynamic sequence length need "
                       r"max_length="):  # fmt: skip
        layers.embedding(ops.add(ids, 0), state(emb, "tok."), "tok", positions="sinusoidal")


def test_learned_positions_shorter_than_the_sequence_name_the_table():
    emb, pos = randomize(nn.Embedding(V, E)), randomize(nn.Embedding(4, E))
    net = trtdsl.Network("t")
    ids = net.input("ids", "int32", (2, 6))
    with pytest.raises(ShapeError, match=r"positions 'pos.weight' has shape \(4, 16\); expected \(max_len >= 6, 16\)"):
        layers.embedding(ids, state(emb, "tok.") | state(pos, "pos."), "tok", positions="pos.weight")
