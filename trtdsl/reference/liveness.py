"""Run plans computed once per interpreter: when each tensor dies, which inputs a step may overwrite.

``last_uses`` frees a tensor after the last step that reads it; ``donation_plan`` lets a
step overwrite an input that dies with it and that nothing else can see (the run owns
its memory, no view of it outlives the step, no output shares it); ``structures``
walks loops and conditionals, nested ones included.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .control import Structure
from .registry import Node, donates, fresh


def last_uses(steps: Sequence[Node], inputs: Iterable[str]) -> list[list[str]]:
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


def donation_plan(
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


def structures(steps: Sequence[Node]) -> Iterable[Structure]:
    """Every loop and conditional step, nested ones included."""
    for step in steps:
        if isinstance(step, Structure):
            yield step
            for attr in ("cond_steps", "body_steps", "true_steps", "false_steps"):
                yield from structures(getattr(step, attr, ()))
