"""Mixture of experts on TensorRT's fused ``IMoELayer`` (``add_moe``).

Each expert is a gated linear unit (GLU) with weights laid out (in, out), as NvInfer.h
defines its linear layers ``fc(x) = x·w + b``::

    expert_e(x) = (act(x·Wgate[e] + bgate[e]) * (x·Wup[e] + bup[e]))·Wdown[e] + bdown[e]
    out[b, s]   = sum over k of scores[b, s, k] * expert_{experts[b, s, k]}(x[b, s])

Documented (NvInfer.h ``IMoELayer``, TensorRT 11; the "MoE (Mixture of Experts)" pages of the
TensorRT developer guide and operator reference):

- inputs 0-2: hidden states (B, S, H), selected experts (B, S, topK) of integer indices,
  scores (B, S, topK) of the hidden states' float type; the output has the hidden states'
  shape (NvInfer.h) and type (the ONNX parser's ``TRT_MoE`` page; TensorRT-RTX reports it);
- ``setGatedWeights``: gate and up weights (numExperts, H, I), down weights (numExperts, I, H),
  and the activation, NONE or SILU, applied to the gate branch only, then multiplied by the up
  branch (``fcDown(fcUp(x) * activation(fcGate(x)))``); these become inputs 3-5;
- ``setGatedBiases``: (numExperts, I), (numExperts, I), (numExperts, H), all three or none
  (inputs 6-8);
- the mul output can be quantized (FP8, static scale, input 9); dynamic double quantization
  and the SwiGLU parameters (limit, alpha, beta; defaults +inf, 1, 0) are "not supported yet".
  This op sets none of them, and the reference interpreter refuses a layer that does.
- the layer runs only on Blackwell/Thor GPUs (SM 10.x, 11.x). TensorRT-RTX 1.7 accepts the
  definition but its builder refuses every MoE network on the CPU ("Cannot decompose
  operation ... moe_fc1", measured for float32/float16/bfloat16, int32/int64 indices, with and
  without biases, 1 to 32 tokens): its targets (SM 7.5-8.9, 12.x) have no MoE kernel.

Measured on TensorRT-RTX 1.7's definition API, not documented: the indices may be int32 or
int64 (its check says "must have type Int64 or Int32"; the ``TRT_MoE`` page lists int32), and a
dynamic sequence length is accepted (no build could confirm that it runs). Inferred: the expert
ids must lie in [0, numExperts) (the interpreter refuses others rather than guess whether
TensorRT skips them), and the scores are used as given, not renormalized (the documented
formula is ``Σ score_i * output_i``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _trt, dtypes
from ..errors import ShapeError, TrtdslError
from ..network import Network
from ..tensor import Tensor
from .linear import _weight_constant

__all__ = ["moe"]

_ACTIVATIONS = {"silu": "SILU", "swish": "SILU", "none": "NONE"}


def _known(a: int, b: int) -> bool:
    """Both dimensions are static and differ: a mismatch the op can report before TensorRT does."""
    return a >= 0 and b >= 0 and a != b


def _float_operand(net: Network, what: str, value: Any, role: str, full: str) -> Tensor:
    """A float input of the layer in the compute dtype: a Tensor cast, or an array stored as constant ``full``."""
    if isinstance(value, Tensor):
        if value.net is not net:
            raise TrtdslError(f"{what}: {role} {value.name!r} belongs to network {value.net.name!r}, not {net.name!r}")
        if not dtypes.is_float(value.dtype):
            raise ShapeError(f"{what}: {role} {value.name!r} has dtype {value.dtype}; expected a float tensor")
        return net.to_compute(value)
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise ShapeError(f"{what}: {role} has dtype {array.dtype}; expected float values")
    return _weight_constant(net, array, array.shape, full)


def _experts(net: Network, what: str, value: Any, full: str) -> Tensor:
    """The selected-experts input: an int32/int64 Tensor, or an integer array stored as an int32 constant."""
    if isinstance(value, Tensor):
        if value.net is not net:
            raise TrtdslError(f"{what}: selected_experts {value.name!r} belongs to network {value.net.name!r}")
        if value.dtype not in ("int32", "int64"):
            raise ShapeError(
                f"{what}: selected_experts {value.name!r} has dtype {value.dtype}; IMoELayer takes int32 or int64 "
                "expert indices (use the indices output of ops.topk, or ops.cast(t, 'int32'))"
            )
        return value
    array = np.asarray(value)
    if array.dtype.kind not in "iu":
        raise ShapeError(
            f"{what}: selected_experts has dtype {array.dtype}; expected integer expert indices (int32 or int64)"
        )
    array = array.astype(np.int32)
    full = net.unique_name(full, scoped=False)
    layer = net.trt.add_constant(array.shape, net.keep(array, full))
    return net.register(layer, "constant", full, resolved=True)


def _layout_hint(shape: tuple[int, ...], want: tuple[int, ...]) -> str:
    if len(shape) == 3 and shape[0] == want[0] and shape[1:] == want[:0:-1] and want[1] != want[2]:
        return (
            f" It looks like stacked torch.nn.Linear weights laid out (experts, out, in) = {shape}: "
            "IMoELayer takes (experts, in, out); pass np.swapaxes(w, 1, 2)."
        )
    return ""


def _check_weight(what: str, t: Tensor, role: str, want: tuple[int, ...], names: str) -> None:
    shape = t.shape
    if len(shape) != len(want) or any(_known(s, w) for s, w in zip(shape, want, strict=True)):
        raise ShapeError(
            f"{what}: {role} {t.name!r} has shape {shape}; expected {names} = {want}.{_layout_hint(shape, want)}"
        )


def moe(
    hidden_states: Tensor,
    selected_experts: Tensor | np.ndarray,
    scores: Tensor | np.ndarray,
    gate_weight: Tensor | np.ndarray,
    up_weight: Tensor | np.ndarray,
    down_weight: Tensor | np.ndarray,
    gate_bias: Tensor | np.ndarray | None = None,
    up_bias: Tensor | np.ndarray | None = None,
    down_bias: Tensor | np.ndarray | None = None,
    *,
    activation: str | None = "silu",
    name: str | None = None,
) -> Tensor:
    """Mixture of experts: ``Σ_k scores[..., k] * expert_{selected_experts[..., k]}(hidden_states)``.

    Each expert is a GLU, ``(act(x·Wg + bg) * (x·Wu + bu))·Wd + bd`` (SwiGLU with the default
    ``activation="silu"``; ``None``/``"none"`` gives a bilinear GLU). The routing (softmax,
    top-k, renormalization) is not part of the layer: compute it before, e.g. with
    ``ops.softmax`` and ``ops.topk``.

    Args:
        hidden_states: (B, S, H) float.
        selected_experts: (B, S, topK) int32/int64 expert indices, each in [0, numExperts).
        scores: (B, S, topK) weights of the selected experts, cast to the compute dtype.
        gate_weight, up_weight: (numExperts, H, I), laid out (in, out) as NvInfer.h's
            ``fc(x) = x·w + b``: a stack of torch ``nn.Linear`` weights (out, in) needs
            ``np.swapaxes(w, 1, 2)``. ``down_weight``: (numExperts, I, H).
        gate_bias, up_bias: (numExperts, I); ``down_bias``: (numExperts, H). IMoELayer takes all
            three or none: the ones not given are zeros when any is given.

    NumPy weights become constants named ``<layer>.gate_weight``, ``.up_weight``, ...; Tensors
    are used as they are. The layer only runs on Blackwell/Thor GPUs, and TensorRT-RTX's CPU
    build refuses it (see the module docstring); the reference interpreter runs it.

    Example::

        probs = ops.softmax(router_logits, -1)                    # (B, S, numExperts)
        top, ids = ops.topk(probs, 2)                              # (B, S, 2) each
        y = ops.moe(x, ids, top, sd["w_gate"], sd["w_up"], sd["w_down"])
    """
    trt = _trt.load()
    net = hidden_states.net
    what = f"moe {name!r}" if name else "moe"
    key = "none" if activation is None else str(activation).lower()
    if key not in _ACTIVATIONS:
        raise TrtdslError(
            f"{what}: activation {activation!r} is not one IMoELayer has; expected 'silu' (SwiGLU) or None "
            "(MoEActType SILU or NONE)"
        )
    x, dt = net.in_compute(hidden_states)
    if not dtypes.is_float(dt) or x.ndim != 3:
        raise ShapeError(
            f"{what}: hidden_states {x.name!r} is {dt} {x.shape}; expected float (batch, seq, hidden) hidden states"
        )
    base = net.op_name(name, "moe", x)
    what = f"moe {base!r}"
    b, s, h = x.shape
    ids = _experts(net, what, selected_experts, f"{base}.selected_experts")
    sc = _float_operand(net, what, scores, "scores", f"{base}.scores")
    if ids.ndim != 3 or _known(ids.shape[0], b) or _known(ids.shape[1], s):
        raise ShapeError(
            f"{what}: selected_experts {ids.name!r} has shape {ids.shape}; expected (batch, seq, topK) = "
            f"({b}, {s}, topK) for hidden_states {x.name!r} {x.shape}"
        )
    if sc.ndim != 3 or any(_known(p, q) for p, q in zip(sc.shape, ids.shape, strict=True)):
        raise ShapeError(
            f"{what}: scores {sc.name!r} has shape {sc.shape}; expected the shape of selected_experts {ids.shape} "
            "(one score per selected expert)"
        )
    g = _float_operand(net, what, gate_weight, "gate_weight", f"{base}.gate_weight")
    if g.ndim != 3 or _known(g.shape[1], h):
        raise ShapeError(
            f"{what}: gate_weight {g.name!r} has shape {g.shape}; expected (numExperts, H, I) with H = {h}, the "
            f"hidden size of {x.name!r}.{_layout_hint(g.shape, (g.shape[0], h, g.shape[1]) if g.ndim == 3 else ())}"
        )
    e, _, inter = g.shape
    u = _float_operand(net, what, up_weight, "up_weight", f"{base}.up_weight")
    _check_weight(what, u, "up_weight", (e, h, inter), "(numExperts, H, I) like gate_weight")
    d = _float_operand(net, what, down_weight, "down_weight", f"{base}.down_weight")
    _check_weight(what, d, "down_weight", (e, inter, h), "(numExperts, I, H)")
    if isinstance(selected_experts, np.ndarray | list | tuple) and e > 0:
        flat = np.asarray(selected_experts).reshape(-1)
        bad = flat[(flat < 0) | (flat >= e)]
        if bad.size:
            raise ShapeError(f"{what}: selected expert {int(bad[0])} is outside the {e} experts (valid 0..{e - 1})")
    biases = None
    if gate_bias is not None or up_bias is not None or down_bias is not None:
        biases = []
        for value, role, shape in (
            (gate_bias, "gate_bias", (e, inter)),
            (up_bias, "up_bias", (e, inter)),
            (down_bias, "down_bias", (e, h)),
        ):
            if value is None and min(shape) < 0:
                raise ShapeError(f"{what}: {role} not given and its shape {shape} is not static; give all three biases")
            # IMoELayer takes all three biases or none: one not given is a zero bias.
            given = np.zeros(shape, np.float32) if value is None else value
            t = _float_operand(net, what, given, role, f"{base}.{role}")
            _check_weight(what, t, role, shape, "(numExperts, I)" if role != "down_bias" else "(numExperts, H)")
            biases.append(t)
    layer = net.trt.add_moe(x.trt, ids.trt, sc.trt)
    if layer is None:
        errors = _trt.logger().errors
        raise ShapeError(f"{what}: TensorRT refused the layer: {errors[-1] if errors else 'no message'}")
    layer.set_gated_weights(g.trt, u.trt, d.trt, getattr(trt.MoEActType, _ACTIVATIONS[key]))
    if biases is not None:
        layer.set_gated_biases(*(t.trt for t in biases))
    return net.register(layer, "moe", base, resolved=True)
