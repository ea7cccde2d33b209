"""Rounding to narrow TensorRT types, so the interpreter shows their error.

Every tensor is stored as TensorRT would store it: a float16 tensor as NumPy
float16, an int8 tensor as int8. Narrow floats (bfloat16, fp8 e4m3, fp4 e2m1,
e8m0) are held as float32 values already rounded to the type, and int4 as int8
values in -8..7 (``dtypes.DType.storage``): arithmetic on ``ml_dtypes`` arrays
runs through slow custom loops, while the rounding itself is ``ml_dtypes``'
cast (round half to even), as fast as hand-written bit arithmetic. Outputs and
feeds cross to the user-facing ``ml_dtypes`` arrays in ``to_holder``/``from_holder``.

``ml_dtypes`` casts do not saturate (``float8_e4m3fn`` turns 500 into NaN), so
types without infinity are clipped to their largest finite value first, as
TensorRT's quantization does (FP8 to +-448, FP4 to +-6).
"""

from __future__ import annotations

import numpy as np

from .. import dtypes

_NATIVE = {n: d.storage for n, d in dtypes.TABLE.items() if not d.narrow}
# One-byte narrow floats decode through a 256-entry table built from ml_dtypes itself: its
# element-wise cast back to float32 is about 5x slower than the lookup (bench/dtypes.py).
_DECODE = {
    n: np.arange(256, dtype=np.uint8).view(d.holder).astype(np.float32)
    for n, d in dtypes.TABLE.items()
    if d.narrow and d.is_float and d.holder.itemsize == 1
}


def round_to(x: np.ndarray, dtype: str) -> np.ndarray:
    """Values of ``x`` rounded to the narrow float ``dtype`` (ties to even), as float32.

    Types without infinity (fp8, fp4) saturate at their largest finite value; bfloat16
    overflows to inf as a hardware conversion does. NaN stays NaN where the type has one.
    """
    d = dtypes.TABLE[dtype]
    x32 = np.asarray(x, dtype=np.float32)
    if d.saturates:
        x32 = np.clip(x32, -d.max, d.max)  # np.clip keeps NaN
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf are rounded as the type rounds them
        held = x32.astype(d.holder)
    return _decode(held, dtype)


def _decode(held: np.ndarray, dtype: str) -> np.ndarray:
    """An ``ml_dtypes`` array's values as float32 (exact)."""
    table = _DECODE.get(dtype)
    if table is None:
        return held.astype(np.float32)
    out = table[held.view(np.uint8)]
    return out if held.ndim else np.asarray(out)  # a 0-d index gives a NumPy scalar


def round_bfloat16(x: np.ndarray) -> np.ndarray:
    """Values rounded to the nearest bfloat16 (ties to even), kept as float32."""
    return round_to(x, "bfloat16")


def round_fp8(x: np.ndarray) -> np.ndarray:
    """Values rounded to the nearest float8 e4m3 (ties to even), saturated to +-448, kept as float32."""
    return round_to(x, "fp8")


def round_fp4(x: np.ndarray) -> np.ndarray:
    """Values rounded to the nearest float4 e2m1 (ties to even), saturated to +-6, kept as float32."""
    return round_to(x, "fp4")


def round_int(x: np.ndarray, dtype: str) -> np.ndarray:
    """``clip(round_half_even(x), lo, hi)`` in the interpreter's storage dtype of integer ``dtype``."""
    lo, hi = dtypes.TABLE[dtype].range  # type: ignore[misc]
    return np.clip(np.rint(x), lo, hi).astype(dtypes.to_numpy(dtype))


def store(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` as it would be stored in a TensorRT tensor of ``dtype`` (canonical name)."""
    native = _NATIVE.get(dtype)
    if native is not None and x.dtype == native:  # already stored as TensorRT would: the common case
        return x
    d = dtypes.TABLE[dtype]
    if d.narrow and d.is_float:
        return round_to(x, dtype)
    if d.range is not None and d.kind != "bool" and x.dtype.kind == "f":
        # Quantize layers round and clamp themselves; this only guards other producers.
        return round_int(x, dtype)
    if x.dtype == d.storage:
        return x
    return x.astype(d.storage)


def compute(x: np.ndarray) -> np.ndarray:
    """The array a layer function computes on: half precision is widened to float32.

    TensorRT's half-precision kernels accumulate in float32 and round on store;
    widening here and rounding in ``store`` models that.
    """
    if x.dtype == np.float16:
        return x.astype(np.float32)
    return x


def to_holder(x: np.ndarray, dtype: str) -> np.ndarray:
    """An interpreter-stored array as users see ``dtype``: ``ml_dtypes`` arrays for narrow types.

    The stored values are already representable, so the cast is exact.
    """
    d = dtypes.TABLE[dtype]
    if not d.narrow or x.dtype == d.holder:
        return x
    return x.astype(d.holder)


def from_holder(x: np.ndarray, dtype: str) -> np.ndarray:
    """A user-facing array of ``dtype`` in the interpreter's storage dtype (exact)."""
    d = dtypes.TABLE[dtype]
    if x.dtype == d.storage:
        return x
    if x.dtype == d.holder and d.is_float:
        return _decode(x, dtype)
    return x.astype(d.storage)


def feed(value: object, dtype: str, name: str) -> np.ndarray:
    """A feed for an input of ``dtype``, by the feed rule of ``dtypes.convert``, in the interpreter's storage."""
    return from_holder(dtypes.convert(value, dtype, name=name), dtype)


# Layer types TensorRT lets produce fp8/fp4/int4 tensors (plus the boundary layers of loops and
# conditionals, which only pass a body's tensors through).
_LOW_PRODUCERS = frozenset(
    ("quantize", "dynamic_quantize", "constant", "concatenation", "shuffle", "identity", "iterator", "recurrence")
) | {"loop_output", "conditional_input", "conditional_output"}


# ... and the layer types that may read them (the builder: "Tensor ... has datatype FP8 but is not
# consumed by IPluginLayer, IPluginV2Layer, IPluginV3Layer, IDequantizeLayer, IConcatenationLayer,
# IShuffleLayer, IShapeLayer, or IdentityLayer").
_LOW_CONSUMERS = frozenset(
    ("dequantize", "concatenation", "shuffle", "shape", "identity", "plugin", "plugin_v2", "plugin_v3")
) | {"iterator", "recurrence", "loop_output", "conditional_input", "conditional_output"}


def _volume(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if all(d >= 0 for d in shape) else -1


def prepare(nodes: list, network: object) -> None:
    """Check TensorRT's type rules on a network's layers and seed the constants Python cannot read.

    Raises ``InterpreterError`` where TensorRT's builder refuses: an fp8, fp4 or int4 tensor
    produced by any layer but Quantize, DynamicQuantize, Constant, Concatenation, Shuffle or
    Identity (a Cast, above all), or read by any layer but Dequantize, Concatenation, Shuffle,
    Shape, Identity or a plugin. TensorRT's Python API returns narrow constant weights
    (bfloat16, fp8, fp4, int4) as opaque ``Weights``, so their values come from the arrays a
    ``trtdsl.Network`` kept (``Network.narrow_constants``); other constants also read the
    arrays the Network kept, which (unlike views of TensorRT's ``Weights``) stay alive in
    captured results after the network is gone.
    """
    from ..errors import InterpreterError

    kept = getattr(network, "narrow_constants", None) or {}
    weights = getattr(network, "weights", None) or {}
    definition = getattr(network, "trt", network)
    low = {}
    for i in range(getattr(definition, "num_inputs", 0)):
        t = definition.get_input(i)
        if dtypes.canonical(t.dtype) in dtypes.LOW_PRECISION:
            low[t.name] = dtypes.canonical(t.dtype)
    for node in nodes:
        low.update((o, dt) for o, dt in zip(node.outputs, node.out_dtypes, strict=True) if dt in dtypes.LOW_PRECISION)
    for node in nodes:
        if node.type not in _LOW_CONSUMERS:
            for name in node.inputs:
                if name in low:
                    raise InterpreterError(
                        f"layer {node.index} {node.name!r} ({node.type}) reads {low[name]} tensor {name!r}: TensorRT "
                        "lets only Dequantize, Concatenation, Shuffle, Shape, Identity or plugin layers read fp8, "
                        "fp4 and int4 tensors (the builder refuses it); dequantize it first"
                    )
    for node in nodes:
        for out, dt in zip(node.outputs, node.out_dtypes, strict=True):
            if dt in dtypes.LOW_PRECISION and node.type not in _LOW_PRODUCERS:
                raise InterpreterError(
                    dtypes.producer_rule(f"layer {node.index} {node.name!r} ({node.type}) output {out!r}", dt)
                )
        if node.type == "constant" and not dtypes.TABLE[node.out_dtypes[0]].narrow:
            # Read the array the Network kept, not a view of TensorRT's Weights: such a view does
            # not keep the memory alive, and a captured constant must outlive the network.
            own = weights.get(node.name)
            if own is not None and own.size == _volume(node.out_shapes[0]):
                view = np.asarray(node.layer.weights)
                if view.dtype == own.dtype and view.ctypes.data == own.ctypes.data:  # the very same memory
                    node.cache["value"] = own.reshape(node.out_shapes[0])
            continue
        if node.type == "constant":
            held = kept.get(node.name)
            if held is None:
                raise InterpreterError(
                    f"constant layer {node.index} {node.name!r} holds {node.out_dtypes[0]} weights, which "
                    "TensorRT's Python API cannot read back; build it with trtdsl's "
                    f"net.constant(values, dtype={node.out_dtypes[0]!r}) so the values are kept"
                )
            value = from_holder(held, node.out_dtypes[0]).reshape(node.out_shapes[0])
            node.cache["value"] = value
