"""A Llama-style decoder block with TensorRT's fused attention (IAttention) and rotary embedding layer.

    trtdsl build examples/transformer_block.py -o block.plan && trtdsl info block.plan --layers

RMSNorm -> q/k/v projections -> RoPE on q and k (``IRotaryEmbeddingLayer``, by
position ids, Hugging Face's rotate-half layout) -> causal grouped-query
attention (one ``IAttention``: 4 query heads share 2 key/value heads) -> output
projection and residual -> RMSNorm -> SwiGLU MLP and residual. Batch and
sequence length are dynamic. The test compares it with the same block written
in PyTorch (``F.scaled_dot_product_attention``, ``enable_gqa``).
"""

from __future__ import annotations

import numpy as np

import trtdsl
from trtdsl import layers, ops

DIM, HEADS, KV_HEADS, HIDDEN, MAX_POS = 64, 4, 2, 128, 256
HEAD = DIM // HEADS


def weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Hugging Face Llama names (model.layers.0.*) with random values."""
    r = np.random.default_rng(seed)

    def w(*shape: int) -> np.ndarray:
        return (r.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)

    return {
        "input_layernorm.weight": (1 + 0.1 * r.standard_normal(DIM)).astype(np.float32),
        "self_attn.q_proj.weight": w(HEADS * HEAD, DIM),
        "self_attn.k_proj.weight": w(KV_HEADS * HEAD, DIM),
        "self_attn.v_proj.weight": w(KV_HEADS * HEAD, DIM),
        "self_attn.o_proj.weight": w(DIM, HEADS * HEAD),
        "post_attention_layernorm.weight": (1 + 0.1 * r.standard_normal(DIM)).astype(np.float32),
        "mlp.gate_proj.weight": w(HIDDEN, DIM),
        "mlp.up_proj.weight": w(HIDDEN, DIM),
        "mlp.down_proj.weight": w(DIM, HIDDEN),
    }


def _heads(t: trtdsl.Tensor, heads: int, name: str) -> trtdsl.Tensor:
    """(B, S, heads*D) -> (B, heads, S, D)."""
    return ops.transpose(ops.reshape(t, (-1, -1, heads, HEAD), name=name + ".split"), 1, 2, name=name + ".heads")


def decoder_block(x: trtdsl.Tensor, pos: trtdsl.Tensor, w: dict[str, np.ndarray]) -> trtdsl.Tensor:
    net = x.net
    with net.scope("self_attn"):
        h = ops.rms_norm(x, DIM, w["input_layernorm.weight"], eps=1e-5, name="input_layernorm")
        q = _heads(ops.linear(h, w["self_attn.q_proj.weight"], name="q_proj"), HEADS, "q")
        k = _heads(ops.linear(h, w["self_attn.k_proj.weight"], name="k_proj"), KV_HEADS, "k")
        v = _heads(ops.linear(h, w["self_attn.v_proj.weight"], name="v_proj"), KV_HEADS, "v")
        q = layers.rotary(q, pos, max_positions=MAX_POS, name="q_rope")
        k = layers.rotary(k, pos, max_positions=MAX_POS, name="k_rope")
        a = ops.scaled_dot_product_attention(q, k, v, causal=True, name="attn")  # one IAttention, GQA 4:2
        a = ops.reshape(ops.transpose(a, 1, 2), (-1, -1, HEADS * HEAD), name="merge")
        x = x + ops.linear(a, w["self_attn.o_proj.weight"], name="o_proj")
    with net.scope("mlp"):
        h = ops.rms_norm(x, DIM, w["post_attention_layernorm.weight"], eps=1e-5, name="post_attention_layernorm")
        gate = ops.silu(ops.linear(h, w["mlp.gate_proj.weight"], name="gate_proj"))
        x = x + ops.linear(gate * ops.linear(h, w["mlp.up_proj.weight"], name="up_proj"), w["mlp.down_proj.weight"],
                           name="down_proj")  # fmt: skip
    return x


def build_network(w: dict[str, np.ndarray] | None = None, dtype: str = "float32") -> trtdsl.Network:
    net = trtdsl.Network("llama_block", dtype=dtype)
    batch, seq = net.dim("batch", 1, 2, 8), net.dim("seq", 1, 16, 128)
    x = net.input("hidden", "float32", (batch, seq, DIM))
    pos = net.input("position_ids", "int32", (batch, seq))
    net.output(decoder_block(x, pos, w or weights()), "out")
    return net


if __name__ == "__main__":
    net = build_network()
    x = np.random.default_rng(1).standard_normal((2, 10, DIM)).astype(np.float32)
    pos = np.broadcast_to(np.arange(10, dtype=np.int32), (2, 10)).copy()
    print(trtdsl.reference.run(net, {"hidden": x, "position_ids": pos})["out"][0, :2, :6])
    print(trtdsl.build(net).summary())
