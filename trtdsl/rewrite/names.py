"""Renaming layers and tensors, and readable names for ONNX-parsed layers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import TrtdslError, did_you_mean
from ..tensor import Tensor
from .types import Renamer

if TYPE_CHECKING:
    from ..network import Network


# ------------------------------------------------------------------- names
def rename_layer(net: Network, old: str, new: str) -> Any:
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


def rename_tensor(net: Network, old: str, new: str) -> Tensor:
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


def rename_layers(net: Network, names: Renamer, *, outputs: bool = True) -> dict[str, str]:
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


def rename_tensors(net: Network, names: Renamer) -> dict[str, str]:
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


def onnx_scope_names(net: Network) -> dict[str, str]:
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
