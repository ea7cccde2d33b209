"""Keras 3 int8-quantized layers (``model.quantize("int8")``) as TensorRT int8 weights plus float ops.

Keras stores the kernel as int8 with ``kernel_scale = 127 / amax`` per output
channel and dequantizes by dividing by it, so the kernel becomes an int8
constant behind a Dequantize of scale ``1 / kernel_scale``. Keras also
quantizes the activations at run time, per row: ``s = 127 / (max|x| + 1e-7)``
over the last axis, ``q = clip(round(x * s), -127, 127)``, and divides the
integer product by ``s`` again. A TensorRT Quantize scale is a build-time
constant, so that step is emulated with float ops in Keras' order; ``q`` is
exact (small integers in float), and the product differs from Keras' int32
accumulation only by float32 rounding of the dequantized kernel.
"""

from __future__ import annotations

import numpy as np

from .. import ops
from ..tensor import Tensor
from .graph import Call


def _input_quantizer(layer: Call) -> dict | None:
    qc = layer.config.get("quantization_config") or {}
    q = (qc.get("config") or {}).get("activation_quantizer", "absent")
    if q == "absent":  # older files: always quantize inputs with AbsMaxQuantizer
        return {"value_range": [-127, 127], "epsilon": 1e-7}
    return None if q is None else (q.get("config") or {})


def int8_dense(layer: Call, x: Tensor, units: int) -> Tensor:
    """Keras' ``Dense._int8_call`` on ``x`` (bias added, activation not)."""
    kernel = layer.take("kernel", (None, units))
    bias = layer.bias(units)
    kscale = layer.take("kernel_scale", (units,)).astype(np.float32)
    if kernel.dtype != np.int8:
        raise layer.error(f"an int8-quantized Dense needs an int8 kernel, the file has {kernel.dtype}")
    net = layer.net
    # (units, in) int8 constant -> float weight via Dequantize with per-output-channel scale 1/kernel_scale
    w_q = net.constant(np.ascontiguousarray(kernel.T), "kernel", dtype="int8")
    w = ops.dequantize(w_q, (1.0 / kscale).astype(np.float32), axis=0, dtype="float32")
    rows = _quantize_rows(layer, x)
    if rows is not None:
        xq, s = rows
        y = ops.div(ops.matmul(xq, ops.transpose(w, 0, 1)), s, name="descale")
    else:
        y = ops.matmul(x, ops.transpose(w, 0, 1))
    if bias is not None:
        y = ops.add(y, np.asarray(bias, np.float32))
    return y


def _quantize_rows(layer: Call, x: Tensor) -> tuple[Tensor, Tensor] | None:
    """Keras' AbsMaxQuantizer over the last axis: (integer-valued q in float, scale s), or None."""
    q = _input_quantizer(layer)
    if q is None:
        return None
    lo, hi = (float(v) for v in q.get("value_range", (-127, 127)))
    eps = float(q.get("epsilon", 1e-7))
    s = ops.div(hi, ops.add(ops.amax(ops.abs(x), -1, keepdim=True), eps), name="input_scale")
    return ops.clip(ops.round(ops.mul(x, s)), lo, hi, name="input_q"), s


def int8_einsum(layer: Call, x: Tensor) -> Tensor:
    """Keras' ``EinsumDense._int8_call`` for equations that contract the last input axis
    (``abc,cd->abd``, ``abc,cde->abde``): the kernel scale sits in the output's layout."""
    equation = str(layer.config["equation"]).replace(" ", "")
    lhs, out_spec = equation.split("->")
    in_spec, k_spec = lhs.split(",")
    contracted = [c for c in in_spec if c not in out_spec]
    if contracted != [in_spec[-1]] or not out_spec.startswith(in_spec[:-1]):
        raise layer.error(f"int8 EinsumDense {equation!r} is supported only when it contracts the last input axis")
    kernel = layer.take("kernel")
    if kernel.dtype != np.int8:
        raise layer.error(f"an int8-quantized EinsumDense needs an int8 kernel, the file has {kernel.dtype}")
    kscale = layer.take("kernel_scale").astype(np.float32)
    bias = layer.take("bias") if layer.config.get("bias_axes") else None
    varying = [i for i, n in enumerate(kscale.shape) if n != 1]
    w_q = layer.net.constant(np.ascontiguousarray(kernel), "kernel", dtype="int8")
    # The scale varies along output axes; when that is one kernel axis, Dequantize per channel there.
    axis = None
    if len(varying) == 1 and kscale.ndim == len(out_spec) and out_spec[varying[0]] in k_spec:
        axis = k_spec.index(out_spec[varying[0]])
    if axis is not None:
        w = ops.dequantize(w_q, (1.0 / kscale.reshape(-1)).astype(np.float32), axis=axis, dtype="float32")
    else:
        w = ops.dequantize(w_q, 1.0, dtype="float32")
    rows = _quantize_rows(layer, x)
    xq = x if rows is None else rows[0]
    y = ops.einsum(equation, xq, w)
    if rows is not None:
        s = rows[1]
        extra = len(out_spec) - len(in_spec)  # output axes after the input's batch axes
        if extra > 0:
            s = (
                ops.reshape(s, (-1, *s.shape[1:], *([1] * extra)))
                if s.shape[0] < 0
                else ops.reshape(s, (*s.shape, *[1] * extra))
            )
        y = ops.div(y, s, name="descale")
    if axis is None:
        y = ops.div(y, kscale)
    if bias is not None:
        y = ops.add(y, np.asarray(bias, np.float32))
    return y
