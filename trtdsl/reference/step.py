"""One layer's work in a run: fetch its inputs, call its registered function, check and store its outputs.

Shared by the interpreter's loop (``reference.interpreter``) and the loop and conditional
bodies (``reference.control``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import InterpreterError, TrtdslError, UnsupportedLayerError
from . import fusion, precision
from .control import Structure
from .registry import REGISTRY, Node, supported


def execute(
    node: Node, env: dict[str, np.ndarray], donated: tuple[int, ...] = (), epilogue: fusion.Epilogue | None = None
) -> None:
    """Run one layer (or structural step) and store its outputs in ``env``.

    ``donated``: indices of inputs the layer may overwrite (see ``liveness.donation_plan``).
    ``epilogue``: the activation(s) after the layer, fused into it (see ``reference.fusion``):
    a layer that ``fuses`` applies it itself, for any other it is applied to its fresh output in place.
    """
    fn = REGISTRY.get(node.type)
    if fn is None:
        raise UnsupportedLayerError(
            f"no reference implementation for LayerType.{node.type.upper()} "
            f"(layer {node.index} {node.name!r}). Implemented: {', '.join(supported())}"
        )
    if isinstance(node, Structure):
        # A loop or conditional runs its own body nodes through execute.
        fn(node, env)
        return
    args = [None if n is None else precision.compute(fetch(node, n, env)) for n in node.inputs]
    fused = epilogue is not None and getattr(fn, "fuses", False)
    kwargs: dict[str, Any] = {"epilogue": epilogue} if fused else {}
    if donated and getattr(fn, "donates", False):
        kwargs["donated"] = donated
    try:
        result = fn(node, *args, **kwargs)
    except TrtdslError:
        raise
    except Exception as e:
        raise InterpreterError(
            f"layer {node.index} {node.name!r} ({node.type}) failed: {type(e).__name__}: {e}; "
            f"input shapes {[None if a is None else a.shape for a in args]}"
        ) from e
    store_outputs(node, result, env)
    if epilogue is not None and not fused:
        name = node.outputs[0]
        env[name] = epilogue(env[name])


def fetch(node: Node, name: str, env: Mapping[str, np.ndarray]) -> np.ndarray:
    """The value of tensor ``name`` that ``node`` reads, with a clear error if it has none."""
    try:
        return env[name]
    except KeyError:
        raise InterpreterError(
            f"layer {node.index} {node.name!r} ({node.type}) reads tensor {name!r}, which has no value: "
            "its producer has not run (an unsupported cycle or a tensor used outside its loop/conditional)"
        ) from None


def store_outputs(node: Node, result: Any, env: dict[str, np.ndarray]) -> None:
    """Check ``result`` (one array or a tuple) against the layer's outputs, round it, and store it."""
    results = result if isinstance(result, tuple) else (result,)
    if len(results) != len(node.outputs):
        raise InterpreterError(
            f"layer {node.index} {node.name!r} ({node.type}): implementation returned "
            f"{len(results)} outputs, TensorRT has {len(node.outputs)}"
        )
    for name, raw, dt, shape in zip(node.outputs, results, node.out_dtypes, node.out_shapes, strict=True):
        value = raw if type(raw) is np.ndarray else np.asarray(raw)
        if value.shape != shape and (
            value.ndim != len(shape) or any(s >= 0 and s != v for s, v in zip(shape, value.shape, strict=True))
        ):
            raise InterpreterError(
                f"layer {node.index} {node.name!r} ({node.type}): computed output {name!r} has shape "
                f"{value.shape}, TensorRT reports {shape} (-1 = dynamic)"
            )
        env[name] = precision.store(value, dt)
