"""Run a TensorRT ``INetworkDefinition`` on the CPU with NumPy.

The loop here does the shared work once for every layer type: downcasting,
fetching inputs, widening half precision, calling the registered function,
rounding outputs to their TensorRT dtype, checking output shapes against what
TensorRT inferred, and wrapping failures with the layer's index and name.
Loops and if-conditionals are grouped into single structural steps
(``reference.control``) that run their bodies through the same ``execute``.
Intermediate arrays are dropped after their last use, so peak memory stays
near the largest few live tensors instead of the sum of all of them, and a
layer that can compute in place gets the inputs that die with it and that
nothing else can see (``liveness.donation_plan``): a ReLU after a convolution overwrites
the convolution's output instead of allocating and filling a new array.
Dead arrays go to a ``BufferPool`` that layers draw their outputs from
(``Node.empty``), so a run reuses mapped, warm memory instead of faulting in
fresh pages for every activation. As TensorRT does, an activation (ReLU, clip,
sigmoid, SiLU, hard-swish, GELU ...) whose input nothing else reads is fused
into the layer before it (``reference.fusion``). A captured or observed tensor
is never fused away or donated.

All of that is the fast mode (``Interpreter(net, fast=True)``, the default), and
so are the fast convolution kernels (``reference.kernels``). ``fast=False`` runs
the plain textbook path, the oracle that the fast paths are tested against: no
buffer pool, no donation, no fusion, and the plain im2col convolution.

``run`` reuses a prepared interpreter for the same network (cached on a
``trtdsl.Network``, and weakly by the definition for a raw ``INetworkDefinition``)
until the network changes (``reference.watch``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import _trt, dtypes
from ..argcheck import network_of
from ..errors import InterpreterError
from ..layerinfo import downcast
from ..tensor import dims_tuple
from . import fusion, precision, watch
from .arguments import Capture, Observer, capture_set, check_feeds, dims_text, observe_map
from .buffers import BufferPool
from .control import group
from .folding import Folding, Made
from .liveness import donation_plan, last_uses, structures
from .registry import Node
from .step import execute


class Interpreter:
    """A network prepared once (layers downcast, structure grouped, weights converted) and run many times.

    ``fast=True`` (the default) runs the fast paths: buffer reuse, donation, activation fusion
    and the fast convolution kernels. ``fast=False`` runs the plain textbook path, the oracle
    the fast paths are tested against.

    Feeds follow one rule (``trtdsl.dtypes.convert``, docs/dtypes.md): a feed is converted to its
    input's type only when no value changes (int64 ids within int32 range; float64 values exact
    in float32); narrow float inputs (bfloat16, fp8, fp4) also take float32 arrays, rounded as a
    TensorRT cast rounds them, and ``ml_dtypes`` arrays of their type; anything else raises,
    naming the input, both types and the first value that would change. Outputs of narrow types
    (bfloat16, fp8, fp4, e8m0, int4) come back as ``ml_dtypes`` arrays of that type.

    Example::

        interp = trtdsl.reference.Interpreter(net)
        out = interp.run({"x": np.ones((1, 3, 8, 8), np.float32)})
    """

    def __init__(self, network: Any, *, fast: bool = True):
        self.network = network  # trtdsl.Network or INetworkDefinition
        self.fast = bool(fast)
        self.generation = getattr(network, "generation", 0)  # the rewiring count it was prepared at
        self.definition = network_of(network, "reference.Interpreter")
        d = self.definition
        self.inputs: dict[str, tuple[tuple[int, ...], str]] = {}
        for i in range(d.num_inputs):
            t = d.get_input(i)
            self.inputs[t.name] = (dims_tuple(t.shape), dtypes.canonical(t.dtype))
        self.outputs = [d.get_output(i).name for i in range(d.num_outputs)]
        self.output_dtypes = {t.name: dtypes.canonical(t.dtype) for t in map(d.get_output, range(d.num_outputs))}
        self.nodes = [self._node(i, downcast(d.get_layer(i))) for i in range(d.num_layers)]
        precision.prepare(self.nodes, network)  # TensorRT's type rules; narrow constants' values
        self.tensors = set(self.inputs) | {o for node in self.nodes for o in node.outputs}
        self.steps = group(self.nodes)
        self._free_after = last_uses(self.steps, self.inputs)
        self._no_donations: list[tuple[int, ...]] = [()] * len(self.steps)
        # Kept constant and shape-derived values count as exported: never donated, fused or pooled.
        self._folding = Folding(self.steps) if self.fast else None
        self._donations, self._fusion = self._plans(self._folding.names if self._folding else frozenset())
        self.pool = BufferPool() if self.fast else None
        for node in self.nodes:
            node.pool = self.pool
            node.fast = self.fast
        self._classes = [type(node.layer) for node in self.nodes]
        self._top_level = {n for step in self.steps for n in step.outputs}
        self._observed_plans: dict[frozenset[str], tuple[list[tuple[int, ...]], fusion.Plan]] = {}
        self._active = 0  # runs in progress (see _attach)
        self._fetched: list[int] | None = None  # nodes that fetched their layer this run (None: all hold one)
        self._structures = list(structures(self.steps))
        self._lock = threading.Lock()

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
            # Read LayerType through ILayer: IPoolingLayer.type is the PoolingType.
            type=_trt.load().ILayer.type.__get__(layer).name.lower(),
            inputs=ins,
            outputs=[t.name for t in outs],
            out_dtypes=[dtypes.canonical(t.dtype) for t in outs],
            out_shapes=[dims_tuple(t.shape) for t in outs],
        )

    # -------------------------------------------------------------------- run
    def run(
        self, feeds: Mapping[str, Any], *, capture: Capture = None, observe: Mapping[str, Observer] | None = None
    ) -> dict[str, np.ndarray]:
        """Outputs (and captured intermediates) of the network for ``feeds``.

        ``observe`` maps tensor names to callbacks ``fn(name, array)``, each called once per run
        right after the tensor is computed, while it is alive (tensors inside a loop or
        conditional body cannot be observed: observe the structure's outputs). Unlike ``capture``,
        observing keeps buffer reuse on: the array is only valid during the call, so a callback
        that wants to keep it must copy it. An observed tensor is never fused away or donated.
        """
        if not self.outputs:
            raise InterpreterError(
                f"network {self.definition.name!r} has no outputs, so a run computes nothing; "
                "mark one with net.output(tensor, name)"
            )
        env = check_feeds(feeds, self.inputs, self.network, getattr(self.network, "name", self.definition.name))
        want = capture_set(capture, self.tensors)
        watch = observe_map(observe, self.tensors, self.inputs, self._top_level)
        keep = set(self.outputs) | want
        folding = self._folding if not (want or watch) else None
        skip: set[int] = set()
        checks: dict = {}
        made: Made | None = None
        if folding is not None:
            shapes = tuple(env[n].shape for n in self.inputs)
            skip, known, checks = folding.known(shapes)
            env.update(known)
            made = Made()
        if want or watch:
            # Captured and observed tensors are exported: never fused away, never donated.
            # A captured tensor also outlives its last use, and so may any array it is a view
            # of: capturing (a debugging aid) turns buffer donation off rather than track that.
            donations, fused = self._observed_plan(frozenset(want) | frozenset(watch))
            if want:
                donations = self._no_donations
        else:
            donations, fused = self._donations, self._fusion
        try:
            stale = self._execute(env, keep, donations, fused, watch, skip, checks, made)
        except InterpreterError as e:
            dims = dims_text(self.network, feeds)
            if not dims:
                raise
            raise InterpreterError(f"{e}; at {dims}") from e
        missing = [n for n in self.outputs if n not in env]
        if missing:
            raise InterpreterError(f"outputs {missing} were never computed")
        if folding is not None:
            folding.keep(shapes, made, refresh=stale)
        result = {n: precision.to_holder(env[n], self.output_dtypes[n]) for n in self.outputs}
        if folding is not None:  # a kept value returned is the caller's to change
            result.update({n: result[n].copy() for n in self.outputs if n in folding.names})
        for n in want:
            if n in result:
                continue
            if n in env:
                result[n] = env[n]
            elif capture != "all":
                raise InterpreterError(
                    f"cannot capture {n!r}: it was not computed in this run (it is inside a conditional "
                    "branch that was not taken, or a loop that ran zero times)"
                )
        return result

    def _plans(self, names: frozenset[str]) -> tuple[list[tuple[int, ...]], fusion.Plan]:
        """Donation and fusion plans that keep the outputs and ``names`` intact (none in plain mode)."""
        if not self.fast:
            return self._no_donations, {}
        exported = [*self.outputs, *names]
        return donation_plan(self.steps, self._free_after, exported), fusion.plan(self.steps, exported)

    def _observed_plan(self, names: frozenset[str]) -> tuple[list[tuple[int, ...]], fusion.Plan]:
        """The plans for a run that captures or observes ``names`` (they count as exported)."""
        plan = self._observed_plans.get(names)
        if plan is None:
            plan = self._observed_plans[names] = self._plans(names)
        return plan

    # A raw definition's cached interpreter holds none of its layers between runs: a layer
    # keeps its network alive, and the cache must not (it is keyed weakly by the network).
    # During a run a node fetches its layer on first use (Node.fetch): after the first run
    # most layers are not read at all (their parameters are kept on the node).
    def _attach(self, definition: Any) -> None:
        with self._lock:
            self._active += 1
            if self.definition is not None:
                return
            self.network = self.definition = definition
            for step in self._structures:
                first = step.boundary[0].layer
                step.layer = first.loop if hasattr(first, "loop") else first.conditional

    def _detach(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active:
                return
            self.network = self.definition = None
            for node in self.nodes if self._fetched is None else map(self.nodes.__getitem__, self._fetched):
                node.__dict__.pop("layer", None)
                node.fetch = self._layer
            self._fetched = []
            for step in self._structures:
                step.layer = None

    def _layer(self, index: int) -> Any:
        """Layer ``index`` of the attached definition, downcast as when it was prepared (None between runs)."""
        if self.definition is None:
            return None
        layer = self.definition.get_layer(index)
        layer.__class__ = self._classes[index]
        self._fetched.append(index)
        return layer

    def _execute(
        self, env: dict, keep: set, donations: Any, fused: Any, watch: Any, skip: set[int], checks: dict,
        made: dict | None,
    ) -> bool:  # fmt: skip
        """Run every step over ``env`` (the loop of :meth:`run`), but those in ``skip`` (values already in
        ``env``), noting constant and shape-derived values into ``made``; True when a Shape layer in
        ``checks`` saw another shape (see ``reference.folding``)."""
        stale = False
        folding = self._folding
        foldable = folding.outputs if made is not None else {}
        for pos, (step, free, donated) in enumerate(zip(self.steps, self._free_after, donations, strict=True)):
            action = fused.get(pos, _RUN)
            if pos in skip:
                check = checks.get(pos)
                if check is not None and env[check[0]].shape != check[1]:
                    stale = True
                    folding.stale(skip, pos)
                    execute(step, env, donated)
            elif action is _RUN:
                execute(step, env, donated)
            elif isinstance(action, fusion.Epilogue):  # this layer also applies the activation(s) after it
                execute(step, env, donated, epilogue=action)
            elif action is not None:  # a fused follower: its value is the fusing layer's output
                env[step.outputs[0]] = env[action]
            if pos in foldable and pos not in skip:  # computed in this run
                folding.record(pos, env, made)
            if watch:
                for name in step.outputs:
                    fn = watch.get(name)
                    if fn is not None and name in env:
                        fn(name, env[name])
            pool = self.pool
            for name in free:
                if name not in keep and name in env:
                    if pool is None:
                        del env[name]
                    else:
                        pool.give(env.pop(name))
        return stale


_RUN = object()  # a step with no fusion action: run it


_CACHE_ATTR = "_reference_cache"
# Raw definitions -> {fast: (interpreter, watch.changes() when it was checked)}.
_RAW: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fits(interp: Interpreter, network: Any, definition: Any) -> bool:
    """Whether ``interp`` was prepared for ``network`` as it still is (counted changes, then counts)."""
    return (
        interp.generation == getattr(network, "generation", 0)
        and len(interp.nodes) == definition.num_layers
        and len(interp.inputs) == definition.num_inputs
        and len(interp.outputs) == definition.num_outputs
    )


def _cached(network: Any, fast: bool) -> tuple[Interpreter, bool]:
    """The cached interpreter for ``network`` in mode ``fast``, and whether it was attached for this run."""
    if isinstance(network, Interpreter):
        return network, False
    watch.install()
    definition = network_of(network, "trtdsl.reference")
    raw = definition is network
    entries = _RAW.get(definition) if raw else getattr(network, _CACHE_ATTR, None)
    if not isinstance(entries, dict):
        entries = {}
    found = entries.get(fast)
    if found is not None:
        interp, seen = found
        if seen == watch.changes() and _fits(interp, network, definition):
            if raw:
                interp._attach(definition)
            return interp, raw
    seen = watch.changes()
    interp = Interpreter(network, fast=fast)
    entries[fast] = (interp, seen)
    if raw:
        try:
            _RAW[definition] = entries
        except TypeError:  # not weakly referenceable: no cache
            return interp, False
        interp._active = 1  # attached by construction
        return interp, True
    if hasattr(network, _CACHE_ATTR):
        setattr(network, _CACHE_ATTR, entries)
    return interp, False


def prepare(network: Any, *, fast: bool = True) -> Interpreter:
    """An ``Interpreter`` for ``network``: the one ``run`` caches for a ``trtdsl.Network``.

    The cache is dropped by any change to the network made through the API since it
    was prepared (``reference.watch``): added layers, inputs or outputs, rewiring
    (``layer.set_input``, ``Network.replace_uses``), changed layer parameters or weights.
    For a raw ``INetworkDefinition`` this is a new ``Interpreter`` that the caller holds.

    Example::

        interp = trtdsl.reference.prepare(net)
        for batch in batches:
            out = interp.run({"x": batch})
    """
    if isinstance(network, Interpreter):
        return network
    if getattr(network, "trt", network) is network:
        return Interpreter(network, fast=fast)
    return _cached(network, fast)[0]


def run(
    network: Any,
    feeds: Mapping[str, Any],
    *,
    capture: Capture = None,
    observe: Mapping[str, Observer] | None = None,
    fast: bool = True,
) -> dict[str, np.ndarray]:
    """Run ``network`` (a ``trtdsl.Network``, an ``INetworkDefinition`` or an ``Interpreter``) on the CPU.

    ``capture`` adds intermediate tensors to the result: a name, a list of names, or ``"all"``
    (a tensor inside a loop body holds its value from the last iteration). ``observe`` hands
    named tensors to callbacks while they are alive, without keeping them (see ``Interpreter.run``).
    ``fast=False`` runs the plain textbook path (see ``Interpreter``). The prepared
    interpreter is reused by later calls until the network changes (see ``prepare``).

    Example::

        out = trtdsl.reference.run(net, {"x": np.ones((1, 3, 8, 8), np.float32)})
    """
    interp, attached = _cached(network, fast)
    try:
        return interp.run(feeds, capture=capture, observe=observe)
    finally:
        if attached:
            interp._detach()
