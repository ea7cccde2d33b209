"""Structural steps: TensorRT loops and if-conditionals.

In an ``INetworkDefinition`` a loop or conditional is not a layer: it is a set
of boundary layers (trip limit, iterators, recurrences, loop outputs; or
condition, conditional inputs, conditional outputs) that share one ``ILoop`` /
``IIfConditional``, with the body layers interleaved among all the others in
the flat layer list. ``group`` finds each structure's body and replaces it by
one step, so the interpreter's main loop stays a plain walk over steps.

Body membership follows TensorRT's rule that data enters a loop through its
iterators and recurrences (a conditional through its inputs) and leaves only
through loop outputs (conditional outputs): the body is every layer reachable
from those entry tensors before reaching an exit. Layers that only read
loop-invariant tensors stay outside and run once, which gives the same values.
A structure whose boundary layer is reached from another's body is nested in it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import InterpreterError
from .registry import Node, interprets

LOOP_BOUNDARY = ("trip_limit", "iterator", "recurrence", "loop_output")
COND_BOUNDARY = ("condition", "conditional_input", "conditional_output")


@dataclass(eq=False)
class Structure(Node):
    """A loop or conditional as one step. ``inputs`` are the tensors it reads from outside,
    ``outputs`` every tensor it produces (body tensors included, so they can be captured)."""

    label: str = ""
    boundary: list[Node] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.label


@dataclass(eq=False)
class LoopStep(Structure):
    count: Node | None = None  # trip limit COUNT
    while_: Node | None = None  # trip limit WHILE
    iterators: list[Node] = field(default_factory=list)
    recurrences: list[Node] = field(default_factory=list)
    loop_outputs: list[Node] = field(default_factory=list)
    cond_steps: list[Node] = field(default_factory=list)  # compute the WHILE condition
    body_steps: list[Node] = field(default_factory=list)  # the rest of an iteration


@dataclass(eq=False)
class IfStep(Structure):
    condition: Node | None = None
    cond_inputs: list[Node] = field(default_factory=list)
    cond_outputs: list[Node] = field(default_factory=list)
    true_steps: list[Node] = field(default_factory=list)
    false_steps: list[Node] = field(default_factory=list)


def group(nodes: list[Node]) -> list[Node]:
    """The execution steps of a network: plain layers, with each loop/conditional as one step."""
    owners: list[Any] = []  # held so pybind11 hands back the same wrapper for the same ILoop
    boundary: dict[int, list[Node]] = {}
    for node in nodes:
        if node.type in LOOP_BOUNDARY or node.type in COND_BOUNDARY:
            owner = node.layer.loop if node.type in LOOP_BOUNDARY else node.layer.conditional
            for known in owners:
                if known is owner:
                    break
            else:
                owners.append(owner)
                known = owner
            boundary.setdefault(id(known), []).append(node)
    if not boundary:
        # Still sorted: set_input can wire a layer to one added after it.
        return toposort(list(nodes))
    consumers: dict[str, list[Node]] = {}
    for node in nodes:
        for name in node.inputs:
            if name is not None:
                consumers.setdefault(name, []).append(node)
    members = {key: _members(b, consumers) for key, b in boundary.items()}
    # Nesting: a structure with a boundary layer in another's body belongs to it entirely.
    changed = True
    while changed:
        changed = False
        for outer, m_outer in members.items():
            for inner, b_inner in boundary.items():
                if inner != outer and any(n.index in m_outer for n in b_inner):
                    add = members[inner] - m_outer
                    if add:
                        m_outer.update(add)  # in place: m_outer is members[outer]
                        changed = True
    owner_of = {id(o): o for o in owners}
    by_index = {n.index: n for n in nodes}
    specs = [(owner_of[k], boundary[k], members[k]) for k in boundary]
    return _arrange(list(nodes), specs, by_index)


def _members(bnodes: list[Node], consumers: dict[str, list[Node]]) -> set[int]:
    """Indices of a structure's boundary layers and of every layer between its entries and exits."""
    entry_types = ("iterator", "recurrence", "conditional_input")
    own = {n.index for n in bnodes}
    seen = set(own)
    stack = [t for n in bnodes if n.type in entry_types for t in n.outputs]
    while stack:
        for user in consumers.get(stack.pop(), []):
            if user.index not in seen:
                seen.add(user.index)
                stack.extend(user.outputs)
    return seen


def _arrange(nodes: list[Node], specs: list[tuple[Any, list[Node], set[int]]], by_index: dict[int, Node]) -> list[Node]:
    """Steps for ``nodes``: maximal structures among ``specs`` become one step each, in dependency order."""
    indices = {n.index for n in nodes}
    inside = [s for s in specs if s[2] <= indices]
    top = [s for s in inside if not any(s[2] < o[2] for o in inside)]
    grouped: set[int] = set().union(*(s[2] for s in top)) if top else set()
    steps: list[Node] = [n for n in nodes if n.index not in grouped]
    for owner, bnodes, member_ids in top:
        body = [by_index[i] for i in sorted(member_ids - {b.index for b in bnodes})]
        inner = [s for s in inside if s[2] < member_ids]
        body_steps = _arrange(body, inner, by_index)
        steps.append(_make_step(owner, bnodes, body_steps, [by_index[i] for i in sorted(member_ids)]))
    return toposort(steps)


def _make_step(owner: Any, bnodes: list[Node], body: list[Node], members: list[Node]) -> Structure:
    produced = [o for n in members for o in n.outputs]
    made = set(produced)
    external = list(dict.fromkeys(i for n in members for i in n.inputs if i is not None and i not in made))
    common = dict(
        index=min(n.index for n in bnodes),
        layer=owner,
        inputs=external,
        outputs=produced,
        out_dtypes=[d for n in members for d in n.out_dtypes],
        out_shapes=[s for n in members for s in n.out_shapes],
        label=owner.name,
        boundary=bnodes,
    )
    if bnodes[0].type in LOOP_BOUNDARY:
        limits = [n for n in bnodes if n.type == "trip_limit"]
        count = next((n for n in limits if n.layer.kind.name == "COUNT"), None)
        while_ = next((n for n in limits if n.layer.kind.name == "WHILE"), None)
        cond_steps: list[Node] = []
        if while_ is not None:
            needed = {while_.inputs[0]}
            for step in reversed(body):
                if needed & set(step.outputs):
                    cond_steps.insert(0, step)
                    needed |= {i for i in step.inputs if i is not None}
        return LoopStep(
            type="loop",
            count=count,
            while_=while_,
            iterators=[n for n in bnodes if n.type == "iterator"],
            recurrences=[n for n in bnodes if n.type == "recurrence"],
            loop_outputs=[n for n in bnodes if n.type == "loop_output"],
            cond_steps=cond_steps,
            body_steps=[s for s in body if s not in cond_steps],
            **common,
        )
    outs = [n for n in bnodes if n.type == "conditional_output"]
    branches = []
    for side in (0, 1):
        needed = {o.inputs[side] for o in outs}
        chosen: list[Node] = []
        for step in reversed(body):
            if needed & set(step.outputs):
                chosen.insert(0, step)
                needed |= {i for i in step.inputs if i is not None}
        branches.append(chosen)
    return IfStep(
        type="if_conditional",
        condition=next(n for n in bnodes if n.type == "condition"),
        cond_inputs=[n for n in bnodes if n.type == "conditional_input"],
        cond_outputs=outs,
        true_steps=branches[0],
        false_steps=branches[1],
        **common,
    )


def toposort(steps: list[Node], *, cycles: str = "raise") -> list[Node]:
    """Order steps so each runs after the producers of its inputs; ties keep network order.

    TensorRT does not require layers in topological order, and its ONNX parser
    does not keep it. ``cycles="append"`` puts steps caught in a cycle (a loop's
    recurrence, when loop bodies are not grouped) at the end in network order
    instead of raising.
    """
    producer = {o: k for k, s in enumerate(steps) for o in s.outputs}
    deps = [{producer[i] for i in s.inputs if i in producer and producer[i] != k} for k, s in enumerate(steps)]
    users: list[list[int]] = [[] for _ in steps]
    for k, ds in enumerate(deps):
        for d in ds:
            users[d].append(k)
    waiting = [len(d) for d in deps]
    ready = [(s.index, k) for k, s in enumerate(steps) if not waiting[k]]
    heapq.heapify(ready)
    order: list[Node] = []
    while ready:
        _, k = heapq.heappop(ready)
        order.append(steps[k])
        for u in users[k]:
            waiting[u] -= 1
            if not waiting[u]:
                heapq.heappush(ready, (steps[u].index, u))
    if len(order) != len(steps) and cycles == "append":
        return order + [s for k, s in enumerate(steps) if waiting[k]]
    if len(order) != len(steps):
        stuck = [f"{s.index} {s.name!r}" for k, s in enumerate(steps) if waiting[k]]
        raise InterpreterError(
            f"the network has a cycle outside any loop: layers {', '.join(stuck[:5])} wait on each other "
            "(a recurrence whose loop could not be identified?)"
        )
    return order


# --------------------------------------------------------------------- execution
def _scalar(node: Node, value: np.ndarray, what: str) -> Any:
    value = np.asarray(value)
    if value.size != 1:
        raise InterpreterError(
            f"{node.type} layer {node.index} {node.name!r}: {what} must be a scalar, got shape {value.shape}"
        )
    return value.reshape(()).item()


@interprets("loop")
def loop(step: LoopStep, env: dict[str, np.ndarray]) -> None:
    """Run a loop: bind recurrences and iterators, run the body, collect outputs."""
    from .step import execute, fetch, store_outputs

    count = (
        None
        if step.count is None
        else int(_scalar(step.count, fetch(step.count, step.count.inputs[0], env), "the trip count"))
    )
    current = {r.index: fetch(r, r.inputs[0], env) for r in step.recurrences}
    sequences: dict[int, list[np.ndarray]] = {o.index: [] for o in step.loop_outputs}
    i = 0
    while count is None or i < count:
        for r in step.recurrences:
            store_outputs(r, current[r.index], env)
        for it in step.iterators:
            x = fetch(it, it.inputs[0], env)
            axis = it.layer.axis % x.ndim
            n = x.shape[axis]
            # TensorRT's reverse iterator reads element M-1-i, M being the COUNT trip count.
            k = ((count if count is not None else n) - 1 - i) if it.layer.reverse else i
            if not 0 <= k < n:
                raise InterpreterError(
                    f"iterator layer {it.index} {it.name!r}: iteration {i} reads index {k} of axis {axis}, "
                    f"which has length {n}"
                )
            store_outputs(it, np.take(x, k, axis=axis), env)
        if step.while_ is not None:
            for s in step.cond_steps:
                execute(s, env)
            if not _scalar(step.while_, fetch(step.while_, step.while_.inputs[0], env), "the WHILE condition"):
                break
        for s in step.body_steps:
            execute(s, env)
        for o in step.loop_outputs:
            if o.layer.kind.name != "LAST_VALUE":
                sequences[o.index].append(fetch(o, o.inputs[0], env))
        current = {r.index: fetch(r, r.inputs[1], env) for r in step.recurrences}
        i += 1
    recurrence_of = {r.outputs[0]: r for r in step.recurrences}
    for o in step.loop_outputs:
        store_outputs(o, _loop_output(o, sequences[o.index], recurrence_of, current, env), env)


def _loop_output(o: Node, seq: list[np.ndarray], recurrence_of: dict, current: dict, env: dict) -> np.ndarray:
    from .step import fetch

    kind = o.layer.kind.name
    if kind == "LAST_VALUE":
        # The last value of a recurrence is its value after the final iteration (its last "next").
        rec = recurrence_of.get(o.inputs[0])
        return current[rec.index] if rec is not None else fetch(o, o.inputs[0], env)
    length = int(_scalar(o, fetch(o, o.inputs[1], env), "the concatenation length"))
    if length < len(seq):
        raise InterpreterError(
            f"loop output layer {o.index} {o.name!r}: concatenation length {length} is less than the "
            f"{len(seq)} iterations that ran"
        )
    if not seq:
        shape = list(o.out_shapes[0])
        shape[o.layer.axis % len(shape)] = length
        return np.zeros([max(s, 0) for s in shape], dtypes.to_numpy(o.out_dtypes[0]))
    if kind == "REVERSE":
        seq = seq[::-1]
    axis = o.layer.axis % (seq[0].ndim + 1)
    out = np.stack(seq, axis=axis)
    if length > len(seq):
        # TensorRT leaves the extra entries undefined; zeros make that visible.
        pad = [(0, 0)] * out.ndim
        pad[axis] = (0, length - len(seq))
        out = np.pad(out, pad)
    return out


@interprets("if_conditional")
def if_conditional(step: IfStep, env: dict[str, np.ndarray]) -> None:
    """Run an if-conditional: only the chosen branch's layers execute."""
    from .step import execute, fetch, store_outputs

    c = step.condition
    pred = bool(_scalar(c, fetch(c, c.inputs[0], env), "the condition"))
    for n in step.cond_inputs:
        store_outputs(n, fetch(n, n.inputs[0], env), env)
    for s in step.true_steps if pred else step.false_steps:
        execute(s, env)
    for n in step.cond_outputs:
        store_outputs(n, fetch(n, n.inputs[0 if pred else 1], env), env)


@interprets(*LOOP_BOUNDARY, *COND_BOUNDARY)
def boundary(node: Node, *inputs: np.ndarray) -> None:
    # Boundary layers run inside their structure's step; reaching one here means grouping failed.
    raise InterpreterError(
        f"{node.type} layer {node.index} {node.name!r} was found outside its loop or conditional; "
        "the interpreter could not group it"
    )
