"""examples/transformer_block.py: a Llama decoder block on IAttention + IRotaryEmbedding, against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from trtdsl import reference

from ._load import example

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.usefixtures("trt")


def _torch_block(w, x, pos, ex):
    """The block written in PyTorch from the Llama formulas (rotate_half RoPE, SDPA with GQA), float64."""
    t = {k: torch.from_numpy(v).double() for k, v in w.items()}
    x = torch.from_numpy(x).double()
    hd, dim = ex["HEAD"], ex["DIM"]

    def rms(h, weight):
        return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-5) * weight

    def heads(h, n):
        return h.view(h.shape[0], h.shape[1], n, hd).transpose(1, 2)

    inv = 1.0 / 10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.from_numpy(pos).double()[..., None] * inv  # (B, S, D/2)
    cos, sin = torch.cat([ang.cos()] * 2, -1)[:, None], torch.cat([ang.sin()] * 2, -1)[:, None]

    def rope(h):
        h1, h2 = h[..., : hd // 2], h[..., hd // 2 :]
        return h * cos + torch.cat([-h2, h1], -1) * sin

    h = rms(x, t["input_layernorm.weight"])
    q = rope(heads(h @ t["self_attn.q_proj.weight"].T, ex["HEADS"]))
    k = rope(heads(h @ t["self_attn.k_proj.weight"].T, ex["KV_HEADS"]))
    v = heads(h @ t["self_attn.v_proj.weight"].T, ex["KV_HEADS"])
    a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    x = x + a.transpose(1, 2).reshape(x.shape[0], x.shape[1], dim) @ t["self_attn.o_proj.weight"].T
    h = rms(x, t["post_attention_layernorm.weight"])
    m = F.silu(h @ t["mlp.gate_proj.weight"].T) * (h @ t["mlp.up_proj.weight"].T)
    return (x + m @ t["mlp.down_proj.weight"].T).numpy()


@pytest.mark.parametrize(("batch", "seq"), [(1, 1), (2, 10), (3, 33)])
def test_llama_block_matches_pytorch(batch, seq):
    ex = example("transformer_block")
    w = ex["weights"]()
    net = ex["build_network"](w)
    types = {net.trt.get_layer(i).type.name for i in range(net.trt.num_layers)}
    assert {"ATTENTION_INPUT", "ATTENTION_OUTPUT", "ROTARY_EMBEDDING"} <= types
    rng = np.random.default_rng(seq)
    x = rng.standard_normal((batch, seq, ex["DIM"])).astype(np.float32)
    pos = (np.arange(seq, dtype=np.int32)[None] + rng.integers(0, 20, (batch, 1))).astype(np.int32)  # offsets: a cache
    got = reference.run(net, {"hidden": x, "position_ids": pos})["out"]
    np.testing.assert_allclose(got, _torch_block(w, x, pos, ex), rtol=1e-4, atol=1e-4)
