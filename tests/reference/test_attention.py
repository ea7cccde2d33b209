"""The interpreter's attention, KV-cache and rotary layers on raw-API networks: the forms the DSL
does not build (packed NHD inputs, norm_op NONE, a quantized normalization), against torch."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import reference
from trtdsl.errors import TrtdslError

torch = pytest.importorskip("torch")
F = torch.nn.functional

pytestmark = pytest.mark.usefixtures("trt")


def _sdpa(q, k, v, **kw):
    """(H, S, D) per batch item, K/V heads repeated for GQA, in float64; IAttention applies no scale."""
    g = q.shape[0] // k.shape[0]
    t = lambda a: torch.from_numpy(a.astype(np.float64))  # noqa: E731
    return F.scaled_dot_product_attention(
        t(q), t(k).repeat_interleave(g, 0), t(v).repeat_interleave(g, 0), scale=1.0, **kw
    ).numpy()


@pytest.mark.parametrize("causal", ["NONE", "UPPER_LEFT", "LOWER_RIGHT"])
def test_packed_query_and_key_value_forms(trt, causal, rng):
    q_len, kv_len = [3, 1, 5], [4, 6, 5]
    hq, hkv, d = 4, 2, 8
    q = rng.standard_normal((sum(q_len), hq, d)).astype(np.float32)
    k = rng.standard_normal((sum(kv_len), hkv, d)).astype(np.float32)
    v = rng.standard_normal((sum(kv_len), hkv, d)).astype(np.float32)
    net = trtdsl.Network("packed")
    tq, tk, tv = (net.input(n, "float32", a.shape) for n, a in zip("qkv", (q, k, v), strict=True))
    ql, kl = net.input("ql", "int32", (4,)), net.input("kl", "int32", (4,))
    a = net.trt.add_attention_v2(tq.trt, tk.trt, tv.trt, trt.AttentionNormalizationOp.SOFTMAX,
                                 getattr(trt.CausalMaskKind, causal))  # fmt: skip
    a.query_form = a.key_value_form = trt.AttentionIOForm.PACKED_NHD
    a.query_lengths, a.key_value_lengths = ql.trt, kl.trt
    net.trt.mark_output(a.get_output(0))
    cum = lambda n: np.concatenate([[0], np.cumsum(n)]).astype(np.int32)  # noqa: E731
    out = reference.run(net, {"q": q, "k": k, "v": v, "ql": cum(q_len), "kl": cum(kv_len)})
    got = next(iter(out.values()))
    qs, ks = cum(q_len), cum(kv_len)
    for b in range(3):
        qb, kb, vb = (x.transpose(1, 0, 2) for x in (q[qs[b] : qs[b + 1]], k[ks[b] : ks[b + 1]], v[ks[b] : ks[b + 1]]))
        sq, skv = qb.shape[1], kb.shape[1]
        i, j = np.arange(sq)[:, None], np.arange(skv)[None]
        keep = {"NONE": None, "UPPER_LEFT": j <= i, "LOWER_RIGHT": j <= i + skv - sq}[causal]
        want = _sdpa(qb, kb, vb, attn_mask=None if keep is None else torch.from_numpy(keep))
        np.testing.assert_allclose(got[qs[b] : qs[b + 1]].transpose(1, 0, 2), want, rtol=1e-5, atol=1e-5)


def test_norm_none_is_plain_matmuls(trt, rng):
    q, k, v = (rng.standard_normal((2, 2, 3, 4)).astype(np.float32) for _ in range(3))
    net = trtdsl.Network("none")
    tq, tk, tv = (net.input(n, "float32", a.shape) for n, a in zip("qkv", (q, k, v), strict=True))
    a = net.trt.add_attention_v2(tq.trt, tk.trt, tv.trt, trt.AttentionNormalizationOp.NONE, trt.CausalMaskKind.NONE)
    net.trt.mark_output(a.get_output(0))
    got = next(iter(reference.run(net, {"q": q, "k": k, "v": v}).values()))
    np.testing.assert_allclose(got, (q.astype(np.float64) @ k.swapaxes(-1, -2)) @ v, rtol=1e-5, atol=1e-5)


def test_norm_none_with_causal_mask_is_refused(trt, rng):
    net = trtdsl.Network("none")
    tq, tk, tv = (net.input(n, "float32", (1, 1, 2, 4)) for n in "qkv")
    a = net.trt.add_attention_v2(tq.trt, tk.trt, tv.trt, trt.AttentionNormalizationOp.NONE,
                                 trt.CausalMaskKind.UPPER_LEFT)  # fmt: skip
    net.trt.mark_output(a.get_output(0))
    feeds = {n: np.ones((1, 1, 2, 4), np.float32) for n in "qkv"}
    with pytest.raises(TrtdslError, match="norm_op NONE with a bool, causal or length mask is not documented"):
        reference.run(net, feeds)


@pytest.mark.parametrize("to", ["int8", "fp8"])
def test_quantized_normalization(trt, to, rng):
    """NvInfer.h's normalization quantize scale: the softmax output goes through int8/fp8 Q/DQ before ·V."""
    q, k, v = (rng.standard_normal((1, 2, 3, 4)).astype(np.float32) for _ in range(3))
    scale = np.float32(1 / 127 if to == "int8" else 1 / 448)
    net = trtdsl.Network("q8")
    tq, tk, tv = (net.input(n, "float32", a.shape) for n, a in zip("qkv", (q, k, v), strict=True))
    a = net.trt.add_attention_v2(tq.trt, tk.trt, tv.trt, trt.AttentionNormalizationOp.SOFTMAX, trt.CausalMaskKind.NONE)
    a.normalization_quantize_scale = net.constant(np.array([scale], np.float32), "s", dtype="float32").trt
    a.normalization_quantize_to_type = trt.int8 if to == "int8" else trt.fp8
    net.trt.mark_output(a.get_output(0))
    got = next(iter(reference.run(net, {"q": q, "k": k, "v": v}).values()))
    p = torch.softmax(torch.from_numpy(q.astype(np.float64) @ k.swapaxes(-1, -2)), -1).numpy()
    if to == "int8":  # TensorRT "quantized types" guide: q = round-half-even(clip(x/s, -128, 127)), x̂ = q·s
        p = np.clip(np.round(p / scale), -128, 127) * scale
    else:  # q = castToFp8(clip(x/s, -448, 448)); ml_dtypes rounds to nearest even
        ml_dtypes = pytest.importorskip("ml_dtypes")
        p = np.clip(p / scale, -448, 448).astype(ml_dtypes.float8_e4m3fn).astype(np.float64) * scale
    np.testing.assert_allclose(got, p @ v, rtol=1e-5, atol=1e-5)


def test_packed_kv_cache_update(trt, rng):
    lengths = [2, 3]
    cache = rng.standard_normal((2, 2, 8, 4)).astype(np.float32)
    upd = rng.standard_normal((sum(lengths), 2, 4)).astype(np.float32)
    writes = np.array([1, 5], np.int32)
    net = trtdsl.Network("kvp")
    tc, tu = net.input("c", "float32", cache.shape), net.input("u", "float32", upd.shape)
    tw, tl = net.input("w", "int32", (2,)), net.input("l", "int32", (3,))
    layer = net.trt.add_kv_cache_update(tc.trt, tu.trt, tw.trt, trt.KVCacheMode.LINEAR)
    layer.update_form = trt.AttentionIOForm.PACKED_NHD
    layer.update_lengths = tl.trt
    net.trt.mark_output(layer.get_output(0))
    got = next(
        iter(reference.run(net, {"c": cache, "u": upd, "w": writes, "l": np.array([0, 2, 5], np.int32)}).values())
    )
    want = cache.copy()
    want[0, :, 1:3] = upd[0:2].transpose(1, 0, 2)
    want[1, :, 5:8] = upd[2:5].transpose(1, 0, 2)
    np.testing.assert_array_equal(got, want)
