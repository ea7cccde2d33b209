"""Moving chosen readers, and turning weights a layer holds (``trt.Weights``) into constant inputs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import _trt
from ..errors import ShapeError
from ..layerinfo import downcast
from ..network import Network
from ..tensor import Tensor

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
