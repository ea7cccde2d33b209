"""The converter registry: one function per Keras class, keyed by what the entry is and its class.

Keras 3 saves ``x + 3.0`` as an entry of class ``Add`` from ``keras.src.ops.numpy``,
the same class name as the ``Add`` layer, so the key is ``(kind, class_name)`` with
kind ``'layer'``, ``'operation'`` (Keras 3 ops) or ``'tfop'`` (Keras 2 ``TFOpLambda``,
keyed by its TensorFlow symbol such as ``'math.multiply'``).

Example::

    import trtdsl
    from trtdsl import ops

    @trtdsl.keras.converts("Swish2")
    def swish2(layer, x):
        return layer.like(x, ops.mul(x.t, ops.sigmoid(x.t * layer.config["beta"])))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import KerasError, UnsupportedKerasLayerError, did_you_mean
from ..weights.keras_config import Layer

Converter = Callable[..., Any]
CONVERTERS: dict[tuple[str, str], Converter] = {}
KINDS = ("layer", "operation", "tfop")

# Python code inside the file: refused, never run (Keras itself needs safe_mode=False for it).
_CODE = {"Lambda": "its function is Python bytecode or source"}


def converts(*class_names: str, kind: str = "layer") -> Callable[[Converter], Converter]:
    """Register ``fn(layer, *args, **kwargs)`` as the converter of Keras classes ``class_names``.

    ``layer`` is a :class:`trtdsl.keras.graph.Call`; args and kwargs are those
    of the Keras call with :class:`trtdsl.keras.graph.KTensor` for tensors. A
    later registration replaces an earlier one, so users can override built-ins.
    """
    if kind not in KINDS:
        raise KerasError(f"converts(kind={kind!r}): kind must be one of {KINDS}")

    def register(fn: Converter) -> Converter:
        for cls in class_names:
            CONVERTERS[(kind, cls)] = fn
        return fn

    return register


def supported(kind: str = "layer") -> list[str]:
    """The class names with a converter, for one kind."""
    return sorted(c for k, c in CONVERTERS if k == kind)


def _custom(layer: Layer) -> bool:
    """Whether the config names a class of its own: a module outside Keras, or a registered 'package>Name'."""
    foreign = bool(layer.module) and not layer.module.startswith(("keras", "tf_keras"))
    registered = bool(layer.registered) and ">" in layer.registered and not layer.registered.startswith("keras")
    return foreign or registered


def lookup(layer: Layer, where: str) -> Converter:
    """The converter for ``layer``, or an error naming the layer, its class and what is supported."""
    fn = CONVERTERS.get((layer.kind, layer.class_name))
    if fn is not None and _custom(layer) and getattr(getattr(fn, "func", fn), "__module__", "").startswith("trtdsl."):
        # A custom class named like a built-in (module 'mypkg', registered 'mypkg>Dense'): Keras runs the
        # user's code for it, not the built-in's, so converting it as the built-in would build another network.
        raise UnsupportedKerasLayerError(
            f"layer {where!r}: {layer.registered or layer.class_name!r} (module {layer.module!r}) is a custom class "
            f"named like Keras' {layer.class_name}: Keras runs its own code, which trtdsl never imports or runs. "
            f"Register a converter for it with @trtdsl.keras.converts({layer.class_name!r}) if it computes the same"
        )
    if fn is not None:
        return fn
    if layer.kind == "operation" and not layer.module and ("layer", layer.class_name) in CONVERTERS:
        # A legacy .h5 entry has no module, and one without 'trainable' is taken for an operation;
        # SpatialDropout1D-3D's get_config leaves 'trainable' out (keras/src/layers/regularization).
        return CONVERTERS[("layer", layer.class_name)]
    if layer.kind == "layer" and layer.class_name in _CODE:
        raise UnsupportedKerasLayerError(
            f"layer {where!r} is a {layer.class_name} layer: {_CODE[layer.class_name]}, which trtdsl never executes "
            "(only the JSON config is read). Rewrite it as built-in Keras layers, or register a converter for it "
            f"with @trtdsl.keras.converts({layer.class_name!r})"
        )
    names = supported(layer.kind)
    what = {"layer": "layer class", "operation": "Keras operation", "tfop": "TFOpLambda function"}[layer.kind]
    custom = ""
    if _custom(layer):
        custom = (
            f" {layer.registered or layer.class_name!r} is a custom class: its code lives in Python, which trtdsl"
            " never imports or runs."
        )
    raise UnsupportedKerasLayerError(
        f"layer {where!r}: no converter for {what} {layer.class_name!r}.{did_you_mean(layer.class_name, names)}"
        f"{custom} Register one with @trtdsl.keras.converts({layer.class_name!r}"
        f"{'' if layer.kind == 'layer' else f', kind={layer.kind!r}'}). Supported: {', '.join(names)}"
    )
