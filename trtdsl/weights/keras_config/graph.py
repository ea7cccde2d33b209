"""A model config as a call graph: ``parse_model`` gives layers with normalized call nodes.

Keras 3 nodes (``{"args": [...], "kwargs": {...}}`` with ``__keras_tensor__``
references) and Keras 2 nodes (nested ``[layer, node, index, kwargs]`` lists,
``TFOpLambda`` layers) both become :class:`Node` with :class:`Ref` where tensors go.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import WeightError
from ..limits import first_line
from .variables import MODEL_CLASSES, layer_name, layers_of


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
    if isinstance(value, dict):  # Keras flattens a dict by sorted key (keras.tree), as model.inputs/outputs list it
        value = [value[k] for k in sorted(value)]
    if not isinstance(value, list) or not value:
        return []
    if isinstance(value[0], str):
        return [Ref(str(value[0]), int(value[1]), int(value[2]))]
    return [r for v in value for r in _refs(v)]


_NUMPY_DTYPES = ("float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool")


def _keras3_value(v: Any) -> Any:
    if isinstance(v, dict):
        if v.get("class_name") == "__keras_tensor__":
            h = (v.get("config") or {}).get("keras_history")
            if not (isinstance(h, list) and len(h) == 3):
                raise WeightError(f"malformed keras tensor in a node: {v!r:.200}")
            return Ref(str(h[0]), int(h[1]), int(h[2]))
        # a constant operand: `x + np.array([...])` (__numpy__) or a backend tensor, `x @ keras.ops.ones(...)`
        if v.get("class_name") in ("__numpy__", "__tensor__"):
            cfg = v.get("config") or {}
            dtype = str(cfg.get("dtype"))
            if dtype not in _NUMPY_DTYPES:
                raise WeightError(f"a NumPy constant in a node has dtype {dtype!r}; expected one of {_NUMPY_DTYPES}")
            return np.asarray(cfg.get("value"), "float32" if dtype == "bfloat16" else dtype)
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


def _nested_offset(layers: list[Layer], entries: list, refs: list[Ref]) -> list[Ref]:
    """A model's own inputs/outputs number a nested Functional model's calls from 1 ("Functional
    models start with a pre-existing node": Keras 3 ``Functional.get_config``, tf_keras
    ``_should_skip_first_node``), while its ``inbound_nodes`` are numbered from 0 (or shifted by
    :func:`_keras2_offsets`): shift those references back by one."""
    keras3 = any(isinstance(n, dict) for e in entries if isinstance(e, dict) for n in e.get("inbound_nodes") or [])
    models = {layer.name: layer for layer in layers if layer.model is not None}

    def offset(r: Ref) -> bool:
        m = models.get(r.layer)
        if m is None or r.node == 0:
            return False
        # Keras 3 offsets every nested Functional (not Sequential); for Keras 2 the offset shows as
        # a reference one past the serialized calls.
        return m.class_name == "Functional" if keras3 else r.node == len(m.nodes)

    return [Ref(r.layer, r.node - 1, r.index) if offset(r) else r for r in refs]


def parse_model(model_cfg: dict, source: str = "") -> Model:
    """Parse a Sequential or Functional config into layers with normalized call nodes.

    A Sequential model becomes a chain: each layer called once on the one before.
    Malformed configs (wrong types, missing entries) raise :class:`WeightError`, naming ``source``
    (the file the config came from) when given.
    """
    try:
        return _parse_model(model_cfg)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError, OverflowError) as e:
        where = f"{source}: " if source else ""
        raise WeightError(f"{where}malformed Keras model config ({type(e).__name__}: {first_line(e)})") from e


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
        ios = [_nested_offset(layers, entries, _refs(cfg.get(k))) for k in ("input_layers", "output_layers")]
        return Model(name, cls, layers, *ios)
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
