"""mlp, multi_head_attention, transformer_encoder_layer and embedding against torch.nn."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import layers
from trtdsl.errors import ShapeError, WeightError

torch = pytest.importorskip("torch")
from ._torch_util import close, randomize, run, state  # noqa: E402

nn = torch.nn
B, L, E, H = 2, 5, 16, 4


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_mlp_matches_torch_sequential():
    m = randomize(nn.Sequential(nn.Linear(E, 32), nn.GELU(), nn.Dropout(), nn.Linear(32, E)))
    x = _x((B, L, E))
    net = trtdsl.Network("t")
    y = layers.mlp(net.input("x", "float32", x.shape), state(m, "mlp."), "mlp", names=("0", "3"), hidden_features=32)
    net.output(y, "y")
    close(run(net, {"x": x})["y"], m(torch.from_numpy(x)))


def _mha_net(w, num_heads, q, k=None, v=None, **kw):
    net = trtdsl.Network("t")
    tq = net.input("q", "float32", q.shape)
    tk = None if k is None else net.input("k", "float32", k.shape)
    tv = None if v is None else net.input("v", "float32", v.shape)
    net.output(layers.multi_head_attention(tq, w, "attn", num_heads, key=tk, value=tv, **kw), "y")
    feeds = {"q": q} | ({} if k is None else {"k": k}) | ({} if v is None else {"v": v})
    return run(net, feeds)["y"], net


@pytest.mark.parametrize("bias", [True, False])
def test_self_attention_fused_qkv_matches_torch(bias, trt):
    m = randomize(nn.MultiheadAttention(E, H, bias=bias, batch_first=True))
    x = _x((B, L, E))
    got, net = _mha_net(state(m, "attn."), H, x)
    with torch.no_grad():
        want, _ = m(*(torch.from_numpy(x),) * 3, need_weights=False)
    close(got, want)
    # One matmul computes q, k and v; no TensorRT attention layer is used.
    mm = [layer.name for layer in net.layers() if layer.type == trt.LayerType.MATRIX_MULTIPLY]
    assert "attn.qkv" in mm or "attn.qkv.matmul" in mm
    assert not any("ATTENTION" in layer.type.name for layer in net.layers())


def test_cross_attention_with_separate_projections_matches_torch():
    m = randomize(nn.MultiheadAttention(E, H, kdim=12, vdim=8, batch_first=True))
    w = state(m, "attn.")
    assert "attn.q_proj_weight" in w and "attn.in_proj_weight" not in w
    q, k, v = _x((B, L, E)), _x((B, 7, 12), 1), _x((B, 7, 8), 2)
    got, _ = _mha_net(w, H, q, k, v)
    with torch.no_grad():
        want, _ = m(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v), need_weights=False)
    close(got, want)


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("kind", ["bool", "float", "causal"])
def test_attention_masks_match_torch(kind):
    m = randomize(nn.MultiheadAttention(E, H, batch_first=True))
    x = _x((B, L, E))
    rng = np.random.default_rng(5)
    kpm = np.zeros((B, L), bool)
    kpm[1, -2:] = True  # padding keys of the second sequence
    if kind == "bool":
        mask = rng.random((L, L)) < 0.3
        np.fill_diagonal(mask, False)
        kw = {"attn_mask": mask}
    elif kind == "float":
        mask = rng.standard_normal((L, L)).astype(np.float32)
        kw = {"attn_mask": mask}
    else:
        mask = np.triu(np.ones((L, L), bool), 1)
        kw = {"causal": True}
    got, _ = _mha_net(state(m, "attn."), H, x, key_padding_mask=kpm, **kw)
    with torch.no_grad():
        t = torch.from_numpy(x)
        want, _ = m(t, t, t, attn_mask=torch.from_numpy(mask), key_padding_mask=torch.from_numpy(kpm),
                    need_weights=False)  # fmt: skip
    close(got, want)


def test_attention_mask_as_a_bool_tensor_input():
    m = randomize(nn.MultiheadAttention(E, H, batch_first=True))
    x = _x((B, L, E))
    kpm = np.zeros((B, L), bool)
    kpm[0, -1] = True
    net = trtdsl.Network("t")
    tx, tm = net.input("x", "float32", x.shape), net.input("kpm", "bool", kpm.shape)
    net.output(layers.multi_head_attention(tx, state(m, "a."), "a", H, key_padding_mask=tm), "y")
    with torch.no_grad():
        t = torch.from_numpy(x)
        want, _ = m(t, t, t, key_padding_mask=torch.from_numpy(kpm), need_weights=False)
    close(run(net, {"x": x, "kpm": kpm})["y"], want)


def test_attention_errors_name_block_and_key():
    m = randomize(nn.MultiheadAttention(E, H, batch_first=True))
    w = state(m, "attn.")
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (B, L, E))
    with pytest.raises(ShapeError, match=r"multi_head_attention 'attn': embed dim 16 is not divisible by num_heads=3"):
        layers.multi_head_attention(x, w, "attn", 3)
    del w["attn.out_proj.weight"]
    with pytest.raises(WeightError, match=r"linear 'attn\.out_proj' \(in multi_head_attention 'attn'\): missing "
                       r"weight 'attn\.out_proj\.weight' \(expected shape \(16, 16\)\)"):  # fmt: skip
        layers.multi_head_attention(x, w, "attn", H)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_transformer_encoder_layer_matches_torch(norm_first, act):
    m = randomize(nn.TransformerEncoderLayer(E, H, 32, dropout=0.0, activation=act, batch_first=True,
                                             norm_first=norm_first))  # fmt: skip
    x = _x((B, L, E))
    kpm = np.zeros((B, L), bool)
    kpm[1, -1] = True
    net = trtdsl.Network("t")
    y = layers.transformer_encoder_layer(net.input("x", "float32", x.shape), state(m, "enc.0."), "enc.0", H,
                                         norm_first=norm_first, act=act, key_padding_mask=kpm)  # fmt: skip
    net.output(y, "y")
    with torch.no_grad():
        want = m(torch.from_numpy(x), src_key_padding_mask=torch.from_numpy(kpm))
    close(run(net, {"x": x})["y"], want)
    assert "enc.0.mlp_residual" in [layer.name for layer in net.layers()]


@pytest.mark.parametrize("positions", [None, "sinusoidal", "pos.weight"])
def test_embedding_with_positions(positions):
    emb, pos = randomize(nn.Embedding(50, E)), randomize(nn.Embedding(10, E), seed=1)
    ids = np.random.default_rng(0).integers(0, 50, (B, L)).astype(np.int32)
    w = state(emb, "tok.") | state(pos, "pos.")
    net = trtdsl.Network("t")
    y = layers.embedding(net.input("ids", "int32", ids.shape), w, "tok", positions=positions, scale=4.0)
    net.output(y, "y")
    want = emb(torch.from_numpy(ids).long()).detach().numpy() * 4.0
    if positions == "pos.weight":
        want = want + w["pos.weight"][:L]
    elif positions == "sinusoidal":
        # The formula written out independently: PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(...).
        p, i = np.arange(L)[:, None], np.arange(E)[None, :]
        angle = p / np.power(10000.0, (i - i % 2) / E)
        want = want + np.where(i % 2 == 0, np.sin(angle), np.cos(angle))
    close(run(net, {"ids": ids})["y"], want, rtol=1e-5, atol=1e-5)


def test_transformer_encoder_layer_with_dynamic_batch():
    m = randomize(nn.TransformerEncoderLayer(E, H, 32, dropout=0.0, batch_first=True))
    net = trtdsl.Network("t")
    x = net.input("x", "float32", (net.dim("batch", 1, 2, 4), L, E))
    y = layers.transformer_encoder_layer(x, state(m), "", H)
    net.output(y, "y")
    assert y.shape == (-1, L, E)
    assert not any(layer.name.startswith(".") for layer in net.layers()), "an empty prefix adds no scope"
    xv = _x((3, L, E))
    with torch.no_grad():
        close(run(net, {"x": xv})["y"], m(torch.from_numpy(xv)))
