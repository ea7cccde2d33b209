"""Keras model configs, parsed as JSON only: the layer tree, the call graph and variable names.

The weight loader (:mod:`trtdsl.weights.keras`) needs the config to give
``.keras`` variables their names; :mod:`trtdsl.keras` needs it to rebuild the
model. Nothing here imports Keras or executes anything from the file: a
``Lambda`` layer's code or a custom object stays an inert JSON string.

Both node formats are normalized into one :class:`Node`:

- Keras 3 writes each call as ``{"args": [...], "kwargs": {...}}`` whose
  tensors are ``{"class_name": "__keras_tensor__", "config": {"keras_history":
  [layer, node, index]}}``;
- Keras 2 writes nested lists ``[[layer, node, index, kwargs], ...]``, and
  arithmetic as ``TFOpLambda`` layers whose ``function`` is the TensorFlow
  symbol (``"__operators__.add"``, ``"math.multiply"``).

Example::

    from trtdsl.weights import keras_config
    mf = keras_config.read("model.keras")
    model = keras_config.parse_model(mf.config)
    [layer.class_name for layer in model.layers]    # ['InputLayer', 'Conv2D', ...]
"""

from __future__ import annotations

import itertools
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WeightError
from .h5 import HDF5_MAGIC, H5Image
from .limits import DEFAULT, Limits, preview
from .zipcheck import Archive


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
    return [
        (g, f"{n}/", "EinsumDense", dense)
        for g, n in (("query_dense", "query"), ("key_dense", "key"), ("value_dense", "value"),
                     ("output_dense", "attention_output"))
    ]  # fmt: skip


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
        sub = tree(layer) if layers_of(layer) else None
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


# ------------------------------------------------------------- reading the file
@dataclass
class ModelFile:
    """What a Keras file says about its model: the config and the Keras that wrote it."""

    path: Path
    format: str  # "h5" (legacy, Keras 2 or 3) or "keras" (Keras 3 zip)
    config: dict
    keras_version: str
    backend: str | None = None  # legacy .h5 records it; .keras does not

    @property
    def keras_major(self) -> int:
        m = re.match(r"\d+", self.keras_version)
        return int(m.group()) if m else 3


def _json(raw: Any, what: str, path: Path) -> Any:
    try:
        return json.loads(raw.decode("utf8") if isinstance(raw, bytes) else str(raw))
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        raise WeightError(f"{path.name}: {what} is not valid JSON: {e}") from e


def read(path: str | Path, *, trusted: bool = False, limits: Limits = DEFAULT) -> ModelFile:
    """Read the model config of a Keras ``.h5`` or ``.keras`` file (JSON only, no weights).

    The file is read as untrusted, like every weight file: HDF5 attributes are read in
    the isolated HDF5 worker (``trusted=True`` reads them in-process), and a ``.keras``
    archive goes through :class:`~trtdsl.weights.zipcheck.Archive` (duplicate members,
    bombs and CRC errors refused), with the JSON capped at ``limits.max_json_bytes``.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightError(f"no Keras model file {str(path)!r}")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(HDF5_MAGIC):
        image = H5Image(path, mmap=False, trusted=trusted, limits=limits)
        try:
            attrs = image.root.attrs
            raw, version, backend = attrs.get("model_config"), attrs.get("keras_version", b""), attrs.get("backend")
        finally:
            image.close()
        if raw is None:
            raise WeightError(
                f"{path.name}: HDF5 file has no 'model_config' attribute: it holds weights only "
                "(save_weights); save the whole model with model.save(...)"
            )
        if len(raw) > limits.max_json_bytes:
            raise WeightError(
                f"{path.name}: attribute 'model_config' is {len(raw)} bytes, more than the limit of "
                f"{limits.max_json_bytes}; raise it with limits=Limits(max_json_bytes=...) if you trust the file"
            )
        version = version.decode() if isinstance(version, bytes) else str(version)
        backend = backend.decode() if isinstance(backend, bytes) else (None if backend is None else str(backend))
        return ModelFile(path, "h5", _json(raw, "attribute 'model_config'", path), version or "2", backend)
    if head.startswith(b"PK"):
        try:
            z = Archive(path, limits, mmap=False)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise WeightError(f"{path.name}: cannot read the zip archive (truncated or damaged?): {e}") from e
        try:
            if "config.json" not in z.members:
                raise WeightError(f"{path.name}: not a Keras 3 archive: no member 'config.json'")
            cfg = _json(z.read("config.json", limits.max_json_bytes, what="config"), "config.json", path)
            meta = (
                _json(z.read("metadata.json", limits.max_json_bytes, what="metadata"), "metadata.json", path)
                if "metadata.json" in z.members
                else {}
            )
        finally:
            z.close()
        return ModelFile(path, "keras", cfg, str((meta if isinstance(meta, dict) else {}).get("keras_version", "3")))
    raise WeightError(
        f"{path.name}: neither a Keras .h5 (HDF5) nor a .keras (zip) file; it starts with {preview(head)}"
    )


# ------------------------------------------------------------------ the graph
@dataclass(frozen=True)
class Ref:
    """A tensor in a functional graph: output ``index`` of call ``node`` of layer ``layer``."""

    layer: str
    node: int
    index: int


@dataclass
class Node:
    """One call of a layer: positional and keyword arguments with :class:`Ref` where tensors go."""

    args: list
    kwargs: dict


@dataclass
class Layer:
    """One layer entry. ``kind`` is 'layer', 'operation' (Keras 3 ``keras.src.ops``) or 'tfop' (Keras 2)."""

    name: str
    class_name: str
    kind: str
    module: str
    config: dict
    nodes: list[Node] = field(default_factory=list)
    model: Model | None = None  # for a nested model
    registered: str | None = None  # 'package>Name' of a class registered with register_keras_serializable


@dataclass
class Model:
    """A parsed Sequential or Functional model."""

    name: str
    class_name: str
    layers: list[Layer]
    inputs: list[Ref]
    outputs: list[Ref]

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise WeightError(f"model {self.name!r} has no layer {name!r}")


def _refs(value: Any) -> list[Ref]:
    """``input_layers``/``output_layers``: one ``[name, node, index]`` or a list (or dict) of them."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list) or not value:
        return []
    if isinstance(value[0], str):
        return [Ref(str(value[0]), int(value[1]), int(value[2]))]
    return [r for v in value for r in _refs(v)]


def _keras3_value(v: Any) -> Any:
    if isinstance(v, dict):
        if v.get("class_name") == "__keras_tensor__":
            h = (v.get("config") or {}).get("keras_history")
            if not (isinstance(h, list) and len(h) == 3):
                raise WeightError(f"malformed keras tensor in a node: {v!r:.200}")
            return Ref(str(h[0]), int(h[1]), int(h[2]))
        return {k: _keras3_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_keras3_value(x) for x in v]
    return v


def _keras2_value(v: Any, known: set[str]) -> Any:
    """Keras 2 kwargs: a tensor is ``[layer, node, index]`` of a known layer."""
    if isinstance(v, list):
        if len(v) == 3 and isinstance(v[0], str) and v[0] in known and all(isinstance(i, int) for i in v[1:]):
            return Ref(v[0], v[1], v[2])
        return [_keras2_value(x, known) for x in v]
    if isinstance(v, dict):
        return {k: _keras2_value(x, known) for k, x in v.items()}
    return v


def _nodes(raw: Any, known: set[str], where: str) -> list[Node]:
    nodes: list[Node] = []
    for n in raw or []:
        if isinstance(n, dict):  # Keras 3
            nodes.append(Node(list(_keras3_value(n.get("args") or [])), dict(_keras3_value(n.get("kwargs") or {}))))
        elif isinstance(n, list):  # Keras 2: a list of [layer, node, index, kwargs]
            entries = [n] if n and isinstance(n[0], str) else n  # TFOpLambda: one bare entry
            refs: list[Any] = []
            kwargs: dict = {}
            for entry in entries:
                if not (isinstance(entry, list) and len(entry) >= 3):
                    raise WeightError(f"layer {where!r}: malformed inbound node entry {entry!r:.200}")
                if entry[0] == "_CONSTANT_VALUE" and entry[1] == -1:  # `3.0 - x`: a constant first argument
                    refs.append(entry[2])
                else:
                    refs.append(Ref(str(entry[0]), int(entry[1]), int(entry[2])))
                if len(entry) > 3 and isinstance(entry[3], dict):
                    kwargs.update(_keras2_value(entry[3], known))
            nodes.append(Node([refs[0]] if len(refs) == 1 else [refs], kwargs))
        else:
            raise WeightError(f"layer {where!r}: malformed inbound node {n!r:.200}")
    return nodes


def _kind(entry: dict) -> tuple[str, str]:
    cls = str(entry.get("class_name"))
    module = str(entry.get("module") or "")
    if cls in ("TFOpLambda", "SlicingOpLambda"):
        return "tfop", str((entry.get("config") or {}).get("function"))
    if module.startswith(("keras.src.ops", "keras.ops")):
        return "operation", cls
    if not module and "trainable" not in (entry.get("config") or {}):
        return "operation", cls  # Keras 3 legacy .h5 drops the module; layers always save 'trainable'

    return "layer", cls


def _layer(entry: dict, known: set[str]) -> Layer:
    if not isinstance(entry, dict):
        raise WeightError(f"model config: a layer entry is not an object: {entry!r:.200}")
    name = layer_name(entry)
    kind, cls = _kind(entry)
    cfg = entry.get("config") or {}
    registered = entry.get("registered_name")
    if ">" in cls:  # legacy .h5 writes a registered class as 'package>Name'
        registered, cls = cls, cls.rsplit(">", 1)[-1]
    nodes = _nodes(entry.get("inbound_nodes"), known, name)
    layer = Layer(name, cls, kind, str(entry.get("module") or ""), cfg, nodes, registered=registered)
    if cls in MODEL_CLASSES and layers_of(entry):
        layer.model = _parse_model(entry)
    return layer


def _keras2_offsets(layers: list[Layer], entries: list) -> None:
    """Keras 2 numbers the calls of a nested Functional model from 1 when its first layer is an
    InputLayer (node 0 is its own construction; tf_keras ``_should_skip_first_node``): shift to 0."""
    if not any(isinstance(n, list) for e in entries if isinstance(e, dict) for n in e.get("inbound_nodes") or []):
        return
    models = {layer.name: layer for layer in layers if layer.model is not None}
    refs: list[Ref] = []

    def collect(v: Any) -> None:
        if isinstance(v, Ref):
            refs.append(v)
        elif isinstance(v, (list, tuple)):
            for x in v:
                collect(x)
        elif isinstance(v, dict):
            for x in v.values():
                collect(x)

    for layer in layers:
        for n in layer.nodes:
            collect([n.args, n.kwargs])
    # The offset shows as a reference one past the serialized calls (Sequential models too).
    skip = {r.layer for r in refs if r.layer in models and r.node >= len(models[r.layer].nodes)}
    if not skip:
        return

    def shift(v: Any) -> Any:
        if isinstance(v, Ref):
            return Ref(v.layer, v.node - 1, v.index) if v.layer in skip and v.node > 0 else v
        if isinstance(v, list):
            return [shift(x) for x in v]
        if isinstance(v, dict):
            return {k: shift(x) for k, x in v.items()}
        return v

    for layer in layers:
        layer.nodes = [Node(shift(n.args), shift(n.kwargs)) for n in layer.nodes]


def parse_model(model_cfg: dict) -> Model:
    """Parse a Sequential or Functional config into layers with normalized call nodes.

    A Sequential model becomes a chain: each layer called once on the one before.
    Malformed configs (wrong types, missing entries) raise :class:`WeightError`.
    """
    try:
        return _parse_model(model_cfg)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError) as e:
        raise WeightError(f"malformed Keras model config ({type(e).__name__}: {e})") from e


def _parse_model(model_cfg: dict) -> Model:
    if not isinstance(model_cfg, dict) or "config" not in model_cfg:
        raise WeightError("model config: expected an object with 'class_name' and 'config'")
    cls = str(model_cfg.get("class_name"))
    cfg = model_cfg.get("config") or {}
    entries = layers_of(model_cfg)
    known = {layer_name(e) for e in entries if isinstance(e, dict)}
    layers = [_layer(e, known) for e in entries]
    _keras2_offsets(layers, entries)
    name = str(cfg.get("name") or cls.lower())
    if cls != "Sequential":
        return Model(name, cls, layers, _refs(cfg.get("input_layers")), _refs(cfg.get("output_layers")))
    if not layers:
        raise WeightError(f"Sequential model {name!r} has no layers")
    if layers[0].class_name != "InputLayer":  # Keras 2 puts the input shape on the first layer
        shape = layers[0].config.get("batch_input_shape") or cfg.get("build_input_shape")
        if shape is None:
            raise WeightError(f"Sequential model {name!r} has no input shape (built without an Input?)")
        layers.insert(0, Layer(f"{name}_input", "InputLayer", "layer", "keras.layers", {"batch_shape": shape}))
    for prev, layer in itertools.pairwise(layers):
        layer.nodes = [Node([Ref(prev.name, 0, 0)], {})]
    return Model(name, cls, layers, [Ref(layers[0].name, 0, 0)], [Ref(layers[-1].name, 0, 0)])
