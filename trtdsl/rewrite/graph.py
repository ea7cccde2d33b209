"""Replacing a subgraph between tensors, and moving a region to another precision."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import dtypes
from ..errors import ShapeError, TrtdslError
from ..layerinfo import downcast
from ..tensor import Tensor
from .names import _move_tensor_name
from .types import TensorRef

if TYPE_CHECKING:
    from ..network import Network


# ------------------------------------------------------------------ graph
def _ref(net: Any, t: TensorRef) -> Tensor:
    return net.tensor(t) if isinstance(t, str) else t


def layers_between(net: Network, start: TensorRef | Sequence[TensorRef], end: TensorRef) -> list[Any]:
    """The layers on some path from ``start`` (one tensor or several) to ``end``, in network order.

    Raises when ``end`` does not depend on ``start``.

    Example::

        [layer.name for layer in rewrite.layers_between(net, "stem.out", "layer1.0.add.out")]
    """
    starts = [_ref(net, s) for s in ([start] if isinstance(start, (Tensor, str)) else start)]
    end_t = _ref(net, end)
    order: dict[str, int] = {}
    readers: dict[str, list[Any]] = {}  # tensor name -> layers reading it, built in one pass
    for i in range(net.trt.num_layers):
        layer = net.trt.get_layer(i)
        order[layer.name] = i
        for j in range(layer.num_inputs):
            t = layer.get_input(j)
            if t is not None:
                readers.setdefault(t.name, []).append(layer)
    # Forward from start: every layer reading a tensor reachable from start.
    reach: set[str] = set()
    frontier = [s.name for s in starts]
    seen = set(frontier)
    while frontier:
        name = frontier.pop()
        for layer in readers.get(name, ()):
            reach.add(layer.name)
            for j in range(layer.num_outputs):
                out = layer.get_output(j).name
                if out not in seen:
                    seen.add(out)
                    frontier.append(out)
    if end_t.name not in seen:
        raise TrtdslError(
            f"tensor {end_t.name!r} does not depend on {', '.join(repr(s.name) for s in starts)}: no region between them"
        )
    # Backward from end, staying inside the forward set.
    region: set[str] = set()
    stack = [end_t.name]
    visited: set[str] = set()
    start_names = {s.name for s in starts}
    while stack:
        name = stack.pop()
        if name in visited or name in start_names:
            continue
        visited.add(name)
        layer = net.producer(name)
        if layer is None or layer.name not in reach:
            continue
        region.add(layer.name)
        for j in range(layer.num_inputs):
            t = layer.get_input(j)
            if t is not None:
                stack.append(t.name)
    layers = [net.trt.get_layer(order[n]) for n in region]
    return sorted(layers, key=lambda layer: order[layer.name])


def replace_subgraph(
    net: Network, start: TensorRef | Sequence[TensorRef], end: TensorRef, make: Callable[..., Tensor]
) -> Tensor:
    """Compute ``end`` differently: every reader of ``end`` reads ``make(*start)`` instead.

    ``make`` receives the start tensor(s) and adds layers with the DSL. When
    ``end`` is a network output, the new tensor takes over its name. The old
    layers between ``start`` and ``end`` are left with no readers (TensorRT drops
    them at build). Returns the new tensor.

    Example::

        # the block's ReLU becomes a GELU, reading what the ReLU read
        relu = net.layer("layer1.0.relu")
        rewrite.replace_subgraph(net, Tensor(relu.get_input(0), net), Tensor(relu.get_output(0), net), ops.gelu)
    """
    starts = [_ref(net, s) for s in ([start] if isinstance(start, (Tensor, str)) else start)]
    old = _ref(net, end)
    layers_between(net, starts, old)  # raises when end does not depend on start
    before = net.trt.num_layers
    new = make(*starts)
    if not isinstance(new, Tensor):
        raise TrtdslError(f"replace_subgraph: make() must return a trtdsl.Tensor, got {type(new).__name__}")
    if new.net is not net:
        raise TrtdslError(
            f"replace_subgraph: make() returned {new.name!r} of network {new.net.name!r}, not of {net.name!r}"
        )
    if new.dtype != old.dtype:
        new = net.cast(new, old.dtype)
    if tuple(new.shape) != tuple(old.shape) and -1 not in (*new.shape, *old.shape):
        raise ShapeError(f"replace_subgraph: new tensor has shape {new.shape}, {old.name!r} has {old.shape}")
    added = [net.trt.get_layer(i) for i in range(before, net.trt.num_layers)]
    was_output = old.trt.is_network_output
    net.replace_uses(old, new, keep=added)
    if was_output:
        new = _take_output(net, old, new)
    net.generation += 1
    return new


def _take_output(net: Any, old: Tensor, new: Tensor) -> Tensor:
    """Make ``new`` the network output that ``old`` was, under ``old``'s name."""
    name = old.name
    net.trt.unmark_output(old.trt)
    net.outputs.pop(name, None)
    _move_tensor_name(net, old, name, net.unique_name(name + ".replaced", scoped=False))
    if new.trt.is_network_input or new.trt.is_network_output:
        # A tensor cannot be an input and an output, or two outputs, under one name: copy it.
        new = net.register(net.trt.add_identity(new.trt), "identity", name + ".copy", scoped=False)
    net._used_names.add(name)
    _move_tensor_name(net, new, new.name, name)
    new = net.tensor(name)
    net.trt.mark_output(new.trt)
    net.outputs[name] = new
    return new


# -------------------------------------------------------------- precision
_WEIGHTED = {
    "CONVOLUTION": ("kernel", "bias"),
    "DECONVOLUTION": ("kernel", "bias"),
    "SCALE": ("shift", "scale", "power"),
}


def set_precision(
    net: Network, start: TensorRef | Sequence[TensorRef], end: TensorRef, dtype: dtypes.DTypeLike
) -> Tensor:
    """Compute the layers between ``start`` and ``end`` in ``dtype`` (a float type).

    TensorRT 11 networks are strongly typed, so this rewrites types, not flags:
    float inputs entering the region are cast to ``dtype``, layer weights
    (convolution kernels and biases, scale layers) are stored in ``dtype``, casts
    and dequantizes inside the region produce ``dtype``, and every tensor leaving
    the region is cast back to the type it had, so the rest of the network and
    the outputs keep their types. Weights come from their first-seen values, so a
    block moved to float16 and back to float32 gets its float32 weights back.
    Returns the tensor that now carries ``end``'s value.

    Example::

        rewrite.set_precision(net, "input", "output", "float16")            # whole net in fp16
        rewrite.set_precision(net, "/layer4/Relu_output_0", "output", "float32")  # the head back in fp32
    """
    dt = dtypes.canonical(dtype)
    if dt not in dtypes.FLOATS:
        raise ShapeError(f"set_precision: dtype must be one of {dtypes.FLOATS}, got {dtype!r}")
    starts = [_ref(net, s) for s in ([start] if isinstance(start, (Tensor, str)) else start)]
    end_t = _ref(net, end)
    region = layers_between(net, starts, end_t)
    inside = {layer.name for layer in region}
    uses: dict[str, list[tuple[Any, int]]] = {}  # tensor name -> (reader, input index), one pass
    for i in range(net.trt.num_layers):
        reader = net.trt.get_layer(i)
        for k in range(reader.num_inputs):
            t = reader.get_input(k)
            if t is not None:
                uses.setdefault(t.name, []).append((reader, k))
    # Record the exits and their types before anything changes.
    exits = []
    for layer in region:
        for j in range(layer.num_outputs):
            t = layer.get_output(j)
            # A cast reading an exit keeps its own output type, so it needs no cast back
            # (and a region moved back to float32 then loses nothing on the way out).
            readers = [(c, k) for c, k in uses.get(t.name, ()) if c.name not in inside and c.type.name != "CAST"]
            if (readers or t.is_network_output) and dtypes.is_float(dtypes.canonical(t.dtype)):
                exits.append((t.name, dtypes.canonical(t.dtype), readers, t.is_network_output))
    originals = net.__dict__.setdefault("_original_weights", {})

    for raw in region:
        kind = raw.type.name  # before downcasting: IActivationLayer.type is the activation kind
        layer = downcast(raw)
        for j in range(layer.num_inputs):
            t = layer.get_input(j)
            producer = None if t is None else net.producer(t.name)
            if t is None or (producer is not None and producer.name in inside):
                continue
            if dtypes.is_float(dtypes.canonical(t.dtype)):
                layer.set_input(j, net.cast(Tensor(t, net), dt).trt)
        for attr in _WEIGHTED.get(kind, ()):
            w = getattr(layer, attr)
            if not isinstance(w, np.ndarray) or w.size == 0:
                continue
            key = (layer.name, attr)
            if key not in originals:
                originals[key] = np.array(w, copy=True)
            setattr(layer, attr, net.keep(originals[key].astype(dtypes.to_numpy(dt)), f"{layer.name}.{attr}"))
        if kind in ("CAST", "DEQUANTIZE") and dtypes.is_float(dtypes.canonical(layer.to_type)):
            layer.to_type = dtypes.to_trt(dt)
    result = end_t
    for name, was, readers, is_output in exits:
        back = net.cast(net.tensor(name), was)
        for c, k in readers:
            c.set_input(k, back.trt)
        if is_output:
            new = _take_output(net, net.tensor(name), back)
            if name == end_t.name:
                result = new
        elif name == end_t.name:
            result = back
    net.generation += 1
    return result
