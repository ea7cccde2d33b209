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
nothing else can see (``_donations``): a ReLU after a convolution overwrites
the convolution's output instead of allocating and filling a new array.
Dead arrays go to a ``BufferPool`` that layers draw their outputs from
(``Node.empty``), so a run reuses mapped, warm memory instead of faulting in
fresh pages for every activation. As TensorRT does, a ReLU whose input nothing
else reads is fused into the convolution or elementwise layer before it
(``_fused_relus``); a run that captures intermediates runs unfused, so every
pre-activation can be seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .. import _trt, dtypes
from ..errors import InterpreterError, ShapeError, TrtdslError, UnsupportedLayerError, did_you_mean
from ..feeds import check_mapping
from ..layerinfo import downcast
from . import precision
from .buffers import BufferPool
from .control import Structure, group
from .registry import REGISTRY, Node, donates, fresh, fuses_relu, supported

Capture = None | str | Iterable[str]
Observer = Callable[[str, np.ndarray], None]


class Interpreter:
    """A network prepared once (layers downcast, structure grouped, weights converted) and run many times.

    Feeds follow one rule (``trtdsl.dtypes.convert``, docs/dtypes.md): a feed is converted to its
    input's type only when no value changes (int64 ids within int32 range; float64 values exact
    in float32); narrow float inputs (bfloat16, fp8, fp4) also take float32 arrays, rounded as a
    TensorRT cast rounds them, and ``ml_dtypes`` arrays of their type; anything else raises,
    naming the input, both types and the first value that would change. Outputs of narrow types
    (bfloat16, fp8, fp4, e8m0, int4) come back as ``ml_dtypes`` arrays of that type.
    """

    def __init__(self, network: Any):
        self.network = network  # trtdsl.Network or INetworkDefinition
        self.generation = getattr(network, "generation", 0)  # the rewiring count it was prepared at
        self.definition = getattr(network, "trt", network)
        d = self.definition
        self.inputs: dict[str, tuple[tuple[int, ...], str]] = {}
        for i in range(d.num_inputs):
            t = d.get_input(i)
            self.inputs[t.name] = (tuple(t.shape), dtypes.canonical(t.dtype))
        self.outputs = [d.get_output(i).name for i in range(d.num_outputs)]
        self.output_dtypes = {t.name: dtypes.canonical(t.dtype) for t in map(d.get_output, range(d.num_outputs))}
        self.nodes = [self._node(i, downcast(d.get_layer(i))) for i in range(d.num_layers)]
        precision.prepare(self.nodes, network)  # TensorRT's type rules; narrow constants' values
        self.tensors = set(self.inputs) | {o for node in self.nodes for o in node.outputs}
        self.steps = group(self.nodes)
        self._free_after = _last_uses(self.steps, self.inputs)
        self._donations = _donations(self.steps, self._free_after, self.outputs)
        self._relus = _fused_relus(self.steps, self.outputs)
        self.pool = BufferPool()
        for node in self.nodes:
            node.pool = self.pool
        self._top_level = {n for step in self.steps for n in step.outputs}
        self._observed_plans: dict[frozenset[str], tuple[list[tuple[int, ...]], dict[int, bool]]] = {}

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
            out_shapes=[tuple(t.shape) for t in outs],
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
        env = self._check_feeds(feeds)
        want = self._capture_set(capture)
        watch = self._observe_map(observe)
        keep = set(self.outputs) | want
        if want:
            # A captured tensor outlives its last use, and so may any array it is a view of:
            # capturing (a debugging aid) turns buffer donation off rather than track that.
            # Fusing a ReLU into the layer before it hides the pre-activation, so capturing runs unfused.
            donations, relus = [()] * len(self.steps), _NO_FUSION
        elif watch:
            donations, relus = self._observed_plan(frozenset(watch))
        else:
            donations, relus = self._donations, self._relus
        try:
            self._execute(env, keep, donations, relus, watch)
        except InterpreterError as e:
            dims = self._dims_text(feeds)
            if not dims:
                raise
            raise InterpreterError(f"{e}; at {dims}") from e
        missing = [n for n in self.outputs if n not in env]
        if missing:
            raise InterpreterError(f"outputs {missing} were never computed")
        result = {n: precision.to_holder(env[n], self.output_dtypes[n]) for n in self.outputs}
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

    def _observe_map(self, observe: Mapping[str, Observer] | None) -> dict[str, Observer]:
        if not observe:
            return {}
        if not isinstance(observe, Mapping):
            raise TrtdslError(
                f"observe must map tensor names to callbacks fn(name, array), got {type(observe).__name__}"
            )
        inputs = set(self.inputs)
        for n, fn in observe.items():
            if n not in self.tensors:
                raise TrtdslError(
                    f"cannot observe unknown tensor {n!r} ({len(self.tensors)} tensors in the network)."
                    + did_you_mean(n, self.tensors)
                )
            if n in inputs:
                raise TrtdslError(f"cannot observe {n!r}: it is a network input (its value is the feed itself)")
            if n not in self._top_level:
                raise TrtdslError(
                    f"cannot observe {n!r}: it lives inside a loop or conditional body; observe that "
                    "structure's outputs instead"
                )
            if not callable(fn):
                raise TrtdslError(f"observer for {n!r} must be callable fn(name, array), got {type(fn).__name__}")
        return dict(observe)

    def _observed_plan(self, names: frozenset[str]) -> tuple[list[tuple[int, ...]], dict[int, bool]]:
        """Donation and fusion plans that keep ``names`` intact (observed tensors count as exported)."""
        plan = self._observed_plans.get(names)
        if plan is None:
            exported = [*self.outputs, *names]
            plan = (_donations(self.steps, self._free_after, exported), _fused_relus(self.steps, exported))
            self._observed_plans[names] = plan
        return plan

    def _capture_set(self, capture: Capture) -> set[str]:
        if capture is None:
            return set()
        if isinstance(capture, str) and capture == "all":
            return set(self.tensors)
        names = [capture] if isinstance(capture, str) else list(capture)
        for n in names:
            if n not in self.tensors:
                raise TrtdslError(
                    f"cannot capture unknown tensor {n!r} ({len(self.tensors)} tensors in the network)."
                    + did_you_mean(n, self.tensors)
                )
        return set(names)

    def _execute(self, env: dict, keep: set, donations: Any, relus: Any, watch: Any) -> None:
        """Run every step over ``env`` (the loop of :meth:`run`)."""
        for pos, (step, free, donated) in enumerate(zip(self.steps, self._free_after, donations, strict=True)):
            fused = relus.get(pos)
            if fused is None:
                execute(step, env, donated)
            elif fused:  # this layer also applies the ReLU that follows it
                execute(step, env, donated, relu=True)
            else:  # the ReLU itself: its output is its input, already rectified
                env[step.outputs[0]] = env[step.inputs[0]]
            if watch:
                for name in step.outputs:
                    fn = watch.get(name)
                    if fn is not None and name in env:
                        fn(name, env[name])
            for name in free:
                if name not in keep and name in env:
                    self.pool.give(env.pop(name))

    def _dims_text(self, feeds: Mapping[str, Any]) -> str:
        """'H=17, W=16': the named dims as the feeds set them (empty for a raw definition)."""
        specs = getattr(self.network, "input_specs", None) or {}
        seen: dict[str, int] = {}
        for name, spec in specs.items():
            shape = np.shape(feeds[name]) if name in feeds else ()
            for d, n in zip(spec, shape or (), strict=False):
                if isinstance(d, str):
                    seen.setdefault(d, n)
        return ", ".join(f"{d}={n}" for d, n in seen.items())

    def _check_feeds(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        check_mapping(feeds, self.inputs, f"network {getattr(self.network, 'name', self.definition.name)!r}")
        for name in feeds:
            if name not in self.inputs:
                raise ShapeError(
                    f"feed {name!r} is not an input of the network; inputs are {list(self.inputs)}."
                    + did_you_mean(name, self.inputs)
                )
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise ShapeError(f"missing feed for input(s) {missing}; the network's inputs are {list(self.inputs)}")
        env: dict[str, np.ndarray] = {}
        for name, value in feeds.items():
            shape, dt = self.inputs[name]
            array = precision.feed(value, dt, f"feed {name!r}")  # the feed rule: dtypes.convert
            if array.ndim != len(shape) or any(s not in (-1, a) for s, a in zip(shape, array.shape, strict=True)):
                raise ShapeError(
                    f"feed {name!r}: expected shape {shape} (-1 = any), got {array.shape}"
                    + (f" (rank {array.ndim}, expected rank {len(shape)})" if array.ndim != len(shape) else "")
                )
            env[name] = array
        specs = getattr(self.network, "input_specs", None)
        if specs:
            from ..profile import select_profile

            select_profile(self.network.profiles(), specs, {n: a.shape for n, a in env.items()})
        return env


def _last_uses(steps: Sequence[Node], inputs: Iterable[str]) -> list[list[str]]:
    """For each step, the tensors that no later step reads (freed after it runs)."""
    last: dict[str, int] = {n: -1 for n in inputs}
    for pos, step in enumerate(steps):
        for n in step.outputs:
            last[n] = pos
        for n in step.inputs:
            if n is not None:
                last[n] = pos
    free: list[list[str]] = [[] for _ in steps]
    for n, pos in last.items():
        if pos >= 0:
            free[pos].append(n)
    return free


def _donations(
    steps: Sequence[Node], free_after: Sequence[Sequence[str]], outputs: Iterable[str]
) -> list[tuple[int, ...]]:
    """For each step, the indices of the inputs whose arrays it may overwrite.

    An input qualifies when the run owns its memory (a layer registered ``fresh`` made it:
    no feed, constant or cached weight), when the step is the last to read it and every tensor
    that may be a view of it, when the step reads it once, and when no network output
    may share its memory. Any layer not known to be fresh (a shuffle, slice, identity,
    loop ...) may return views of its inputs, so its outputs and inputs share one alias
    group, and a group dies with the last read of any member.
    """
    parent: dict[str, str] = {}

    def root(n: str) -> str:
        r = n
        while r in parent:
            r = parent[r]
        while n != r:  # path compression keeps long reshape chains cheap
            parent[n], n = r, parent[n]
        return r

    def union(a: str, b: str) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[ra] = rb  # roots never appear as keys

    owned: set[str] = set()
    for step in steps:
        new = fresh(step.type) and not isinstance(step, Structure)
        if new:
            owned.update(step.outputs)
        linked = [*step.outputs] + ([] if new else [n for n in step.inputs if n is not None])
        for n in linked[1:]:
            union(linked[0], n)
    dies: dict[str, int] = {}
    for pos, free in enumerate(free_after):
        for n in free:
            r = root(n)
            dies[r] = max(dies.get(r, pos), pos)
    exported = {root(n) for n in outputs}
    plan: list[tuple[int, ...]] = []
    for pos, step in enumerate(steps):
        ok: tuple[int, ...] = ()
        if donates(step.type) and not isinstance(step, Structure):
            ok = tuple(
                i
                for i, n in enumerate(step.inputs)
                if n in owned and step.inputs.count(n) == 1 and dies.get(root(n)) == pos and root(n) not in exported
            )
        plan.append(ok)
    return plan


def _fused_relus(steps: Sequence[Node], outputs: Iterable[str]) -> dict[int, bool]:
    """Step position -> True for a layer that applies the ReLU after it, False for that ReLU.

    A layer whose implementation ``fuses_relu`` qualifies when its one output is read by
    nothing but one RELU activation of the same dtype, and is no network output.
    """
    readers: dict[str, list[int]] = {}
    for pos, step in enumerate(steps):
        for n in set(step.inputs):
            if n is not None:
                readers.setdefault(n, []).append(pos)
    exported = set(outputs)
    producer = {n: pos for pos, step in enumerate(steps) for n in step.outputs}
    plan: dict[int, bool] = {}
    for pos, step in enumerate(steps):
        if isinstance(step, Structure) or step.type != "activation" or step.inputs[0] is None:
            continue
        if step.layer.type.name != "RELU":
            continue
        src = step.inputs[0]
        before = producer.get(src)
        if before is None or src in exported or readers.get(src) != [pos]:
            continue
        first = steps[before]
        if isinstance(first, Structure) or not fuses_relu(first.type) or len(first.outputs) != 1:
            continue
        if first.out_dtypes[0] != step.out_dtypes[0] or before in plan:
            continue
        plan[before], plan[pos] = True, False
    return plan


_NO_FUSION: dict[int, bool] = {}


def execute(node: Node, env: dict[str, np.ndarray], donated: tuple[int, ...] = (), relu: bool = False) -> None:
    """Run one layer (or structural step) and store its outputs in ``env``.

    ``donated``: indices of inputs the layer may overwrite (see ``_donations``).
    ``relu``: the layer also applies the ReLU that follows it (see ``_fused_relus``).
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
    kwargs: dict[str, Any] = {"relu": True} if relu else {}
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


_CACHE_ATTR = "_reference_cache"


def prepare(network: Any) -> Interpreter:
    """An ``Interpreter`` for ``network``, cached on a ``trtdsl.Network`` so weights convert once.

    The cache is dropped when layers or outputs were added, or when the network
    was rewired through ``Network.replace_uses``/``insert_after`` (its
    ``generation``). Rewiring through the raw API (``layer.set_input``) is not
    seen: call ``prepare`` on a fresh ``Interpreter(network)`` then.
    """
    if isinstance(network, Interpreter):
        return network
    cached = getattr(network, _CACHE_ATTR, None)
    definition = getattr(network, "trt", network)
    generation = getattr(network, "generation", 0)
    if (
        isinstance(cached, Interpreter)
        and cached.generation == generation
        and len(cached.nodes) == definition.num_layers
        and cached.outputs == [definition.get_output(i).name for i in range(definition.num_outputs)]
    ):
        return cached
    interp = Interpreter(network)
    if hasattr(network, _CACHE_ATTR):
        setattr(network, _CACHE_ATTR, interp)
    return interp


def run(
    network: Any,
    feeds: Mapping[str, Any],
    *,
    capture: Capture = None,
    observe: Mapping[str, Observer] | None = None,
) -> dict[str, np.ndarray]:
    """Run ``network`` (a ``trtdsl.Network``, an ``INetworkDefinition`` or an ``Interpreter``) on the CPU.

    ``capture`` adds intermediate tensors to the result: a name, a list of names, or ``"all"``
    (a tensor inside a loop body holds its value from the last iteration). ``observe`` hands
    named tensors to callbacks while they are alive, without keeping them (see ``Interpreter.run``).

    Example::

        out = trtdsl.reference.run(net, {"x": np.ones((1, 3, 8, 8), np.float32)})
    """
    return prepare(network).run(feeds, capture=capture, observe=observe)
