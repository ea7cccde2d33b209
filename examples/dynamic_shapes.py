"""Dynamic batch and sequence length with two optimization profiles.

A small token classifier (embedding -> linear -> GELU -> layer norm -> mean over
time -> linear) whose input is (batch, seq) token ids. Two profiles serve two
traffic shapes from one plan: many short requests, and a few long documents.
TensorRT tunes kernels for each profile's opt shape; at run time the runtime
(or ``plan.select_profile``) picks the first profile that admits the shapes.

    trtdsl build examples/dynamic_shapes.py -o text.plan && trtdsl info text.plan
"""

from __future__ import annotations

import numpy as np

import trtdsl
from trtdsl import ops

VOCAB, DIM, CLASSES = 1000, 32, 4


def weights(seed: int = 0) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    return {
        "embed": r.standard_normal((VOCAB, DIM)).astype(np.float32),
        "fc.weight": (r.standard_normal((DIM, DIM)) / DIM**0.5).astype(np.float32),
        "fc.bias": r.standard_normal(DIM).astype(np.float32) * 0.1,
        "norm.weight": 1 + 0.1 * r.standard_normal(DIM).astype(np.float32),
        "norm.bias": 0.1 * r.standard_normal(DIM).astype(np.float32),
        "head.weight": (r.standard_normal((CLASSES, DIM)) / DIM**0.5).astype(np.float32),
        "head.bias": np.zeros(CLASSES, np.float32),
    }


def build_network(w: dict[str, np.ndarray] | None = None) -> trtdsl.Network:
    w = w or weights()
    net = trtdsl.Network("text")
    batch = net.dim("batch", 1, 32, 64)  # profile 0: short requests, many at a time
    seq = net.dim("seq", 1, 64, 128)
    net.add_profile(batch=(1, 2, 4), seq=(129, 512, 1024))  # profile 1: a few long documents
    tokens = net.input("tokens", "int32", (batch, seq))
    h = ops.embedding(tokens, w["embed"], name="embed")
    with net.scope("fc"):
        h = ops.gelu(ops.linear(h, w["fc.weight"], w["fc.bias"]))
    with net.scope("norm"):
        h = ops.layer_norm(h, (DIM,), w["norm.weight"], w["norm.bias"])
    h = ops.mean(h, dim=1, name="pool")
    with net.scope("head"):
        net.output(ops.linear(h, w["head.weight"], w["head.bias"]), "logits")
    return net


if __name__ == "__main__":
    net = build_network()
    plan = trtdsl.build(net)
    print(plan.summary())
    for shape in ((48, 100), (3, 900)):
        print(f"tokens {shape} -> profile {plan.select_profile({'tokens': shape})}")
    tokens = np.random.default_rng(1).integers(0, VOCAB, (3, 900)).astype(np.int32)
    print("reference logits:", trtdsl.reference.run(net, {"tokens": tokens})["logits"][0])
