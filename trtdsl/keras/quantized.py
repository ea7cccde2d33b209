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
    bias = layer.optional("bias", (units,))
    kscale = layer.take("kernel_scale", (units,)).astype(np.float32)
    if kernel.dtype != np.int8:
        raise layer.error(f"an int8-quantized Dense needs an int8 kernel, the file has {kernel.dtype}")
    net = layer.net
    # (units, in) int8 constant -> float weight via Dequantize with per-output-channel scale 1/kernel_scale
    w_q = net.constant(np.ascontiguousarray(kernel.T), "kernel", dtype="int8")
    w = ops.dequantize(w_q, (1.0 / kscale).astype(np.float32), axis=0, dtype="float32")
    q = _input_quantizer(layer)
    if q is not None:
        lo, hi = (float(v) for v in q.get("value_range", (-127, 127)))
        eps = float(q.get("epsilon", 1e-7))
        s = ops.div(hi, ops.add(ops.amax(ops.abs(x), -1, keepdim=True), eps), name="input_scale")
        xq = ops.clip(ops.round(ops.mul(x, s)), lo, hi, name="input_q")
        y = ops.div(ops.matmul(xq, ops.transpose(w, 0, 1)), s, name="descale")
    else:
        y = ops.matmul(x, ops.transpose(w, 0, 1))
    if bias is not None:
        y = ops.add(y, np.asarray(bias, np.float32))
    return y
