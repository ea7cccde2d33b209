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

from .file import ModelFile, read
from .graph import Layer, Model, Node, Ref, parse_model
from .variables import (
    ALIASES,
    MODEL_CLASSES,
    VARIABLES,
    WRAPPERS,
    find,
    layer_name,
    layers_of,
    quantization_mode,
    sub_class,
    to_snake_case,
    tree,
    wrapped,
)

__all__ = [
    "ALIASES", "MODEL_CLASSES", "VARIABLES", "WRAPPERS", "Layer", "Model", "ModelFile", "Node", "Ref", "find",
    "layer_name", "layers_of", "parse_model", "quantization_mode", "read", "sub_class", "to_snake_case", "tree",
    "wrapped",
]  # fmt: skip
