"""Run a TensorRT ``INetworkDefinition`` on the CPU with NumPy.

The loop here does the shared work once for every layer type: downcasting,
fetching inputs, widening half precision, calling the registered function,
rounding outputs to their TensorRT dtype, checking output shapes against what
TensorRT inferred, and wrapping failures with the layer's index and name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import InterpreterError, ShapeError, TrtdslError, UnsupportedLayerError, did_you_mean
from ..inspect import downcast
from . import precision
from .registry import REGISTRY, Node, supported

Capture = None | str | Iterable[str]


class Interpreter:
    """A network prepared once (layers downcast, weights converted) and run many times."""

    def __init__(self, network: Any):
        self.network = network  # trtdsl.Network or INetworkDefinition
        self.definition = getattr(network, "trt", network)
        d = self.definition
        self.inputs: dict[str, tuple[tuple[int, ...], str]] = {}
        for i in range(d.num_inputs):
            t = d.get_input(i)
            self.inputs[t.name] = (tuple(t.shape), dtypes.canonical(t.dtype))
        self.outputs = [d.get_output(i).name for i in range(d.num_outputs)]
        self.nodes = [self._node(i, downcast(d.get_layer(i))) for i in range(d.num_layers)]
        self._prepare_structure()

    @staticmethod
    def _node(index: int, layer: Any) -> Node:
        ins = []
        for j in range(layer.num_inputs):
            t = layer.get_input(j)
            ins.append(None if t is None else t.name)
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        return Node(
            index=index,
            layer=layer,
            type=layer.type.name.lower(),
            inputs=ins,
            outputs=[t.name for t in outs],
            out_dtypes=[dtypes.canonical(t.dtype) for t in outs],
            out_shapes=[tuple(t.shape) for t in outs],
        )

    def _prepare_structure(self) -> None:
        """Group loop and if-conditional layers into single structural steps."""
        from . import control

        self.steps = control.group(self.nodes)

    # -------------------------------------------------------------------- run
    def run(self, feeds: Mapping[str, Any], *, capture: Capture = None) -> dict[str, np.ndarray]:
        """Outputs (and captured intermediates) of the network for ``feeds``."""
        env = self._check_feeds(feeds)
        want = self._capture_set(capture)
        keep = set(self.outputs) | want
        for step in self.steps:
            execute(step, env)
        missing = [n for n in self.outputs if n not in env]
        if missing:
            raise InterpreterError(f"outputs {missing} were never computed")
        result = {n: env[n] for n in self.outputs}
        for n in want:
            if n in env:
                result[n] = env[n]
        del keep
        return result

    def _capture_set(self, capture: Capture) -> set[str]:
        if capture is None:
            return set()
        if capture == "all":
            return {o for node in self.nodes for o in node.outputs} | set(self.inputs)
        names = {capture} if isinstance(capture, str) else set(capture)
        known = {o for node in self.nodes for o in node.outputs} | set(self.inputs)
        for n in names:
            if n not in known:
                raise TrtdslError(f"cannot capture unknown tensor {n!r}.{did_you_mean(n, known)}")
        return names

    def _check_feeds(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise ShapeError(f"missing feed for input(s) {missing}; the network's inputs are {list(self.inputs)}")
        env: dict[str, np.ndarray] = {}
        for name, value in feeds.items():
            if name not in self.inputs:
                raise ShapeError(
                    f"feed {name!r} is not an input of the network; inputs are {list(self.inputs)}."
                    + did_you_mean(name, self.inputs)
                )
            shape, dt = self.inputs[name]
            array = np.asarray(value)
            want = dtypes.to_numpy(dt)
            if array.dtype != want and not np.can_cast(array.dtype, want, "same_kind"):
                raise ShapeError(f"feed {name!r}: expected dtype {dt}, got {array.dtype}")
            if array.ndim != len(shape) or any(s != -1 and s != a for s, a in zip(shape, array.shape)):
                raise ShapeError(f"feed {name!r}: expected shape {shape} (-1 = any), got {array.shape}")
            env[name] = precision.store(array, dt)
        specs = getattr(self.network, "input_specs", None)
        if specs:
            from ..profile import select_profile

            select_profile(self.network.profiles(), specs, {n: a.shape for n, a in env.items()})
        return env


def execute(node: Node, env: dict[str, np.ndarray]) -> None:
    """Run one layer (or structural step) and store its outputs in ``env``."""
    fn = REGISTRY.get(node.type)
    if fn is None:
        raise UnsupportedLayerError(
            f"no reference implementation for LayerType.{node.type.upper()} "
            f"(layer {node.index} {node.name!r}). Implemented: {', '.join(supported())}"
        )
    args = [None if n is None else precision.compute(env[n]) for n in node.inputs]
    try:
        result = fn(node, *args)
    except TrtdslError:
        raise
    except Exception as e:
        raise InterpreterError(
            f"layer {node.index} {node.name!r} ({node.type}) failed: {type(e).__name__}: {e}; "
            f"input shapes {[None if a is None else a.shape for a in args]}"
        ) from e
    results = result if isinstance(result, tuple) else (result,)
    if len(results) != len(node.outputs):
        raise InterpreterError(
            f"layer {node.index} {node.name!r} ({node.type}): implementation returned "
            f"{len(results)} outputs, TensorRT has {len(node.outputs)}"
        )
    for name, value, dt, shape in zip(node.outputs, results, node.out_dtypes, node.out_shapes):
        value = np.asarray(value)
        if value.ndim != len(shape) or any(s >= 0 and s != v for s, v in zip(shape, value.shape)):
            raise InterpreterError(
                f"layer {node.index} {node.name!r} ({node.type}): computed output {name!r} has shape "
                f"{value.shape}, TensorRT reports {shape} (-1 = dynamic)"
            )
        env[name] = precision.store(value, dt)


_CACHE_ATTR = "_reference_cache"


def prepare(network: Any) -> Interpreter:
    """An ``Interpreter`` for ``network``, cached on a ``trtdsl.Network`` so weights convert once."""
    if isinstance(network, Interpreter):
        return network
    cached = getattr(network, _CACHE_ATTR, None)
    definition = getattr(network, "trt", network)
    if isinstance(cached, Interpreter) and len(cached.nodes) == definition.num_layers and cached.outputs == [
        definition.get_output(i).name for i in range(definition.num_outputs)
    ]:
        return cached
    interp = Interpreter(network)
    if hasattr(network, _CACHE_ATTR):
        setattr(network, _CACHE_ATTR, interp)
    return interp


def run(network: Any, feeds: Mapping[str, Any], *, capture: Capture = None) -> dict[str, np.ndarray]:
    """Run ``network`` (a ``trtdsl.Network``, an ``INetworkDefinition`` or an ``Interpreter``) on the CPU.

    ``capture`` adds intermediate tensors to the result: a name, a list of names, or ``"all"``.

    Example::

        out = trtdsl.reference.run(net, {"x": np.ones((1, 3, 8, 8), np.float32)})
    """
    return prepare(network).run(feeds, capture=capture)
