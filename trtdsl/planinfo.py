"""Plan metadata: the network's layers, and the engine inspector's view where a GPU allows.

``build`` records one entry per layer of the network it built (name, type,
inputs, outputs with dtype and shape, the precision the layer computes in,
and its part in explicit quantization), so ``trtdsl info model.plan --layers``
can list them on any machine. What TensorRT made of them (fused layers,
tactics) is only known to the deserialized engine: :func:`engine_layers` asks
the engine inspector for it, and says why not when no GPU can deserialize it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from . import dtypes
from .errors import TrtdslError

MAX_TEXT = 4096  # longest name a record may carry (the sidecar is untrusted input)


def _dtype(t: Any) -> str:
    try:
        return dtypes.canonical(t.dtype)
    except Exception:  # a TensorRT type trtdsl has no name for: show TensorRT's own
        return str(t.dtype).rsplit(".", 1)[-1].lower()


def _shape(t: Any) -> list[int]:
    s = t.shape
    return [int(s[i]) for i in range(len(s))]


def layer_records(net: Any) -> list[dict[str, Any]]:
    """One JSON-ready record per layer of ``net`` (a ``Network`` or ``INetworkDefinition``), in order.

    ``region`` is the dtype of the ``net.precision(...)`` block the layer was
    added in, where it differs from the network's. ``precision`` is the type the layer computes in: for a strongly typed
    network, that of its first float input (or output, for layers without
    one); Quantize and Dequantize layers in their output type. ``qdq`` is
    ``"quantize"``/``"dequantize"`` for Q/DQ layers, and ``quantized`` marks a
    layer that reads a dequantized tensor (TensorRT fuses the DQ into it).

    Example::

        [r["name"] for r in layer_records(net) if r["qdq"] == "quantize"]
    """
    d = getattr(net, "trt", net)
    regions = getattr(net, "_regions", {})  # layer -> the net.precision(...) block it was added in
    # Rewrites append Q/DQ layers after their readers, so collect DQ outputs first.
    dequantized = {
        d.get_layer(i).get_output(0).name for i in range(d.num_layers) if d.get_layer(i).type.name == "DEQUANTIZE"
    }
    records = []
    for i in range(d.num_layers):
        layer = d.get_layer(i)
        kind = layer.type.name
        ins = [layer.get_input(j) for j in range(layer.num_inputs)]
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        floats = [_dtype(t) for t in ins if t is not None and dtypes.is_float(_dtype(t))]
        if kind in ("QUANTIZE", "DEQUANTIZE") and outs:
            precision = _dtype(outs[0])
        elif floats:
            precision = floats[0]
        else:
            out_types = [_dtype(t) for t in outs]
            precision = next((t for t in out_types if dtypes.is_float(t)), out_types[0] if out_types else "")
        record: dict[str, Any] = {
            "name": layer.name,
            "type": kind.lower(),
            "inputs": [t.name if t is not None else None for t in ins],
            "outputs": [{"name": t.name, "dtype": _dtype(t), "shape": _shape(t)} for t in outs],
            "precision": precision,
            "region": regions.get(layer.name, ""),
            "qdq": {"QUANTIZE": "quantize", "DEQUANTIZE": "dequantize"}.get(kind),
            "quantized": any(t is not None and t.name in dequantized for t in ins),
        }
        records.append(record)
    return records


def check_layers(value: Any, where: str = "plan metadata") -> list[dict[str, Any]]:
    """The sidecar's ``layers`` field, checked field by field (absent in older plans: ``[]``).

    A sidecar is untrusted input: every record must be the shape :func:`layer_records`
    writes, or a ``TrtdslError`` names the record and the field.
    """

    def fail(field: str, expected: str, got: Any) -> TrtdslError:
        shown = repr(got)
        return TrtdslError(f"{where} is malformed: {field}: expected {expected}, got {shown[:60]}")

    def text(v: Any, field: str, *, optional: bool = False) -> None:
        if (v is None and optional) or (isinstance(v, str) and len(v) <= MAX_TEXT):
            return
        raise fail(field, f"a string of at most {MAX_TEXT} characters", v)

    if not isinstance(value, list):
        raise fail("layers", "a list of layer records", value)
    for i, r in enumerate(value):
        at = f"layers[{i}]"
        if not isinstance(r, dict):
            raise fail(at, "a layer record (JSON object)", r)
        for key in ("name", "type", "precision"):
            text(r.get(key), f"{at}.{key}")
        text(r.get("region", ""), f"{at}.region")
        if r.get("qdq") not in (None, "quantize", "dequantize"):
            raise fail(f"{at}.qdq", "null, 'quantize' or 'dequantize'", r.get("qdq"))
        if not isinstance(r.get("quantized", False), bool):
            raise fail(f"{at}.quantized", "true or false", r.get("quantized"))
        ins, outs = r.get("inputs", []), r.get("outputs", [])
        if not isinstance(ins, list):
            raise fail(f"{at}.inputs", "a list of tensor names", ins)
        for j, name in enumerate(ins):
            text(name, f"{at}.inputs[{j}]", optional=True)
        if not isinstance(outs, list):
            raise fail(f"{at}.outputs", "a list of output records", outs)
        for j, o in enumerate(outs):
            if not isinstance(o, dict):
                raise fail(f"{at}.outputs[{j}]", "an output record", o)
            text(o.get("name"), f"{at}.outputs[{j}].name")
            text(o.get("dtype"), f"{at}.outputs[{j}].dtype")
            shape = o.get("shape")
            if not isinstance(shape, list) or len(shape) > 8 or not all(type(d) is int and d >= -1 for d in shape):
                raise fail(f"{at}.outputs[{j}].shape", "a list of at most 8 ints >= -1", shape)
    return value


def format_layers(records: list[dict[str, Any]]) -> str:
    """A fixed-width table of layer records (what ``trtdsl info --layers`` prints).

    Example::

        print(format_layers(trtdsl.Plan.load("model.plan").layers))
    """
    rows = [("#", "layer", "type", "precision", "region", "Q/DQ", "outputs")]
    for i, r in enumerate(records):
        qdq = r.get("qdq") or ("reads DQ" if r.get("quantized") else "")
        outs = ", ".join(f"{o['dtype']}{tuple(o['shape'])}".replace(",)", ")") for o in r.get("outputs", []))
        rows.append((str(i), r["name"], r["type"], r.get("precision", ""), r.get("region", ""), qdq, outs))
    widths = [max(len(row[c]) for row in rows) for c in range(6)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:6], widths)) + "  " + row[6] for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def engine_layers(plan: Any) -> tuple[list[dict[str, Any]] | None, str]:
    """The engine inspector's per-layer information, or ``(None, why not)``.

    Deserializing needs a GPU that the installed TensorRT supports, and the
    TensorRT flavour the plan was built with.
    """
    from . import _trt
    from .errors import BackendError

    try:
        trt = _trt.load()
    except BackendError as e:
        return None, f"TensorRT is not installed ({e})"
    built_with = (plan.backend or "").split(" ")[0]
    if built_with and built_with != _trt.name():
        return None, f"the plan was built with {plan.backend}, but this machine has {_trt.name()}"
    logger = _trt.logger()
    first = len(logger.errors)
    # The failure on a machine without a usable GPU is expected: keep TensorRT's error lines
    # off stderr (they are still collected, and the reason returned says what they said).
    quiet = logging.getLogger("trtdsl.tensorrt")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL + 1)
    try:
        engine = trt.Runtime(logger).deserialize_cuda_engine(plan.engine)
    finally:
        quiet.setLevel(level)
    if engine is None:
        errors = logger.errors[first:]
        return None, (
            f"{_trt.name()} could not deserialize the plan on this machine (a GPU it supports is needed): "
            + (errors[0] if errors else "no error message")
        )
    inspector = engine.create_engine_inspector()
    info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    layers = info.get("Layers", [])
    return [x if isinstance(x, dict) else {"Name": x} for x in layers], ""


def format_engine_layers(layers: list[dict[str, Any]]) -> str:
    """One line per engine layer: its name (TensorRT joins fused layers' names with '+'), type and tactic."""
    lines = [f"engine: {len(layers)} layers after fusion"]
    if layers and not any("TacticName" in x or "Tactic" in x for x in layers):
        # TensorRT records tactics only at ProfilingVerbosity.DETAILED.
        lines[0] += " (names only: build with --profiling-verbosity detailed for tactics)"
    for i, x in enumerate(layers):
        extra = ", ".join(f"{k} {x[k]}" for k in ("LayerType", "TacticName", "Tactic") if k in x)
        lines.append(f"  {i}: {x.get('Name', '?')}" + (f" ({extra})" if extra else ""))
    return "\n".join(lines)


__all__ = ["check_layers", "engine_layers", "format_engine_layers", "format_layers", "layer_records"]
