"""The registry of reference implementations: a dict and a decorator.

Each TensorRT layer type has one pure NumPy function, registered by the
lower-case ``trt.LayerType`` name where it is defined::

    @interprets("activation")
    def activation(node: Node, x: np.ndarray) -> np.ndarray:
        ...

The function gets the ``Node`` (the downcast layer plus a per-network cache)
and the layer's inputs as arrays (``None`` for an unset optional input), in
input-index order. Float16/bfloat16 inputs arrive as float32; the interpreter
rounds outputs back to each output's TensorRT dtype. It returns one array or a
tuple, one per output.

Two optional promises, stored as attributes of the function, let the
interpreter reuse dead buffers (see ``liveness.donation_plan``): ``fresh=True``
says the function's outputs never share memory with its inputs or with cached
weights, so the run owns them; ``donates=True`` (which implies fresh) says the
function takes a keyword ``donated``, the indices of inputs whose arrays nothing
else will read, and may write its output into one of them
(``np.add(a, b, out=a)``) and return it. A wrapper made with ``functools.wraps``
keeps both; any other replacement gets neither, and so no donated buffers.
A third, ``fuses=True``, says the function takes ``epilogue=`` (a
``fusion.Epilogue``: the activation after the layer) and returns its output with
the activation applied, as TensorRT fuses an activation into the layer before it.

A function that fills a large new array asks ``node.empty(shape, dtype)`` for
it: inside an interpreter that is a dead buffer of the same size when one is
free (``reference.buffers``), elsewhere plain ``np.empty``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Impl = Callable[..., Any]
REGISTRY: dict[str, Impl] = {}


def interprets(
    *layer_types: str, fresh: bool = False, donates: bool = False, fuses: bool = False
) -> Callable[[Impl], Impl]:
    """Register ``fn`` as the reference implementation of ``layer_types`` (lower-case LayerType names).

    ``fresh``: its outputs never share memory with its inputs or cached arrays.
    ``donates``: it accepts ``donated=(input indices it may overwrite)``; implies ``fresh``.
    ``fuses``: it accepts ``epilogue=`` and returns its output with the epilogue applied
    (see ``fusion.plan``).
    """

    def register(fn: Impl) -> Impl:
        for t in layer_types:
            if t in REGISTRY:
                raise RuntimeError(f"layer type {t!r} is registered twice ({REGISTRY[t].__module__}, {fn.__module__})")
            REGISTRY[t] = fn
        fn.fresh = fresh or donates  # type: ignore[attr-defined]
        fn.donates = donates  # type: ignore[attr-defined]
        fn.fuses = fuses  # type: ignore[attr-defined]
        return fn

    return register


def fresh(layer_type: str) -> bool:
    """Whether the implementation of ``layer_type`` promises outputs that share no memory with anything else."""
    return getattr(REGISTRY.get(layer_type), "fresh", False)


def donates(layer_type: str) -> bool:
    """Whether the implementation of ``layer_type`` takes ``donated`` input indices."""
    return getattr(REGISTRY.get(layer_type), "donates", False)


def supported() -> list[str]:
    """Lower-case names of the layer types the interpreter can run."""
    return sorted(REGISTRY)


@dataclass(eq=False)
class Node:
    """One layer of a network prepared for interpretation."""

    index: int
    layer: Any  # downcast I*Layer
    type: str  # lower-case LayerType name
    inputs: list[str | None]
    outputs: list[str]
    out_dtypes: list[str]
    out_shapes: list[tuple[int, ...]]
    cache: dict[Hashable, Any] = field(default_factory=dict)
    pool: Any = None  # the interpreter's BufferPool (None in plain mode)
    fast: bool = True  # the interpreter's mode: False runs the plain path (see Interpreter)
    fetch: Callable[[int], Any] | None = None  # gets ``layer`` by index when it is not held (see __getattr__)

    def __getattr__(self, name: str) -> Any:
        # Only for attributes not set: ``layer`` of a node whose interpreter lets go of its
        # layers between runs (a raw definition's cached interpreter) is fetched on first use.
        fetch = self.__dict__.get("fetch")
        if name != "layer" or fetch is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        layer = fetch(self.index)
        if layer is not None:  # None: the interpreter is between runs and holds no layer
            self.layer = layer
        return layer

    def empty(self, shape: tuple[int, ...], dtype: Any = np.float32) -> np.ndarray:
        """An uninitialized array for an output, reusing a dead buffer of the run when one fits."""
        if self.pool is None:
            return np.empty(shape, dtype)
        return self.pool.empty(shape, dtype)

    @property
    def name(self) -> str:
        return self.layer.name

    def weights(self, attr: str, dtype: Any = np.float32, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """A weight attribute of the layer (``kernel``, ``bias``, ...) as an array, converted once per network."""
        key = f"weights:{attr}:{np.dtype(dtype).name}:{shape}"
        if key not in self.cache:
            w = getattr(self.layer, attr)
            w = None if w is None or np.size(w) == 0 else np.asarray(w)
            if w is not None:
                w = w.astype(dtype, copy=False)
                if shape is not None:
                    w = w.reshape(shape)
            self.cache[key] = w
        return self.cache[key]

    def memo(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """Compute ``make()`` once per network and layer (for derived weights)."""
        try:
            return self.cache[key]
        except KeyError:
            value = self.cache[key] = make()
            return value

    def memo_over(self, *inputs: np.ndarray | None) -> Callable[[Hashable, Callable[[], Any]], Any]:
        """A :meth:`memo` for weights derived from input tensors (a kernel or bias wired from a
        constant layer, as TensorRT's ONNX parser wires shared biases): what it caches holds while
        ``inputs`` keep the values they had when it was made, checked on every call (the inputs
        are far smaller than the work saved: a Winograd transform, a weight matrix with its bias)."""
        seen = self.cache.get("memo_over")
        if seen is None or not all(_same(a, b) for a, b in zip(inputs, seen[0], strict=True)):
            seen = self.cache["memo_over"] = (tuple(None if a is None else a.copy() for a in inputs), {})
        derived = seen[1]

        def memo(key: Hashable, make: Callable[[], Any]) -> Any:
            try:
                return derived[key]
            except KeyError:
                value = derived[key] = make()
                return value

        return memo


def _same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Whether two input values are the same: both absent, or equal in dtype, shape and every element."""
    if a is None or b is None:
        return a is b
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
