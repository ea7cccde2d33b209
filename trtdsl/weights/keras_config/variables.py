"""Which variables each Keras layer class holds, and how a model config nests its layers.

The weight loader (:mod:`trtdsl.weights.keras`) names a ``.keras`` file's
unnamed variables from these: ``VARIABLES`` by class in creation order,
``WRAPPERS`` for layers whose weights sit in inner groups, and the layer tree.
"""

from __future__ import annotations

import re
from collections.abc import Callable


def _bias(c: dict) -> list[str]:
    return ["bias"] if c.get("use_bias", True) else []


def _affine(c: dict) -> list[str]:
    return (["gamma"] if c.get("scale", True) else []) + (["beta"] if c.get("center", True) else [])


def quantization_mode(c: dict) -> str | None:
    """'int8' (or another mode) for a layer that ``model.quantize`` converted, else None."""
    dt = c.get("dtype")
    if isinstance(dt, dict) and "Quantized" in str(dt.get("class_name", "")):
        return str((dt.get("config") or {}).get("mode") or "") or None
    return None


def _scaled(names: list[str], scale: str, c: dict) -> list[str]:
    # Keras 3 quantized layers append their scale after the float variables (Dense.variable_serialization_spec).
    return [*names, scale] if quantization_mode(c) == "int8" else names


def _conv(c: dict) -> list[str]:
    return ["kernel", *_bias(c)]


def _rnn(c: dict) -> list[str]:
    return ["kernel", "recurrent_kernel", *_bias(c)]


# Variable names by Keras class, in creation order (trainable ones first, which
# is also Keras' save order for every class here).
VARIABLES: dict[str, Callable[[dict], list[str]]] = {
    **dict.fromkeys(["Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"], _conv),
    "Dense": lambda c: _scaled(_conv(c), "kernel_scale", c),
    **dict.fromkeys(["DepthwiseConv1D", "DepthwiseConv2D"], lambda c: ["depthwise_kernel", *_bias(c)]),
    **dict.fromkeys(
        ["SeparableConv1D", "SeparableConv2D"], lambda c: ["depthwise_kernel", "pointwise_kernel", *_bias(c)]
    ),
    "BatchNormalization": lambda c: [*_affine(c), "moving_mean", "moving_variance"],
    # rms_scaling keeps gamma only (Keras 3 LayerNormalization.build)
    "LayerNormalization": lambda c: ["gamma"] if c.get("rms_scaling") else _affine(c),
    "GroupNormalization": _affine,
    "RMSNormalization": lambda c: ["scale"],
    "Embedding": lambda c: _scaled(["embeddings"], "embeddings_scale", c),
    "PReLU": lambda c: ["alpha"],
    "EinsumDense": lambda c: _scaled(["kernel", *(["bias"] if c.get("bias_axes") else [])], "kernel_scale", c),
    "LayerScale": lambda c: ["gamma"],
    "Attention": lambda c: (
        (["scale"] if c.get("use_scale") else []) + (["concat_score_weight"] if c.get("score_mode") == "concat" else [])
    ),
    "AdditiveAttention": lambda c: ["scale"] if c.get("use_scale", True) else [],
    "Normalization": lambda c: ["mean", "variance", "count"],
    **dict.fromkeys(["LSTM", "GRU", "SimpleRNN"], _rnn),
}
# Keras 3 renamed these weights; the Keras 2 name is the stable one.
ALIASES = {("DepthwiseConv1D", "kernel"): "depthwise_kernel", ("DepthwiseConv2D", "kernel"): "depthwise_kernel"}
# Container classes: their config holds layers of their own.
MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})


def _inner(c: dict, key: str) -> tuple[str, dict]:
    entry = c.get(key) or {}
    return str(entry.get("class_name")), entry.get("config") or {}


def _bidirectional(c: dict) -> list[tuple[str, str, str, dict]]:
    fcls, fcfg = _inner(c, "layer")
    bcls, bcfg = _inner(c, "backward_layer") if c.get("backward_layer") else (fcls, fcfg)
    return [("forward_layer", "forward/", fcls, fcfg), ("backward_layer", "backward/", bcls, bcfg)]


def _mha(c: dict) -> list[tuple[str, str, str, dict]]:
    # .keras groups -> the names legacy .h5 files give these sublayers
    dense = {"use_bias": c.get("use_bias", True), "bias_axes": "x" if c.get("use_bias", True) else None}
    parts = [
        ("query_dense", "query"),
        ("key_dense", "key"),
        ("value_dense", "value"),
        ("output_dense", "attention_output"),
    ]
    if c.get("use_gate"):  # a sigmoid gate on the attention output, in a group of its own
        parts.append(("_gate_dense", "gate"))
    return [(g, f"{n}/", "EinsumDense", dense) for g, n in parts]


# Wrapper classes whose weights sit in inner groups of model.weights.h5:
# cls -> fn(config) -> [(group, stable name prefix, inner class, inner config)]
WRAPPERS: dict[str, Callable[[dict], list[tuple[str, str, str, dict]]]] = {
    "Bidirectional": _bidirectional,
    "TimeDistributed": lambda c: [("layer", "", *_inner(c, "layer"))],
    "MultiHeadAttention": _mha,
}


def wrapped(cls: str, config: dict) -> list[tuple[str, str, str, dict]]:
    """The parts of a layer that hold variables: itself, or a wrapper's inner layers."""
    fn = WRAPPERS.get(cls)
    return fn(config) if fn else [("", "", cls, config)]


def to_snake_case(name: str) -> str:
    """Keras' own rule for the group name of a class in ``model.weights.h5``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def layers_of(model_cfg: dict) -> list[dict]:
    """The layer entries of a model config ([] for a plain layer)."""
    layers = (model_cfg.get("config") or {}).get("layers")
    return layers if isinstance(layers, list) else []


def layer_name(layer: dict) -> str:
    return str((layer.get("config") or {}).get("name") or layer.get("name"))


def tree(model_cfg: dict | None) -> dict[str, tuple[str, dict | None]]:
    """``{layer name: (class name, subtree or None)}`` for a model config."""
    out: dict[str, tuple[str, dict | None]] = {}
    for layer in layers_of(model_cfg or {}):
        inner = (layer.get("config") or {}).get("layer")  # a wrapper's (TimeDistributed) inner model
        sub = (
            tree(layer) if layers_of(layer) else (tree(inner) if isinstance(inner, dict) and layers_of(inner) else None)
        )
        out[layer_name(layer)] = (str(layer.get("class_name")), sub)
    return out


def find(tree_: dict, name: str) -> list[str] | None:
    """The path of layer names from ``tree_`` down to the layer called ``name``."""
    if name in tree_:
        return [name]
    for outer, (_, sub) in tree_.items():
        found = find(sub, name) if sub else None
        if found:
            return [outer, *found]
    return None


def sub_class(tree_: dict, path: list[str]) -> str:
    cls, sub = tree_[path[0]]
    return sub_class(sub, path[1:]) if len(path) > 1 and sub else cls
