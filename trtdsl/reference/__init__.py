"""The NumPy reference interpreter: run any TensorRT network on the CPU.

``run(network, feeds, capture=...)`` executes a ``trtdsl.Network`` or a raw
``INetworkDefinition`` (hand-built, or from ``trt.OnnxParser``) layer by layer,
following TensorRT's documented semantics, and returns the outputs (plus any
captured intermediate tensors) as NumPy arrays. ``fast=True`` (the default)
runs the fast paths (buffer reuse, activation fusion, ``kernels/``);
``fast=False`` the plain textbook path they are tested against.
"""

# Importing the family modules registers their layer implementations.
from . import (  # noqa: F401
    activation,
    attention,
    conv,
    detection,
    elementwise,
    gather,
    matmul,
    moe,
    norm,
    pool,
    quant,
    reduce,
    resize,
    sampling,
    shape,
)
from .interpreter import Interpreter, prepare, run
from .registry import Node, interprets, supported

__all__ = ["Interpreter", "Node", "interprets", "prepare", "run", "supported"]
