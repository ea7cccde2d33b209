"""Reference implementation of IMoELayer (mixture of experts), from NvInfer.h's description.

Inputs 0-2 are the hidden states (B, S, H), the selected experts (B, S, topK) and their
scores (B, S, topK); ``setGatedWeights`` adds the gate and up weights (numExperts, H, I) and
the down weights (numExperts, I, H) as inputs 3-5, ``setGatedBiases`` the biases (inputs
6-8), and the mul-output quantization its scale (input 9 and on). Per token::

    expert_e(x) = (act(x·Wgate[e] + bgate[e]) * (x·Wup[e] + bup[e]))·Wdown[e] + bdown[e]
    out = Σ_k score_k * expert_{id_k}(x)

with ``act`` NONE or SILU (on the gate branch only, NvInfer.h: ``fcDown(fcUp(x) *
activation(fcGate(x)))``). The work is grouped by expert: all the (token, k) pairs that chose
expert e go through its GLU in one pair of matrix products.

Refused rather than guessed: the mul-output quantization (static FP8 or dynamic double
quantization: TensorRT also expects Q/DQ on the hidden states, and this layer's kernels
define the rounding), SwiGLU parameters other than the defaults (TensorRT documents them as
"not supported yet" and gives no formula), and expert ids outside [0, numExperts), which
NvInfer.h does not define.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InterpreterError, UnsupportedLayerError
from .activation import _sigmoid
from .registry import Node, interprets

_SWIGLU_DEFAULTS = (math.inf, 1.0, 0.0)  # limit, alpha, beta: NvInfer.h's "Default: +inf, 1.0, 0.0"


def _refuse_unsupported(node: Node, extra: tuple[np.ndarray | None, ...]) -> str:
    """The activation name, after refusing the settings this interpreter does not implement."""
    layer = node.layer
    quant = layer.quantization_to_type.name
    if quant != "FLOAT" or any(a is not None for a in extra):
        raise UnsupportedLayerError(
            f"moe {node.name!r}: quantization of the mul output (quantization_to_type {quant}, "
            f"{sum(a is not None for a in extra)} scale input(s)) is not implemented; the interpreter runs "
            "unquantized MoE layers only"
        )
    swiglu = (layer.swiglu_param_limit, layer.swiglu_param_alpha, layer.swiglu_param_beta)
    if any(not math.isclose(v, w, rel_tol=1e-6) for v, w in zip(swiglu, _SWIGLU_DEFAULTS, strict=True)):
        raise UnsupportedLayerError(
            f"moe {node.name!r}: SwiGLU parameters (limit, alpha, beta) = {swiglu} differ from the defaults "
            f"{_SWIGLU_DEFAULTS}; TensorRT documents them as not supported yet and gives no formula"
        )
    act = layer.activation_type.name
    if act not in ("NONE", "SILU"):
        raise UnsupportedLayerError(f"moe {node.name!r}: activation {act} is not implemented (NONE, SILU)")
    return act


@interprets("moe", fresh=True)
def moe(
    node: Node,
    x: np.ndarray,
    experts: np.ndarray,
    scores: np.ndarray,
    gate_w: np.ndarray,
    up_w: np.ndarray,
    down_w: np.ndarray,
    gate_b: np.ndarray | None = None,
    up_b: np.ndarray | None = None,
    down_b: np.ndarray | None = None,
    *quant_scales: np.ndarray | None,
) -> np.ndarray:
    act = _refuse_unsupported(node, quant_scales)
    n_experts = gate_w.shape[0]
    hidden = x.shape[-1]
    tokens = x.reshape(-1, hidden)
    ids = np.asarray(experts, np.int64).reshape(tokens.shape[0], -1)
    weights = scores.reshape(ids.shape)
    bad = (ids < 0) | (ids >= n_experts)
    if bad.any():
        pos = np.unravel_index(int(np.argmax(bad)), experts.shape)
        raise InterpreterError(
            f"moe {node.name!r}: selected expert {int(experts[pos])} at {tuple(int(i) for i in pos)} is outside "
            f"the {n_experts} experts (valid 0..{n_experts - 1}); NvInfer.h does not define such ids"
        )
    out = np.zeros(tokens.shape, np.float32)
    for e in np.unique(ids):
        t, k = np.nonzero(ids == e)
        rows = tokens[t]
        gate = rows @ gate_w[e]
        up = rows @ up_w[e]
        if gate_b is not None:
            gate, up = gate + gate_b[e], up + up_b[e]
        y = ((gate * _sigmoid(gate) if act == "SILU" else gate) * up) @ down_w[e]
        if down_b is not None:
            y = y + down_b[e]
        # A token may list one expert twice; add.at sums both, a fancy-index += would keep one.
        np.add.at(out, t, y * weights[t, k][:, None])
    return out.reshape(x.shape).astype(x.dtype, copy=False)  # the layer's output has the hidden states' type
