"""multi_head_attention(fused=True) and transformer_encoder_layer(fused=True) against torch.nn,
and layers.rotary against the Llama RoPE formula."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import layers

torch = pytest.importorskip("torch")
from ._torch_util import close, randomize, run, state  # noqa: E402

nn = torch.nn
B, L, E, H = 2, 5, 16, 4


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _attention_layers(net):
    return [layer.type.name for layer in net.layers() if "ATTENTION" in layer.type.name]


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("kind", ["none", "bool", "float", "causal", "causal+padding", "padding"])
def test_fused_multi_head_attention_matches_torch(kind, trt):
    m = randomize(nn.MultiheadAttention(E, H, batch_first=True))
    x = _x((B, L, E))
    rng = np.random.default_rng(5)
    kpm = np.zeros((B, L), bool)
    kpm[1, -2:] = True
    kw, tkw = {}, {}
    if kind == "bool":
        mask = rng.random((L, L)) < 0.3
        np.fill_diagonal(mask, False)
        kw = tkw = {"attn_mask": mask}
    elif kind == "float":
        kw = tkw = {"attn_mask": rng.standard_normal((L, L)).astype(np.float32)}
    elif kind.startswith("causal"):
        kw, tkw = {"causal": True}, {"attn_mask": np.triu(np.ones((L, L), bool), 1)}
    if "padding" in kind:
        kw, tkw = {**kw, "key_padding_mask": kpm}, {**tkw, "key_padding_mask": kpm}
    net = trtdsl.Network("t")
    y = layers.multi_head_attention(net.input("q", "float32", x.shape), state(m, "attn."), "attn", H, fused=True, **kw)
    net.output(y, "y")
    assert _attention_layers(net) == ["ATTENTION_INPUT", "ATTENTION_OUTPUT"]
    if kind == "causal":  # IAttention's own causal mask, no (L, S) constant
        att = next(layer for layer in net.layers() if layer.type.name == "ATTENTION_INPUT")
        assert att.attention.causal_kind == trt.CausalMaskKind.UPPER_LEFT and att.attention.mask is None
    x_t = torch.from_numpy(x)
    with torch.no_grad():
        tkw = {k: torch.from_numpy(v) for k, v in tkw.items()}
        want, _ = m(x_t, x_t, x_t, need_weights=False, **tkw)
    close(run(net, {"q": x})["y"], want)
    trtdsl.build(net, progress=False)


def test_fused_causal_works_with_dynamic_sequence(trt):
    m = randomize(nn.MultiheadAttention(E, H, batch_first=True))
    net = trtdsl.Network("dyn")
    q = net.input("q", "float32", (2, net.dim("s", 1, 4, 8), E))
    net.output(layers.multi_head_attention(q, state(m, "attn."), "attn", H, fused=True, causal=True), "y")
    for s in (3, 7):
        x = _x((2, s, E), s)
        with torch.no_grad():
            xt = torch.from_numpy(x)
            want, _ = m(xt, xt, xt, need_weights=False, attn_mask=torch.from_numpy(np.triu(np.ones((s, s), bool), 1)))
        close(run(net, {"q": x})["y"], want)


@pytest.mark.parametrize("norm_first", [False, True])
def test_fused_encoder_layer_matches_torch(norm_first):
    m = randomize(nn.TransformerEncoderLayer(E, H, 32, dropout=0.0, batch_first=True, norm_first=norm_first))
    x = _x((B, L, E))
    net = trtdsl.Network("enc")
    y = layers.transformer_encoder_layer(net.input("x", "float32", x.shape), state(m, "enc."), "enc", H,
                                         norm_first=norm_first, fused=True)  # fmt: skip
    net.output(y, "y")
    assert _attention_layers(net) == ["ATTENTION_INPUT", "ATTENTION_OUTPUT"]
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            want = m(torch.from_numpy(x))
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    close(run(net, {"x": x})["y"], want)


# ------------------------------------------------------------------ RoPE
def _llama_rope(x, pos, r, base):
    """Hugging Face Llama: inv_freq = 1/base^(2i/R); emb = cat(freqs, freqs); x*cos + rotate_half(x)*sin."""
    xt = torch.from_numpy(x).double()
    inv = 1.0 / base ** (torch.arange(0, r, 2, dtype=torch.float64) / r)
    freqs = torch.from_numpy(pos).double()[..., None] * inv
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]
    rot = xt[..., :r]
    half = torch.cat([-rot[..., r // 2 :], rot[..., : r // 2]], -1)
    return torch.cat([rot * cos + half * sin, xt[..., r:]], -1).numpy()


@pytest.mark.parametrize(("r", "base"), [(16, 10000.0), (8, 500000.0)])
@pytest.mark.parametrize("with_ids", [False, True])
def test_rotary_matches_llama(r, base, with_ids):
    x = _x((2, 4, 6, 16))
    pos = np.random.default_rng(3).integers(0, 100, (2, 6)) if with_ids else np.tile(np.arange(6), (2, 1))
    net = trtdsl.Network("rope")
    tx = net.input("x", "float32", x.shape)
    feeds = {"x": x}
    ids = None
    if with_ids:
        ids = net.input("pos", "int32", (2, 6))
        feeds["pos"] = pos.astype(np.int32)
    q = layers.rotary(tx, ids, base=base, max_positions=128, rotary_dim=r, name="q_rope")
    k = layers.rotary(tx, ids, base=base, max_positions=128, rotary_dim=r, name="k_rope")
    net.output(q, "q")
    net.output(k, "k")
    out = run(net, feeds)
    want = _llama_rope(x, pos, r, base)
    close(out["q"], want, atol=2e-5)
    close(out["k"], want, atol=2e-5)
    if with_ids:  # q and k share one pair of tables
        consts = [layer.name for layer in net.layers() if layer.type.name == "CONSTANT"]
        assert len(consts) == 2, consts
    trtdsl.build(net, progress=False)


def test_rope_tables_errors():
    with pytest.raises(trtdsl.errors.ShapeError, match="rotary_dim must be even"):
        layers.rope_tables(16, 7)
    with pytest.raises(trtdsl.errors.ShapeError, match=r"inv_freq has shape \(3,\); expected \(4,\)"):
        layers.rope_tables(16, 8, inv_freq=np.ones(3))


def test_fused_works_with_dynamic_batch_and_sequence(trt):
    m = randomize(nn.MultiheadAttention(E, H, batch_first=True))
    net = trtdsl.Network("dyn2")
    q = net.input("q", "float32", (net.dim("b", 1, 2, 4), net.dim("s", 1, 4, 8), E))
    try:
        y = layers.multi_head_attention(q, state(m, "attn."), "attn", H, fused=True, causal=True)
    except trtdsl.errors.ShapeError as e:
        if "cannot both be dynamic" not in str(e):
            raise
        pytest.skip("the projections' reshapes take a dynamic batch and sequence only with the new-user fix")
    net.output(y, "y")
    x = _x((3, 6, E), 9)
    with torch.no_grad():
        xt = torch.from_numpy(x)
        want, _ = m(xt, xt, xt, need_weights=False, attn_mask=torch.from_numpy(np.triu(np.ones((6, 6), bool), 1)))
    close(run(net, {"q": x})["y"], want)
    trtdsl.build(net, progress=False)


def test_llama_decode_step_with_rope_cache_and_gqa(trt):
    """One decoding step as a Llama layer runs it: RoPE at each sequence's position, both caches
    updated in place, grouped-query attention over the valid cache prefix (key_value_lengths).
    Reference: torch on the unpadded prefix, with Hugging Face's RoPE formula."""
    from trtdsl import ops

    b, hq, hkv, d, max_s = 2, 4, 2, 8, 6
    rng = np.random.default_rng(11)
    pos = np.array([2, 4])  # tokens already in each sequence's cache
    q = rng.standard_normal((b, hq, 1, d)).astype(np.float32)
    k = rng.standard_normal((b, hkv, 1, d)).astype(np.float32)
    v = rng.standard_normal((b, hkv, 1, d)).astype(np.float32)
    kc = rng.standard_normal((b, hkv, max_s, d)).astype(np.float32)
    vc = rng.standard_normal((b, hkv, max_s, d)).astype(np.float32)
    net = trtdsl.Network("decode")
    tq, tk, tv = (net.input(n, "float32", a.shape) for n, a in zip("qkv", (q, k, v), strict=True))
    tkc, tvc = net.input("k_cache", "float32", kc.shape), net.input("v_cache", "float32", vc.shape)
    tpos = net.input("pos", "int32", (b, 1))
    tw = net.input("write", "int32", (b,))
    tlen = net.input("length", "int32", (b,))
    rq = layers.rotary(tq, tpos, max_positions=16, name="q_rope")
    rk = layers.rotary(tk, tpos, max_positions=16, name="k_rope")
    kn = ops.kv_cache_update(tkc, rk, tw, name="k_cache_update")
    vn = ops.kv_cache_update(tvc, tv, tw, name="v_cache_update")
    net.output(ops.scaled_dot_product_attention(rq, kn, vn, key_value_lengths=tlen), "y")
    net.output(kn, "k_out")
    net.output(vn, "v_out")  # TensorRT: a cache update's output "must be a network output"
    feeds = {"q": q, "k": k, "v": v, "k_cache": kc, "v_cache": vc, "pos": pos[:, None].astype(np.int32),
             "write": pos.astype(np.int32), "length": (pos + 1).astype(np.int32)}  # fmt: skip
    out = run(net, feeds)
    pos2 = pos[:, None].astype(np.float64)
    q_r = _llama_rope(q, pos2, d, 10000.0)
    k_r = _llama_rope(k, pos2, d, 10000.0)
    for i in range(b):
        n = pos[i] + 1
        keys = np.concatenate([kc[i, :, : pos[i]], k_r[i]], 1).repeat(hq // hkv, 0)
        vals = np.concatenate([vc[i, :, : pos[i]], v[i]], 1).repeat(hq // hkv, 0)
        want = torch.nn.functional.scaled_dot_product_attention(
            torch.from_numpy(q_r[i]), torch.from_numpy(keys).double(), torch.from_numpy(vals).double()
        )
        close(out["y"][i], want, atol=2e-5)
        close(out["k_out"][i, :, pos[i] : n], k_r[i], atol=2e-5)
    trtdsl.build(net, progress=False)
