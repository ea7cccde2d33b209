"""Rewriting a finished network: functions that take the ``Network`` and change its wiring.

``Network.consumers``, ``replace_uses`` and ``insert_after`` move every reader of a
tensor; the functions here move chosen readers, and turn weights held by a layer
(``trt.Weights``) into constant tensors on its inputs, which is what quantizing a
weight needs (constant -> Quantize -> Dequantize -> the convolution's kernel input).

The second family renames layers and tensors, replaces a subgraph between two
tensors, and moves a region to another precision; they work on any ``Network``,
hand-written or adopted (:meth:`Network.adopt`, :func:`trtdsl.onnx.parse`).
TensorRT has no way to delete a layer, so a replaced subgraph stays in the
definition with nothing reading it; the builder drops such dead layers.

Every function bumps ``net.generation`` when it rewires, so prepared reference
interpreters notice.

Example::

    kernel = rewrite.weights_to_input(net, conv_layer)          # 'stem.conv.kernel' constant
    fq = ops.fake_quantize(kernel, amax=np.abs(w).max(axis=(1, 2, 3)), axis=0)
    rewrite.reroute(net, [(conv_layer, 1)], fq)

    net = trtdsl.onnx.parse("resnet18.onnx", dims={"batch": (1, 8, 32)})
    rewrite.rename_layers(net, rewrite.onnx_scope_names(net))   # '/layer1/layer1.0/conv1/Conv' -> 'layer1.0.conv1'
    rewrite.replace_subgraph(net, relu_in, relu_out, ops.gelu)  # swap an activation
    rewrite.set_precision(net, "input", "output", "float16")     # the whole net in fp16
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from . import _trt, dtypes
from .errors import ShapeError, TrtdslError, did_you_mean
from .layerinfo import downcast
from .network import Network
from .tensor import Tensor

__all__ = [
    "find_layer", "layers_between", "onnx_scope_names", "producers", "rename_layer", "rename_layers", "rename_tensor",
    "rename_tensors", "replace_subgraph", "reroute", "set_precision", "weights_to_input",
]  # fmt: skip

# Layers that may hold their kernel and bias as trt.Weights (inputs 1 and 2 otherwise).
_WEIGHT_INPUTS = ("CONVOLUTION", "DECONVOLUTION")


def producers(net: Network) -> dict[str, Any]:
    """Tensor name -> the (downcast) layer that computes it, for every layer of ``net``."""
    found = {}
    for i in range(net.trt.num_layers):
        layer = downcast(net.trt.get_layer(i))
        for j in range(layer.num_outputs):
            found[layer.get_output(j).name] = layer
    return found


def find_layer(net: Network, name: str) -> Any:
    """The (downcast) layer called ``name``: :meth:`Network.layer`, for rewriting code that takes ``net`` first."""
    return net.layer(name)


def reroute(net: Network, uses: Iterable[tuple[Any, int]], new: Tensor) -> int:
    """Make each ``(layer, input_index)`` in ``uses`` read ``new``; other readers keep their inputs.

    Returns how many inputs moved.
    """
    moved = 0
    for reader, j in uses:
        layer = find_layer(net, reader) if isinstance(reader, str) else reader
        old = layer.get_input(j)
        if old is not None and old.dtype != new.trt.dtype:
            raise ShapeError(
                f"cannot reroute input {j} of layer {layer.name!r} from {old.name!r} ({old.dtype}) to "
                f"{new.name!r} ({new.trt.dtype}): dtypes differ"
            )
        layer.set_input(j, new.trt)
        moved += 1
    if moved:
        net.generation += 1
    return moved


def weights_to_input(net: Network, layer: Any) -> tuple[Any, Tensor]:
    """Replace a convolution holding ``trt.Weights`` by one reading its kernel (and bias) from constants.

    TensorRT reads a kernel either from ``layer.kernel`` or from input 1, never both, and
    refuses to empty the weights of an existing layer; a quantized kernel must be a
    tensor (constant -> Q -> DQ). So a new layer with the same parameters takes the old
    one's name, output name and readers; the constants are ``<layer>.kernel`` and
    ``<layer>.bias``. TensorRT cannot delete a layer: the old one, renamed
    ``<layer>.replaced``, is left reading a one-window dummy input, so it costs nothing
    in the interpreter, and the builder drops it because nothing reads its output.
    Returns ``(new layer, kernel tensor)``; a layer whose kernel already is an input
    is returned as it is.

    Example::

        conv, kernel = weights_to_input(net, net.producer(y))
    """
    trt = _trt.load()
    layer = downcast(layer)
    kind = layer.type.name
    if kind not in _WEIGHT_INPUTS:
        raise ShapeError(
            f"layer {layer.name!r} ({kind.lower()}) holds no weights that can become inputs; "
            f"supported: {sorted(k.lower() for k in _WEIGHT_INPUTS)}"
        )
    if layer.num_inputs > 1 and layer.get_input(1) is not None:
        return layer, Tensor(layer.get_input(1), net)
    name = layer.name
    x = layer.get_input(0)
    kernel = np.array(layer.kernel)  # copies: the old layer's weights stay where they are
    kernel = kernel.reshape(_kernel_shape(layer, kernel.size))
    bias = np.array(layer.bias)
    dt = x.dtype
    empty = trt.Weights(dt)
    window = tuple(int(v) for v in layer.kernel_size_nd)
    add = net.trt.add_convolution_nd if kind == "CONVOLUTION" else net.trt.add_deconvolution_nd
    new = add(x, int(layer.num_output_maps), window, empty, empty)
    for attr in ("stride_nd", "pre_padding", "post_padding", "padding_mode", "dilation_nd", "num_groups"):
        if hasattr(layer, attr):
            setattr(new, attr, getattr(layer, attr))
    kt = _constant(net, kernel, f"{name}.kernel")
    new.set_input(1, kt.trt)
    if bias.size:
        new.set_input(2, _constant(net, bias, f"{name}.bias").trt)
    old_out = layer.get_output(0)
    out_name = old_out.name
    layer.name = f"{name}.replaced"
    old_out.name = f"{out_name}.replaced"
    net.register(new, kind.lower(), name, resolved=True)
    new_out = new.get_output(0)
    new_out.name = out_name
    net._producers[out_name] = new  # the one index of producers by name, kept by Network
    net._producers.pop(name + ".out", None) if name + ".out" != out_name else None
    for reader, j in net.consumers(old_out.name):
        reader.set_input(j, new_out)
    if old_out.is_network_output:
        net.trt.unmark_output(old_out)
        net.trt.mark_output(new_out)
        for key, t in list(net.outputs.items()):
            if t.trt.name == old_out.name:
                net.outputs[key] = Tensor(new_out, net)
    _starve(net, layer, x, window)
    net.generation += 1
    return new, kt


def _starve(net: Network, layer: Any, x: Any, window: tuple[int, ...]) -> None:
    """Point a replaced convolution at a tiny constant input, so running it costs nothing."""
    dilation = tuple(int(v) for v in layer.dilation_nd) if layer.type.name == "CONVOLUTION" else (1,) * len(window)
    spatial = tuple(d * (k - 1) + 1 for k, d in zip(window, dilation))
    shape = (1, int(x.shape[1]), *spatial)
    dt = {"FLOAT": np.float32, "HALF": np.float16}.get(x.dtype.name, np.float32)
    dummy = _constant(net, np.zeros(shape, dt), f"{layer.name}.dummy_input")
    layer.set_input(0, dummy.trt)


def _kernel_shape(layer: Any, size: int) -> tuple[int, ...]:
    k = int(layer.num_output_maps)
    groups = int(layer.num_groups)
    window = tuple(int(v) for v in layer.kernel_size_nd)
    per = int(np.prod(window))
    if layer.type.name == "CONVOLUTION":
        return (k, size // (k * per), *window)
    # Deconvolution kernels are (in, out / groups, *window).
    return (size // ((k // groups) * per), k // groups, *window)


def _constant(net: Network, array: np.ndarray, name: str) -> Tensor:
    """A constant of ``array``'s own dtype named ``name`` exactly (not under the current scope)."""
    dt = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16"}.get(array.dtype)
    if dt is None:
        raise ShapeError(f"{name}: cannot move weights of dtype {array.dtype} to a constant input")
    lname = net.unique_name(name, scoped=False)
    layer = net.trt.add_constant(array.shape, net.keep(array, lname))
    return net.register(layer, "constant", lname, resolved=True)


# ============ renames, subgraph replacement, precision regions (trtdsl.onnx users) ============
TensorRef = Tensor | str
Renamer = Mapping[str, str] | Callable[[str], str | None]


# ------------------------------------------------------------------- names
def rename_layer(net: Any, old: str, new: str) -> Any:
    """Rename layer ``old`` to ``new`` (which must be free); returns the layer.

    Example::

        rewrite.rename_layer(net, "/layer1/layer1.0/conv1/Conv", "layer1.0.conv1")
    """
    layer = net.layer(old)
    if new == old:
        return layer
    _claim(net, new, f"layer {old!r}")
    net._used_names.discard(old)
    layer.name = new
    net.generation += 1
    return layer


def rename_tensor(net: Any, old: str, new: str) -> Tensor:
    """Rename tensor ``old`` (an input, a layer output or a network output) to ``new``.

    Example::

        rewrite.rename_tensor(net, "input", "images")
    """
    t = net.tensor(old)
    if new == old:
        return t
    _claim(net, new, f"tensor {old!r}")
    return _move_tensor_name(net, t, old, new)


def _move_tensor_name(net: Any, t: Tensor, old: str, new: str) -> Tensor:
    """Rename ``t`` from ``old`` to ``new`` (already claimed) in the definition and every table."""
    net._used_names.discard(old)
    t.trt.name = new
    if old in net._producers:
        net._producers[new] = net._producers.pop(old)
    for table in (net.input_specs, net.input_dtypes, net.outputs):
        if old in table:
            items = [(new if k == old else k, v) for k, v in table.items()]
            table.clear()
            table.update(items)
    for key in [k for k in net._derived if k[0] == old]:
        net._derived[(new, key[1])] = net._derived.pop(key)
    net.generation += 1
    return Tensor(t.trt, net)


def rename_layers(net: Any, names: Renamer, *, outputs: bool = True) -> dict[str, str]:
    """Rename many layers at once: ``names`` maps old to new, or is ``fn(old) -> new | None``.

    With ``outputs``, a layer's output tensors follow: ``<new>.out`` (or ``.out0``,
    ``.out1``...), except network inputs and outputs, which keep their names.
    A new name already taken gets a ``_1`` suffix. Returns ``{old: new}``.

    Example::

        rewrite.rename_layers(net, rewrite.onnx_scope_names(net))
        rewrite.rename_layers(net, {"/fc/Gemm": "head.fc"})
    """
    fn = names.get if isinstance(names, Mapping) else names
    done: dict[str, str] = {}
    for i in range(net.trt.num_layers):
        layer = net.trt.get_layer(i)
        want = fn(layer.name)
        if not want or want == layer.name:
            continue
        old = layer.name
        new = net.unique_name(want, scoped=False)
        net._used_names.discard(old)
        layer.name = new
        done[old] = new
        if outputs:
            n = layer.num_outputs
            for j in range(n):
                t = layer.get_output(j)
                if not t.is_network_output:
                    want_t = net.unique_name(new + (".out" if n == 1 else f".out{j}"), scoped=False)
                    _move_tensor_name(net, Tensor(t, net), t.name, want_t)
    if isinstance(names, Mapping):
        missing = [k for k in names if k not in done and names[k] != k]
        if missing:
            known = [net.trt.get_layer(i).name for i in range(net.trt.num_layers)]
            raise TrtdslError(f"rename_layers: no layer {missing[0]!r}.{did_you_mean(missing[0], known)}")
    if done:
        net.generation += 1
    return done


def rename_tensors(net: Any, names: Renamer) -> dict[str, str]:
    """Rename many tensors (inputs, layer outputs, outputs): a mapping old -> new, or ``fn(old) -> new | None``.

    For matching a calibration cache or golden file written for other names. Returns ``{old: new}``.

    Example::

        rewrite.rename_tensors(net, {"images": "input_1"})
    """
    current = [net.trt.get_input(i).name for i in range(net.trt.num_inputs)]
    for i in range(net.trt.num_layers):
        layer = net.trt.get_layer(i)
        current += [layer.get_output(j).name for j in range(layer.num_outputs)]
    fn = names.get if isinstance(names, Mapping) else names
    done = {}
    for old in current:
        new = fn(old)
        if new and new != old:
            rename_tensor(net, old, new)
            done[old] = new
    if isinstance(names, Mapping):
        missing = [k for k in names if k not in done and names[k] != k]
        if missing:
            raise TrtdslError(f"rename_tensors: no tensor {missing[0]!r}.{did_you_mean(missing[0], current)}")
    return done


def _onnx_scope(name: str) -> tuple[str, str] | None:
    """(module path, op) of a torch-exporter node name: '/layer1/layer1.0/conv1/Conv' -> ('layer1.0.conv1', 'Conv')."""
    parts = [p for p in name.split("/") if p] if name.startswith("/") else []
    if len(parts) < 2:
        return None
    scope = ""
    for part in parts[:-1]:  # each part may repeat its parent's prefix ('layer1', 'layer1.0')
        scope = part if scope and part.startswith(scope + ".") else (f"{scope}.{part}" if scope else part)
    return scope, parts[-1]


def onnx_scope_names(net: Any) -> dict[str, str]:
    """Readable names for the layers of a network parsed from a torch-exported ONNX file, for :func:`rename_layers`.

    A layer takes its module's path (``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``)
    when it is the only layer of a leaf module (a conv, an activation, a norm); layers
    sharing a module, or written in a container's forward (``/layer1/layer1.0/Add``),
    add their op (``layer1.0.add``).
    Layers with other names are left out.

    Example::

        rewrite.rename_layers(net, rewrite.onnx_scope_names(net))
    """
    found: dict[str, tuple[str, str]] = {}
    for i in range(net.trt.num_layers):
        name = net.trt.get_layer(i).name
        scoped = _onnx_scope(name)
        if scoped is not None:
            found[name] = scoped
    per_scope: dict[str, int] = {}
    for scope, _ in found.values():
        per_scope[scope] = per_scope.get(scope, 0) + 1
    names = {}
    for name, (scope, op) in found.items():
        # A leaf module's one layer is the module ('conv1'); an op written in a container's
        # forward ('/encoder/Add', '/layer1/layer1.0/Add') keeps its op in the name.
        alone = per_scope[scope] == 1 and op.split("_")[0] in _LEAF_OPS
        names[name] = scope if alone else f"{scope}.{op.lower()}"
    return names


# ONNX ops that torch modules of their own export to (nn.Conv2d -> Conv, nn.ReLU -> Relu, ...).
_LEAF_OPS = frozenset(
    "Conv ConvTranspose Gemm MatMul Relu LeakyRelu Sigmoid Tanh Gelu HardSwish HardSigmoid Softmax MaxPool "
    "AveragePool GlobalAveragePool GlobalMaxPool BatchNormalization LayerNormalization InstanceNormalization "
    "Dropout Flatten Elu Selu Softplus PRelu Gather".split()
)


def _claim(net: Any, name: str, what: str) -> None:
    if name in net._used_names:
        raise TrtdslError(f"cannot rename {what} to {name!r}: the name is already used in network {net.name!r}")
    net._used_names.add(name)


# ------------------------------------------------------------------ graph
def _ref(net: Any, t: TensorRef) -> Tensor:
    return net.tensor(t) if isinstance(t, str) else t


def layers_between(net: Any, start: TensorRef | Sequence[TensorRef], end: TensorRef) -> list[Any]:
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
    net: Any, start: TensorRef | Sequence[TensorRef], end: TensorRef, make: Callable[..., Tensor]
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


def set_precision(net: Any, start: TensorRef | Sequence[TensorRef], end: TensorRef, dtype: dtypes.DTypeLike) -> Tensor:
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
