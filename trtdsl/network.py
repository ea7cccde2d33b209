"""``Network``: an explicit TensorRT network under construction.

A ``Network`` owns the TensorRT builder and ``INetworkDefinition`` and adds
what the raw API leaves to the user: readable scoped names for every layer and
tensor, weights kept alive until the build (``trt.Weights`` does not copy) and
kept under their names, named dynamic dimensions with optimization profiles,
and a precision policy for strongly-typed TensorRT.

There is no global default network: every op finds its network through the
``Tensor`` it is given.

Example::

    net = trtdsl.Network("mlp", dtype="float16")
    batch = net.dim("batch", 1, 8, 32)
    x = net.input("x", "float32", (batch, 784))
    with net.scope("fc1"):
        h = ops.relu(ops.linear(x, w1, b1))
    net.output(ops.linear(h, w2, b2), "logits")
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from . import _trt, dtypes
from .argcheck import check_methods
from .errors import ArgumentError, ShapeError, TrtdslError
from .netgraph import GraphMixin
from .profile import Dim, DimsMixin
from .tensor import Tensor

# ids of the dtype objects np.dtype(<type>) returns (immortal singletons). By identity,
# not ==: dtype('<f4') from safetensors equals float32 but trt.Weights refuses it.
_CANONICAL_IDS = frozenset(
    id(np.dtype(t)) for t in (np.float32, np.float16, np.int8, np.int32, np.int64, np.uint8, np.bool_)
)


def _after(tensor_name: str, kind: str) -> str:
    """The name of an unscoped op ``kind`` on a tensor: it joins the scope of the tensor's layer.

    ``max_pool2d`` on network input ``images`` is ``images.max_pool2d``; ``relu`` on
    ``features.1.batch_norm.out`` is ``features.1.relu``, so a chain of unscoped ops stays
    in its block instead of growing a name or losing the block's prefix.
    """
    # A cast to the compute dtype is plumbing, not part of the name: 'x.to_float16.out' -> 'x'.
    base = re.sub(r"(\.to_[a-z0-9]+)?\.out\d*$", "", tensor_name)
    parts = base.split(".")
    return ".".join([*(parts[:-1] if len(parts) > 1 else parts), kind])


class Network(DimsMixin, GraphMixin):
    """A TensorRT ``INetworkDefinition`` with names, weights, dims and precision."""

    def __init__(self, name: str = "network", *, dtype: dtypes.DTypeLike = "float32"):
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"Network: the name must be a non-empty string, got {type(name).__name__} {name!r}")
        trt = _trt.load()
        self.name = name
        self.builder = trt.Builder(_trt.logger())
        self.trt = self.builder.create_network(0)
        self.trt.name = name
        self.dtype = dtypes.canonical(dtype)
        if self.dtype not in dtypes.FLOATS:
            raise ShapeError(f"network compute dtype must be one of {dtypes.FLOATS}, got {dtype!r}")
        self._scopes: list[str] = []
        self._precision: list[str] = [self.dtype]
        self._used_names: set[str] = set()
        self._suffixes: dict[str, int] = {}  # base name -> the first suffix unique_name tries next
        self._producers: dict[str, Any] = {}  # tensor name -> ILayer
        self._derived: dict[tuple[str, str], Tensor] = {}  # (tensor, what) -> cast/unsqueeze of it
        self._regions: dict[str, str] = {}  # layer -> the net.precision(...) dtype it was added under
        self.weights: dict[str, np.ndarray] = {}  # layer.role -> array handed to TensorRT
        # constant layer name -> ml_dtypes array: TensorRT's Python API cannot read narrow weights back
        self.narrow_constants: dict[str, np.ndarray] = {}
        self.dims: dict[str, Dim] = {}
        self._extra_profiles: list[dict[str, tuple[int, int, int]]] = []
        self.input_specs: dict[str, tuple[int | str, ...]] = {}
        self.input_dtypes: dict[str, str] = {}
        self.outputs: dict[str, Tensor] = {}
        self._reference_cache: Any = None  # prepared interpreter, see trtdsl.reference
        self.generation = 0  # bumped by every rewiring, so prepared interpreters know they are stale

    @classmethod
    def adopt(
        cls,
        definition: Any,
        *,
        name: str | None = None,
        dtype: dtypes.DTypeLike = "float32",
        dims: Mapping[str, Sequence[int]] | None = None,
        keep: Sequence[Any] = (),
    ) -> Network:
        """Wrap an ``INetworkDefinition`` filled elsewhere (raw-API code, ``trt.OnnxParser``).

        The result is a full ``Network``: its inputs, dims (a dynamic axis becomes a
        named dim that needs a range, given here as ``dims`` or later with
        :meth:`dim`), outputs and layers are read from the definition; DSL ops,
        the rewriting API, the interpreter and ``build`` work on it. ``dtype`` is
        the compute dtype for ops added afterwards. ``keep`` holds whatever owns
        the definition's weights (``trt.Weights`` does not copy) until the build.

        Example::

            builder = trt.Builder(trtdsl._trt.logger())
            definition = builder.create_network(0)
            ...                                  # existing raw-API code fills it
            net = trtdsl.Network.adopt(definition, dims={"batch": (1, 8, 32)}, keep=[arrays])
        """
        from .adopt import adopt_into

        net = cls(name or "network", dtype=dtype)
        adopt_into(net, definition, name=name, dims=dims, keep=keep)
        return net

    # ----------------------------------------------------------------- inputs
    def input(self, name: str, dtype: dtypes.DTypeLike, shape: Sequence[int | str | Dim]) -> Tensor:
        """Declare a network input. A shape entry is an int, a dim name, or a ``Dim``."""
        if name in self.input_specs:
            raise TrtdslError(f"input {name!r} is already declared")
        spec: list[int | str] = []
        for axis, d in enumerate(shape):
            if isinstance(d, Dim):
                self.dim(d.name, d.min, d.opt, d.max)
                spec.append(d.name)
            elif isinstance(d, str):
                self.dim(d)
                spec.append(d)
            elif isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0:
                spec.append(int(d))
            else:
                raise ShapeError(f"input {name!r}: axis {axis} must be a non-negative int or a dim name, got {d!r}")
        dt = dtypes.canonical(dtype)
        itensor = self.trt.add_input(name, dtypes.to_trt(dt), tuple(-1 if isinstance(d, str) else d for d in spec))
        self.input_specs[name] = tuple(spec)
        self.input_dtypes[name] = dt
        self._used_names.add(name)
        return Tensor(itensor, self)

    def output(self, tensor: Tensor, name: str, dtype: dtypes.DTypeLike | None = None) -> Tensor:
        """Mark ``tensor`` as output ``name``, cast to ``dtype`` (default: float32 for floats).

        ``name`` must be new: not another output, an input or a tensor of the network
        (TensorRT would only log "name already in use" and keep both).

        Quantized tensors (fp8, fp4, int4, e8m0 scales) keep their type: TensorRT never casts them.
        """
        if not isinstance(tensor, Tensor):
            raise TrtdslError(
                f"output {name!r}: expected a trtdsl.Tensor of network {self.name!r}, got {type(tensor).__name__}"
            )
        if tensor.net is not self:
            raise TrtdslError(
                f"output {name!r}: tensor {tensor.name!r} belongs to network {tensor.net.name!r}, not {self.name!r}; "
                "build each network from its own inputs"
            )
        if not isinstance(name, str) or not name:
            raise TrtdslError(f"output name must be a non-empty string, got {name!r}")
        if name in self.outputs:
            raise TrtdslError(f"output {name!r} is already marked")
        if name in self.input_specs:
            raise TrtdslError(f"output {name!r}: the network already has an input named {name!r}; choose another name")
        if name in self._producers and name != tensor.name:
            raise TrtdslError(
                f"output {name!r}: the network already has a tensor named {name!r} "
                f"(made by layer {self._producers[name].name!r}); choose another name"
            )
        src = tensor.dtype
        quantized = src in dtypes.LOW_PRECISION or src == "e8m0"
        if dtype is None:
            dtype = "float32" if dtypes.is_float(src) and not quantized else src
        dtype = dtypes.canonical(dtype)
        if quantized and dtype != src:
            raise ShapeError(f"output {name!r}: a {src} tensor cannot be cast to {dtype}; dequantize it first")
        if src != dtype or tensor.trt.is_network_input or tensor.trt.is_network_output:
            # a copy of a quantized tensor is an identity layer: TensorRT refuses a Cast on it
            layer = (
                self.trt.add_identity(tensor.trt) if quantized else self.trt.add_cast(tensor.trt, dtypes.to_trt(dtype))
            )
            tensor = self.register(layer, "cast", name=name + ".cast", scoped=False)
        producer = self._producers.pop(tensor.name, None)
        tensor.trt.name = name
        if producer is not None:
            self._producers[name] = producer
        self.trt.mark_output(tensor.trt)
        self.outputs[name] = tensor
        return tensor

    # ------------------------------------------------------------------ names
    @contextlib.contextmanager
    def scope(self, name: str) -> Iterator[None]:
        """Prefix the names of every layer and tensor added inside, e.g. ``layer1.0.conv1``."""
        self._scopes.append(str(name))
        try:
            yield
        finally:
            self._scopes.pop()

    @property
    def current_scope(self) -> str:
        return ".".join(self._scopes)

    def unique_name(self, base: str, scoped: bool = True) -> str:
        full = ".".join([*self._scopes, base]) if scoped and self._scopes else base
        name = full
        if name in self._used_names:
            # The next free suffix, remembered per base: a thousand unnamed layers of one kind
            # on one input would otherwise try every taken suffix each time.
            i = self._suffixes.get(full, 1)
            while f"{full}_{i}" in self._used_names:
                i += 1
            name = f"{full}_{i}"
            self._suffixes[full] = i + 1
        self._used_names.add(name)
        return name

    def op_name(self, name: str | None, kind: str, x: Tensor | None = None) -> str:
        """The unique name of an op's layer: ``name`` (or ``kind``) in the current scope.

        Outside every scope an unnamed op is named after its input, so that an engine
        inspector listing stays readable: ``max_pool2d`` on ``images`` is
        ``images.max_pool2d``, not ``max_pool2d_1``.
        """
        if name is None and not self._scopes and x is not None:
            return self.unique_name(_after(x.name, kind), scoped=False)
        return self.unique_name(name or kind)

    def register(
        self, layer: Any, kind: str, name: str | None = None, *, scoped: bool = True, resolved: bool = False
    ) -> Tensor:
        """Name a layer made with the raw API and its outputs from the current scope; return output 0.

        This is the one way layers join a ``Network``: every op, block, converter and
        rewriting pass calls it, and so can hand-written raw-API code::

            layer = net.trt.add_unary(x.trt, trt.UnaryOperation.ABS)
            y = net.register(layer, "abs")          # 'block.abs', output 'block.abs.out'

        ``kind`` is the default name when ``name`` is None; a taken name gets a ``_1``
        suffix. ``scoped=False`` ignores the current scope; ``resolved=True`` means
        ``name`` already came from :meth:`unique_name`. Outputs are named ``<layer>.out``,
        or ``<layer>.out0``, ``.out1``... for several; use :meth:`add` for all of them.
        """
        if resolved and name:
            lname = name
        elif name is None and scoped and not self._scopes and layer.num_inputs and layer.get_input(0) is not None:
            lname = self.unique_name(_after(layer.get_input(0).name, kind), scoped=False)
        else:
            lname = self.unique_name(name or kind, scoped)
        layer.name = lname
        if self._precision[-1] != self.dtype:
            self._regions[lname] = self._precision[-1]
        n = layer.num_outputs
        first = layer.get_output(0)
        if n == 1:
            out = lname + ".out"
            first.name = out
            self._producers[out] = layer
            return Tensor(first, self)
        for i in range(n):
            t = layer.get_output(i)
            t.name = f"{lname}.out{i}"
            self._producers[t.name] = layer
        return Tensor(first, self)

    def add(self, layer: Any, kind: str, name: str | None = None) -> list[Tensor]:
        """:meth:`register` a raw-API layer and return all its outputs as Tensors."""
        self.register(layer, kind, name)
        return [Tensor(layer.get_output(i), self) for i in range(layer.num_outputs)]

    # ---------------------------------------------------------------- weights
    def keep(self, array: np.ndarray, role: str) -> Any:
        """Keep ``array`` alive until the build and return ``trt.Weights`` over it, no copy.

        ``role`` names the weight (``'layer1.conv.kernel'``) for refit and calibration.
        """
        array = np.ascontiguousarray(array)
        if id(array.dtype) in _CANONICAL_IDS:  # the common case, without dtype.name (a Python property)
            pass
        elif array.dtype == np.float64:
            array = array.astype(np.float32)
        elif array.dtype.isnative and array.dtype is not np.dtype(array.dtype.name):
            # Loaders such as safetensors hand out dtype('<f4') objects that equal
            # float32 but that trt.Weights does not recognise; a view fixes it, no copy.
            array = array.view(np.dtype(array.dtype.name))
        key, i = role, 1
        while key in self.weights:
            key = f"{role}_{i}"
            i += 1
        self.weights[key] = array
        return _trt.load().Weights(array)

    def constant(self, value: Any, name: str | None = None, *, dtype: dtypes.DTypeLike | None = None) -> Tensor:
        """A constant tensor. Float data is stored in the current compute dtype unless ``dtype`` is given."""
        array = np.asarray(value)
        if dtype is None:
            if array.dtype.kind == "f":
                dtype = self.compute_dtype
            elif array.dtype.kind == "b":
                dtype = "bool"
            elif array.dtype.kind in "iu":
                dtype = "int64" if array.dtype == np.int64 else ("int32" if array.dtype != np.uint8 else "uint8")
                if array.dtype not in (np.int32, np.int64, np.uint8, np.int8):
                    array = array.astype(np.int32)
            else:  # an ml_dtypes array of a narrow type (fp8, fp4, bfloat16, e8m0, int4) is stored as it is
                try:
                    dtype = dtypes.canonical(array.dtype)
                except TrtdslError as e:
                    raise ShapeError(f"constant {name!r}: cannot store dtype {array.dtype}: {e}") from None
        dt = dtypes.canonical(dtype)
        lname = self.unique_name(name or "constant")
        if dtypes.TABLE[dt].narrow:  # bfloat16, fp8, fp4, e8m0, int4: typed weights over ml_dtypes bytes
            return self.narrow_constant(array, dt, lname)
        array = array.astype(dtypes.to_numpy(dt), copy=False)
        layer = self.trt.add_constant(array.shape, self.keep(array, lname))
        return self.register(layer, "constant", lname, resolved=True)

    def narrow_constant(self, value: Any, dtype: str, lname: str, shape: tuple[int, ...] | None = None) -> Tensor:
        """A constant layer ``lname`` (already unique) of a narrow type, rounded as a cast rounds.

        NumPy has no bfloat16/fp8/fp4/int4, so the values are ``ml_dtypes`` arrays handed to
        TensorRT as typed ``Weights`` (4-bit types packed two per byte); the arrays are kept
        in ``narrow_constants``, since TensorRT's Python API cannot read such weights back.
        """
        held = dtypes.cast(value, dtype, name=f"constant {lname!r}")
        packed = dtypes.pack(held)  # a view of ``held`` unless 4-bit values are packed two per byte
        self.narrow_constants[lname] = held
        self.weights[lname] = held if packed.base is held or packed is held else packed
        weights = _trt.load().Weights(dtypes.to_trt(dtype), packed.ctypes.data, held.size)
        layer = self.trt.add_constant(held.shape if shape is None else shape, weights)
        return self.register(layer, "constant", lname, resolved=True)

    # -------------------------------------------------------------- precision
    @property
    def compute_dtype(self) -> str:
        """The float dtype that ops compute in at this point of the definition."""
        return self._precision[-1]

    @contextlib.contextmanager
    def precision(self, dtype: dtypes.DTypeLike) -> Iterator[None]:
        """Compute ops added inside in ``dtype``, e.g. keep a softmax in float32 in an fp16 network."""
        dt = dtypes.canonical(dtype)
        if dt not in dtypes.FLOATS:
            raise ShapeError(f"precision must be one of {dtypes.FLOATS}, got {dtype!r}")
        self._precision.append(dt)
        try:
            yield
        finally:
            self._precision.pop()

    def cast(self, x: Tensor, dtype: dtypes.DTypeLike, name: str | None = None, *, src: str | None = None) -> Tensor:
        """Cast ``x`` (no layer when it already has ``dtype``); one cast per tensor and dtype.

        ``src``: ``x``'s dtype when the caller already read it (each read crosses pybind).
        """
        return self._cast(x, x.dtype if src is None else src, dtypes.canonical(dtype), name)

    def _cast(self, x: Tensor, src: str, dt: str, name: str | None = None) -> Tensor:
        """``cast`` with ``x``'s dtype ``src`` and the canonical ``dt`` already known."""
        if src == dt:
            return x
        if dt in dtypes.LOW_PRECISION:
            raise ShapeError(dtypes.producer_rule(f"cast {x.name!r}", dt))
        if src in dtypes.LOW_PRECISION:
            raise ShapeError(
                f"cast {x.name!r}: TensorRT lets only Dequantize, Concatenation, Shuffle, Shape, Identity or "
                f"plugin layers read {src} tensors, never a Cast or a compute layer; use ops.dequantize first"
            )

        def make() -> Tensor:
            layer = self.trt.add_cast(x.trt, dtypes.to_trt(dt))
            return self.register(layer, "cast", name or f"{x.name.removesuffix('.out')}.to_{dt}", scoped=False)

        return self.derived(x, f"cast:{dt}", make)

    def derived(self, x: Tensor, what: str, make: Any) -> Tensor:
        """A tensor derived from ``x`` (a cast, a rank change), made once and reused."""
        key = (x.name, what)
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    def to_compute(self, x: Tensor) -> Tensor:
        """Cast a float tensor to the current compute dtype; other dtypes pass through."""
        return self.in_compute(x)[0]

    def in_compute(self, x: Tensor) -> tuple[Tensor, str]:
        """``to_compute(x)`` and its dtype. Every op calls this on its inputs: one dtype read."""
        src = x.dtype
        if src in dtypes._FLOATISH:
            dt = self._precision[-1]
            return self._cast(x, src, dt), dt
        return x, src


# The methods scripts call, checked like the ops (trtdsl/argcheck.py); the per-layer plumbing that ops
# call (register, keep, op_name, in_compute, ...) is left unwrapped.
check_methods(Network, ["add", "add_profile", "cast", "constant", "consumers", "dim", "input", "insert_after",
                        "layer", "output", "producer", "replace_uses", "tensor"])  # fmt: skip
