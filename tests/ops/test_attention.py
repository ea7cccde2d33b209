"""ops.scaled_dot_product_attention, rotary_embedding and kv_cache_update through the reference interpreter.

References: torch.nn.functional.scaled_dot_product_attention in float64 (K/V heads repeated
for grouped-query attention), the lower-right causal formula of NvInfer.h's CausalMaskKind,
the two published Llama RoPE formulas (Hugging Face's rotate_half and Meta's complex
multiply), and plain slice assignment for the cache update.
"""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import ops, reference
from trtdsl.errors import ShapeError

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.usefixtures("trt")

TOL = {
    "float32": dict(rtol=1e-5, atol=1e-5),
    "float16": dict(rtol=5e-3, atol=5e-3),
    "bfloat16": dict(rtol=3e-2, atol=3e-2),  # 8 significant bits, through the scaled q and k and the softmax
}


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def _sdpa_torch(q, k, v, mask=None, causal=False, scale=None):
    """torch's attention with K/V heads repeated for GQA; a bool mask keeps True, as torch does."""
    group = q.shape[1] // k.shape[1]
    kk, vv = _t(k).repeat_interleave(group, 1), _t(v).repeat_interleave(group, 1)
    m = None if mask is None else (torch.from_numpy(mask) if mask.dtype == bool else _t(mask))
    return F.scaled_dot_product_attention(_t(q), kk, vv, attn_mask=m, is_causal=causal, scale=scale).numpy()


def _run(net, y, feeds):
    net.output(y, "y")
    return reference.run(net, feeds)["y"]


def _qkv(rng, b, hq, hkv, sq, skv, d):
    return (
        rng.standard_normal((b, hq, sq, d)).astype(np.float32),
        rng.standard_normal((b, hkv, skv, d)).astype(np.float32),
        rng.standard_normal((b, hkv, skv, d)).astype(np.float32),
    )


def _net(q, k, v, dtype="float32"):
    net = trtdsl.Network("attn", dtype=dtype)
    return net, [net.input(n, "float32", a.shape) for n, a in zip("qkv", (q, k, v), strict=True)]


# (batch, q heads, kv heads, Sq, Skv, head_dim)
SHAPES = [(1, 2, 2, 4, 4, 8), (2, 4, 2, 5, 7, 16), (2, 6, 1, 3, 9, 8), (1, 8, 8, 1, 6, 32), (3, 4, 4, 6, 2, 4)]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_matches_torch(shape, causal, dtype, rng):
    q, k, v = _qkv(rng, *shape)
    net, (tq, tk, tv) = _net(q, k, v, dtype)
    y = ops.scaled_dot_product_attention(tq, tk, tv, causal=causal)
    assert y.shape == q.shape
    out = _run(net, y, {"q": q, "k": k, "v": v})
    ref = _sdpa_torch(q, k, v, causal=causal)
    np.testing.assert_allclose(out, ref, **TOL[dtype])
    if dtype != "float32":  # the narrow type's rounding happened: worse than float32 would be
        assert np.abs(out - ref).max() > 1e-4


@pytest.mark.parametrize("scale", [0.05, 1.0, -0.3])
def test_sdpa_explicit_scale(scale, rng):
    q, k, v = _qkv(rng, 2, 2, 2, 3, 5, 8)
    net, (tq, tk, tv) = _net(q, k, v)
    out = _run(net, ops.scaled_dot_product_attention(tq, tk, tv, scale=scale), {"q": q, "k": k, "v": v})
    np.testing.assert_allclose(out, _sdpa_torch(q, k, v, scale=scale), rtol=1e-5, atol=1e-5)


# mask shapes broadcast over batch and heads, and lower ranks
MASKS = [(2, 4, 5, 7), (1, 1, 5, 7), (2, 1, 5, 7), (1, 4, 5, 7), (5, 7), (4, 5, 7), (1, 7)]


@pytest.mark.parametrize("kind", ["bool", "float"])
@pytest.mark.parametrize("mshape", MASKS, ids=str)
@pytest.mark.parametrize("as_input", [False, True])
def test_sdpa_masks_match_torch(kind, mshape, as_input, rng):
    q, k, v = _qkv(rng, 2, 4, 2, 5, 7, 8)
    if kind == "bool":
        mask = rng.random(mshape) < 0.7
        mask[..., 0] = True  # every query row keeps a key: torch gives NaN for a row with none
    else:
        mask = (rng.standard_normal(mshape) * 2).astype(np.float32)
    net, (tq, tk, tv) = _net(q, k, v)
    feeds = {"q": q, "k": k, "v": v}
    m = mask
    if as_input:
        m = net.input("m", "bool" if kind == "bool" else "float32", mask.shape)
        feeds["m"] = mask
    out = _run(net, ops.scaled_dot_product_attention(tq, tk, tv, mask=m), feeds)
    np.testing.assert_allclose(out, _sdpa_torch(q, k, v, mask=mask), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("sq", "skv"), [(1, 6), (3, 8), (5, 5), (6, 4)])
def test_lower_right_causal_matches_formula(sq, skv, rng):
    """NvInfer.h: kLOWER_RIGHT keeps key j for query i when j <= i + (Skv - Sq)."""
    q, k, v = _qkv(rng, 2, 4, 2, sq, skv, 8)
    net, (tq, tk, tv) = _net(q, k, v)
    out = _run(net, ops.scaled_dot_product_attention(tq, tk, tv, causal="lower_right"), {"q": q, "k": k, "v": v})
    i, j = np.arange(sq)[:, None], np.arange(skv)[None, :]
    keep = j <= i + (skv - sq)
    rows = keep.any(axis=1)  # with Sq > Skv the first rows keep no key: compare the rest
    ref = _sdpa_torch(q, k, v, mask=np.where(keep, keep, ~rows[:, None]))
    np.testing.assert_allclose(out[:, :, rows], ref[:, :, rows], rtol=1e-5, atol=1e-5)
    if sq == skv:  # both alignments agree on a square
        np.testing.assert_allclose(out, _sdpa_torch(q, k, v, causal=True), rtol=1e-5, atol=1e-5)


def test_upper_left_string_equals_true(rng):
    q, k, v = _qkv(rng, 1, 2, 2, 3, 6, 4)
    outs = []
    for causal in (True, "upper_left"):
        net, (tq, tk, tv) = _net(q, k, v)
        outs.append(_run(net, ops.scaled_dot_product_attention(tq, tk, tv, causal=causal), {"q": q, "k": k, "v": v}))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[0], _sdpa_torch(q, k, v, causal=True), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lengths", [[7, 3], [1, 5], [7, 7]])
def test_key_value_lengths_ignore_padded_keys(lengths, rng):
    q, k, v = _qkv(rng, 2, 4, 2, 5, 7, 8)
    net, (tq, tk, tv) = _net(q, k, v)
    lt = net.input("len", "int32", (2,))
    out = _run(net, ops.scaled_dot_product_attention(tq, tk, tv, key_value_lengths=lt),
               {"q": q, "k": k, "v": v, "len": np.array(lengths, np.int32)})  # fmt: skip
    for b, n in enumerate(lengths):  # torch on the unpadded keys of each batch item
        ref = _sdpa_torch(q[b : b + 1], k[b : b + 1, :, :n], v[b : b + 1, :, :n])
        np.testing.assert_allclose(out[b : b + 1], ref, rtol=1e-5, atol=1e-5)


def test_dynamic_batch_and_sequence(rng):
    net = trtdsl.Network("dyn")
    b, s = net.dim("b", 1, 2, 4), net.dim("s", 1, 8, 16)
    tq = net.input("q", "float32", (b, 4, s, 8))
    tk = net.input("k", "float32", (b, 2, s, 8))
    tv = net.input("v", "float32", (b, 2, s, 8))
    y = ops.scaled_dot_product_attention(tq, tk, tv, causal=True)
    net.output(y, "y")
    for shape in [(1, 4, 2, 2, 8), (3, 4, 2, 11, 8)]:
        q, k, v = _qkv(rng, shape[0], 4, 2, shape[3], shape[3], 8)
        out = reference.run(net, {"q": q, "k": k, "v": v})["y"]
        np.testing.assert_allclose(out, _sdpa_torch(q, k, v, causal=True), rtol=1e-5, atol=1e-5)
    trtdsl.build(net, progress=False)


def test_layer_names_are_readable(rng):
    q, k, v = _qkv(rng, 1, 2, 2, 3, 3, 4)
    net, (tq, tk, tv) = _net(q, k, v)
    with net.scope("block"):
        y = ops.scaled_dot_product_attention(tq, tk, tv, name="attn")
    assert y.name == "block.attn.out"
    names = [net.trt.get_layer(i).name for i in range(net.trt.num_layers)]
    assert "block.attn.input" in names and "block.attn" in names
    # The layers the op adds beside IAttention (the scaling, the mask constant) are in the scope once:
    # they were 'block.block.attn2.q_scaled' and 'block.block.attn2.mask'.
    before = net.trt.num_layers
    with net.scope("block"):
        ops.scaled_dot_product_attention(tq, tk, tv, mask=np.tril(np.ones((3, 3), bool)), scale=0.5, name="attn2")
        cos, sin = np.ones((1, 3, 2), np.float32), np.zeros((1, 3, 2), np.float32)
        ops.rotary_embedding(tq, cos, sin, name="rope")
    added = [net.trt.get_layer(i).name for i in range(before, net.trt.num_layers)]
    assert {"block.attn2.q_scaled", "block.attn2.k_scaled", "block.attn2.mask", "block.rope.cos"} <= set(added), added
    assert all(n.startswith("block.") and not n.startswith("block.block") for n in added), added


@pytest.mark.parametrize("causal", [False, "upper_left", "lower_right"])
@pytest.mark.parametrize(("packed_q", "packed_kv"), [(True, True), (True, False)])
def test_packed_forms_match_torch_per_sequence(packed_q, packed_kv, causal, rng):
    q_len, kv_len, hq, hkv, d = [3, 1, 4], [5, 2, 4], 4, 2, 8
    sq, skv = max(q_len), max(kv_len)
    qp, kp, vp = _qkv(rng, 3, hq, hkv, sq, skv, d)  # padded; packed inputs take each sequence's valid rows

    def pack(x, lens):
        return np.concatenate([x[b, :, :n].transpose(1, 0, 2) for b, n in enumerate(lens)])

    cum = lambda n: np.concatenate([[0], np.cumsum(n)]).astype(np.int32)  # noqa: E731
    q = pack(qp, q_len) if packed_q else qp
    k, v = (pack(kp, kv_len), pack(vp, kv_len)) if packed_kv else (kp, vp)
    net, (tq, tk, tv) = _net(q, k, v)
    feeds = {"q": q, "k": k, "v": v, "kl": cum(kv_len) if packed_kv else np.array(kv_len, np.int32)}
    kw = {"key_value_lengths": net.input("kl", "int32", feeds["kl"].shape), "causal": causal}
    if packed_q:
        feeds["ql"] = cum(q_len)
        kw["query_lengths"] = net.input("ql", "int32", (4,))
    out = _run(net, ops.scaled_dot_product_attention(tq, tk, tv, **kw), feeds)
    assert out.shape == q.shape
    starts = cum(q_len)
    for b in range(3):
        nq = q_len[b] if packed_q else sq  # a padded query keeps all its rows
        qb = qp[b : b + 1, :, :nq]
        kb, vb = kp[b : b + 1, :, : kv_len[b]], vp[b : b + 1, :, : kv_len[b]]
        # Lower right aligns to the key/value tensor's length: each sequence's own when packed, the
        # padded length otherwise (NvInfer.h's formula with Skv; see docs/modern-layers.md).
        i, j = np.arange(nq)[:, None], np.arange(kv_len[b])[None]
        skv_b = kv_len[b] if packed_kv else skv
        keep = {False: None, "upper_left": j <= i, "lower_right": j <= i + skv_b - nq}[causal]
        if keep is not None and not keep.any(axis=1).all():
            continue  # a row with no key left is NaN in torch and undefined in TensorRT
        ref = _sdpa_torch(qb, kb, vb, mask=keep)
        got = out[starts[b] : starts[b + 1]].transpose(1, 0, 2)[None] if packed_q else out[b : b + 1]
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_packed_attention_has_no_cpu_plan(trt, rng):
    if not trt.__name__.startswith("tensorrt_rtx"):
        pytest.skip("only TensorRT-RTX's CPU build lacks the packed kernel")
    net = trtdsl.Network("packed")
    tq, tk, tv = (net.input(n, "float32", (6, 2, 8)) for n in "qkv")
    lengths = net.input("len", "int32", (3,))
    y = ops.scaled_dot_product_attention(tq, tk, tv, query_lengths=lengths, key_value_lengths=lengths)
    net.output(y, "y")
    with pytest.raises(trtdsl.TrtdslError, match="packed"):
        trtdsl.build(net, progress=False)
    pytest.skip("packed (NHD) attention has no decomposition and no fused kernel in TensorRT-RTX's CPU build")


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("variant", ["causal", "mask", "lengths", "gqa"])
def test_sdpa_builds_on_cpu(variant, dtype, rng):
    net = trtdsl.Network("build", dtype=dtype)
    tq = net.input("q", "float32", (2, 4, 5, 8))
    hk = 2 if variant == "gqa" else 4
    tk, tv = net.input("k", "float32", (2, hk, 7, 8)), net.input("v", "float32", (2, hk, 7, 8))
    kw = {
        "causal": {"causal": "lower_right"},
        "mask": {"mask": rng.random((5, 7)) < 0.5},
        "lengths": {"key_value_lengths": net.input("len", "int32", (2,))},
        "gqa": {},
    }[variant]
    net.output(ops.scaled_dot_product_attention(tq, tk, tv, **kw), "y")
    plan = trtdsl.build(net, progress=False)
    assert plan is not None


def test_not_decomposable_does_not_build_on_rtx_cpu(trt, rng):
    """The reason decomposable is the default: TensorRT-RTX's CPU build has no fused float32 kernel."""
    if not trt.__name__.startswith("tensorrt_rtx"):
        pytest.skip("only TensorRT-RTX's CPU build lacks the fused kernel")
    net = trtdsl.Network("nodec")
    tq, tk, tv = (net.input(n, "float32", (1, 2, 4, 8)) for n in "qkv")
    net.output(ops.scaled_dot_product_attention(tq, tk, tv, decomposable=False), "y")
    with pytest.raises(trtdsl.TrtdslError, match="decomposable"):
        trtdsl.build(net, progress=False)


def test_sdpa_bad_inputs_raise():
    net = trtdsl.Network("bad")
    q = net.input("q", "float32", (1, 3, 4, 8))
    k = net.input("k", "float32", (1, 2, 4, 8))
    with pytest.raises(ShapeError, match="multiple of the key/value heads"):
        ops.scaled_dot_product_attention(q, k, k)
    k4 = net.input("k4", "float32", (1, 3, 4, 4))
    with pytest.raises(ShapeError, match="head_dim 8 differs"):
        ops.scaled_dot_product_attention(q, k4, k4)
    with pytest.raises(ShapeError, match=r"expected \(batch, heads, seq, head_dim\), or packed"):
        ops.scaled_dot_product_attention(q, net.input("k2", "float32", (4, 8)), q)
    k3 = net.input("k3", "float32", (5, 3, 8))
    with pytest.raises(ShapeError, match="both be padded or both packed"):
        ops.scaled_dot_product_attention(q, k3, q)
    with pytest.raises(ShapeError, match="packed keys/values .* need packed queries too"):
        ops.scaled_dot_product_attention(q, k3, k3, key_value_lengths=[0, 5])
    q3 = net.input("q3", "float32", (4, 3, 8))
    with pytest.raises(ShapeError, match="packed keys/values .* need key_value_lengths"):
        ops.scaled_dot_product_attention(q3, k3, k3, query_lengths=[0, 4])
    with pytest.raises(ShapeError, match="query_lengths goes with packed"):
        ops.scaled_dot_product_attention(q, q, q, query_lengths=[0, 4])
    with pytest.raises(ShapeError, match="mask on packed inputs"):
        ops.scaled_dot_product_attention(q3, k3, k3, query_lengths=[0, 4], key_value_lengths=[0, 5],
                                         mask=np.ones((4, 5), bool))  # fmt: skip
    with pytest.raises(ShapeError, match="either mask or causal"):
        ops.scaled_dot_product_attention(q, q, q, mask=np.ones((4, 4), bool), causal=True)
    with pytest.raises(ShapeError, match="causal must be"):
        ops.scaled_dot_product_attention(q, q, q, causal="upper")
    with pytest.raises(ShapeError, match="key_value_lengths.*expected int32"):
        ops.scaled_dot_product_attention(q, q, q, key_value_lengths=net.input("l", "int64", (1,)))
    with pytest.raises(ShapeError, match="mask.*dtype int32"):
        ops.scaled_dot_product_attention(q, q, q, mask=net.input("mi", "int32", (4, 4)))


# ------------------------------------------------------------------ rotary embedding
def _inv_freq(r, base=10000.0):
    return 1.0 / base ** (np.arange(0, r, 2, dtype=np.float64) / r)


def _hf_llama(x, pos, r):
    """Hugging Face's apply_rotary_pos_emb: x*cos + rotate_half(x)*sin on the first r features."""
    xt = _t(x)
    ang = torch.from_numpy(pos[..., None] * _inv_freq(r))  # (B, S, R/2)
    emb = torch.cat([ang, ang], -1)
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]
    rot, rest = xt[..., :r], xt[..., r:]
    half = torch.cat([-rot[..., r // 2 :], rot[..., : r // 2]], -1)
    return torch.cat([rot * cos + half * sin, rest], -1).numpy()


def _meta_llama(x, pos, r):
    """Meta's original Llama apply_rotary_emb: adjacent pairs as complex numbers times e^{i·angle}."""
    xt = _t(x)
    ang = torch.from_numpy(pos[..., None] * _inv_freq(r))
    freqs = torch.polar(torch.ones_like(ang), ang)[:, None]  # (B, 1, S, R/2)
    pairs = torch.view_as_complex(xt[..., :r].reshape(*x.shape[:-1], r // 2, 2).contiguous())
    rot = torch.view_as_real(pairs * freqs).flatten(-2)
    return torch.cat([rot, xt[..., r:]], -1).numpy()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize(("shape", "r"), [((2, 3, 5, 8), 8), ((1, 4, 7, 16), 8), ((3, 2, 4, 12), 4)], ids=str)
@pytest.mark.parametrize("with_ids", [False, True])
def test_rotary_matches_llama(shape, r, interleaved, with_ids, dtype, rng):
    b, _, s, _ = shape
    x = rng.standard_normal(shape).astype(np.float32)
    pos = rng.integers(0, 32, (b, s)) if with_ids else np.broadcast_to(np.arange(s), (b, s))
    table = np.arange(32)[:, None] * _inv_freq(r)
    net = trtdsl.Network("rope", dtype=dtype)
    tx = net.input("x", "float32", shape)
    feeds = {"x": x}
    if with_ids:
        ids = net.input("pos", "int32", (b, s))
        feeds["pos"] = pos.astype(np.int32)
        y = ops.rotary_embedding(tx, np.cos(table), np.sin(table), position_ids=ids, interleaved=interleaved,
                                 rotary_dim=r)  # fmt: skip
    else:
        ang = pos[..., None] * _inv_freq(r)
        y = ops.rotary_embedding(tx, np.cos(ang), np.sin(ang), interleaved=interleaved, rotary_dim=r)
    out = _run(net, y, feeds)
    ref = (_meta_llama if interleaved else _hf_llama)(x, pos.astype(np.float64), r)
    np.testing.assert_allclose(out, ref, **TOL[dtype])
    trtdsl.build(net, progress=False)


def test_rotary_bad_inputs_raise():
    net = trtdsl.Network("bad")
    x = net.input("x", "float32", (2, 2, 4, 8))
    with pytest.raises(ShapeError, match="rotary_dim 5 must be even"):
        ops.rotary_embedding(x, np.ones((2, 4, 2)), np.ones((2, 4, 2)), rotary_dim=5)
    with pytest.raises(ShapeError, match=r"cos cache.*expected \(B, S, R/2\) with R/2 = 4"):
        ops.rotary_embedding(x, np.ones((2, 4, 3)), np.ones((2, 4, 3)))
    with pytest.raises(ShapeError, match="does not broadcast the cache's batch"):
        ops.rotary_embedding(x, np.ones((1, 4, 4)), np.ones((1, 4, 4)))
    with pytest.raises(ShapeError, match="position_ids.*expected integer"):
        ops.rotary_embedding(x, np.ones((9, 4)), np.ones((9, 4)), position_ids=net.input("p", "float32", (2, 4)))


# ------------------------------------------------------------------ KV-cache update
@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize(("writes", "s"), [([0, 3], 2), ([5, 0], 3), ([6, 7], 1), ([7, 2], 3)])
def test_kv_cache_update_matches_slice_assignment(writes, s, dtype, rng):
    cache = rng.standard_normal((2, 3, 8, 4)).astype(dtype)  # feeds in the input's type (the feed rule)
    update = rng.standard_normal((2, 3, s, 4)).astype(dtype)
    net = trtdsl.Network("kv")
    tc = net.input("c", dtype, cache.shape)
    y = ops.kv_cache_update(tc, net.input("u", dtype, update.shape), net.input("w", "int32", (2,)))
    assert y.shape == cache.shape
    net.output(y, "y", dtype=dtype)  # the update's output must itself be a network output: no cast after it
    out = reference.run(net, {"c": cache, "u": update, "w": np.array(writes, np.int32)})["y"].astype(np.float32)
    ref = cache.astype(dtype).astype(np.float64)
    for b, w in enumerate(writes):  # NvInfer.h: out[i, :, w[i] + s, :] = update[i, :, s, :]; past the end is dropped
        n = min(s, 8 - w)
        ref[b, :, w : w + n] = update[b, :, :n].astype(dtype)
    np.testing.assert_array_equal(out, ref.astype(np.float32))
    trtdsl.build(net, progress=False)


def test_kv_cache_update_numpy_indices_and_int64_cast(rng):
    net = trtdsl.Network("kv64")
    tc, tu = net.input("c", "float32", (1, 2, 6, 4)), net.input("u", "float32", (1, 2, 2, 4))
    y = ops.kv_cache_update(tc, tu, net.input("w", "int64", (1,)))
    assert y.layer.get_input(2).dtype.name == "INT32"  # TensorRT-RTX refuses int64 write indices
    z = ops.kv_cache_update(y, tu, [4])
    c, u = rng.standard_normal((1, 2, 6, 4)).astype(np.float32), rng.standard_normal((1, 2, 2, 4)).astype(np.float32)
    out = _run(net, z, {"c": c, "u": u, "w": np.array([1])})
    ref = c.copy()
    ref[0, :, 1:3] = u[0]
    ref[0, :, 4:6] = u[0]
    np.testing.assert_array_equal(out, ref)


def test_kv_cache_update_bad_inputs_raise():
    net = trtdsl.Network("bad")
    c = net.input("c", "float32", (1, 2, 6, 4))
    with pytest.raises(ShapeError, match="share one float dtype"):
        ops.kv_cache_update(c, net.input("u", "float16", (1, 2, 1, 4)), [0])
    with pytest.raises(ShapeError, match="write_indices.*expected int32/int64"):
        ops.kv_cache_update(c, c, net.input("w", "float32", (1,)))
    with pytest.raises(ShapeError, match="update_lengths goes with a packed"):
        ops.kv_cache_update(c, net.input("u3", "float32", (2, 1, 4)), [0])
    with pytest.raises(ShapeError, match=r"update 'u2'.*or packed \(tokens"):
        ops.kv_cache_update(c, net.input("u2", "float32", (2, 4)), [0])


def test_rotary_position_id_outside_cache_raises(rng):
    net = trtdsl.Network("oob")
    x = net.input("x", "float32", (1, 1, 2, 4))
    ids = net.input("pos", "int32", (1, 2))
    net.output(ops.rotary_embedding(x, np.ones((8, 2)), np.zeros((8, 2)), position_ids=ids, name="rope"), "y")
    feeds = {"x": np.ones((1, 1, 2, 4), np.float32), "pos": np.array([[3, 8]], np.int32)}
    with pytest.raises(trtdsl.TrtdslError, match=r"'rope'.*position id 8 is outside the 8-row.*valid 0..7"):
        reference.run(net, feeds)


def test_packed_kv_cache_update_matches_slice_assignment(rng):
    lengths, writes = [2, 3], [1, 5]
    cache = rng.standard_normal((2, 2, 8, 4)).astype(np.float32)
    upd = rng.standard_normal((sum(lengths), 2, 4)).astype(np.float32)
    net = trtdsl.Network("kvp")
    y = ops.kv_cache_update(net.input("c", "float32", cache.shape), net.input("u", "float32", upd.shape), writes,
                            update_lengths=[0, 2, 5])  # fmt: skip
    out = _run(net, y, {"c": cache, "u": upd})
    want = cache.copy()
    want[0, :, 1:3] = upd[0:2].transpose(1, 0, 2)
    want[1, :, 5:8] = upd[2:5].transpose(1, 0, 2)
    np.testing.assert_array_equal(out, want)
    trtdsl.build(net, progress=False)
