"""Keras models to TensorRT networks, from the file alone: no TensorFlow, no Keras, no code from the file.

``load_model(path)`` reads a Keras ``.h5`` (Keras 2 / tf.keras, or Keras 3
legacy) or ``.keras`` (Keras 3) file with h5py and JSON, and rebuilds it layer
by layer with the DSL: one converter per Keras class (:func:`converts`).

Example::

    import trtdsl
    net = trtdsl.keras.load_model("model.keras")
    out = trtdsl.reference.run(net, {"input_layer": x})
"""

# Importing the family modules registers their converters.
from . import attention, convolutional, core, merging, normalization, operations, pooling, reshaping, rnn  # noqa: F401
from .graph import Call, KTensor
from .loader import load_model
from .registry import CONVERTERS, converts, supported

__all__ = ["CONVERTERS", "Call", "KTensor", "converts", "load_model", "supported"]
