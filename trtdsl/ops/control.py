"""Control flow: TensorRT loops (``Loop``) and if-conditionals (``cond``).

A TensorRT loop is defined by boundary layers around ordinary layers: a trip
limit, iterators that slice a tensor per iteration, recurrences that carry a
value from one iteration to the next, and loop outputs that leave the loop.
``Loop`` wraps those calls; the body is written with ordinary ops between them.

Example (cumulative sum over axis 0)::

    loop = ops.Loop(x.net, x.shape[0])
    with loop:
        acc = loop.recurrence(zeros)        # value at the start of each iteration
        acc.set_next(acc + loop.iterate(x))  # value at the start of the next one
    total = loop.output(acc, "last")         # value after the last iteration
    partial = loop.output(acc.next, "concat")
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _trt
from ..errors import ShapeError, TrtdslError
from ..network import Network
from ..tensor import Tensor
from ._util import axis as norm_axis
from ._util import net_of

__all__ = ["Loop", "Recurrence", "cond"]

_KINDS = {"last": "LAST_VALUE", "concat": "CONCATENATE", "reverse": "REVERSE"}


class Recurrence(Tensor):
    """A loop-carried tensor: its value in the current iteration. Set the next one with ``set_next``."""

    __slots__ = ("next", "recurrence_layer")

    def set_next(self, value: Tensor) -> None:
        """The value this tensor takes in the next iteration (and after the loop, for ``'last'``)."""
        if self.next is not None:
            raise TrtdslError(f"recurrence {self.name!r} already has its next value {self.next.name!r}")
        if value.shape != self.shape or value.dtype != self.dtype:
            raise ShapeError(
                f"recurrence {self.name!r}: next value {value.name!r} has shape {value.shape} and dtype "
                f"{value.dtype}; it must match the initial value's shape {self.shape} and dtype {self.dtype}"
            )
        self.recurrence_layer.set_input(1, value.trt)
        self.next = value


class Loop:
    """A TensorRT loop (``INetworkDefinition.add_loop``).

    ``trip_count`` is an int or a 0-D int32 Tensor (a COUNT trip limit). Leave it out to
    take the length of the first iterated axis, or to stop with ``while_true``.
    Used as a context manager, it scopes the names of the layers written inside.
    """

    def __init__(self, net: Network | Tensor, trip_count: int | Tensor | None = None, *, name: str | None = None):
        self.net = net.net if isinstance(net, Tensor) else net
        self.trt = self.net.trt.add_loop()
        self.name = self.net.unique_name(name or "loop")
        self.trt.name = self.name
        self.count: Tensor | None = None
        self.recurrences: list[Recurrence] = []
        self._scope: contextlib.ExitStack | None = None
        if trip_count is not None:
            self._set_count(trip_count)

    # ----------------------------------------------------------------- scope
    def __enter__(self) -> Loop:
        prefix = self.net.current_scope
        self._scope = contextlib.ExitStack()
        self._scope.enter_context(self.net.scope(self.name[len(prefix) + 1 :] if prefix else self.name))
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._scope is not None  # __exit__ always follows __enter__
        self._scope.close()
        self._scope = None

    def _name(self, layer: Any, kind: str) -> Tensor | None:
        # Boundary layers are named after the loop, not the current scope.
        lname = self.net.unique_name(f"{self.name}.{kind}", scoped=False)
        if layer.num_outputs:
            return self.net.register(layer, kind, lname, resolved=True)
        layer.name = lname
        return None

    def _int_constant(self, value: int, kind: str) -> Tensor:
        full, prefix = f"{self.name}.{kind}", self.net.current_scope
        rel = full[len(prefix) + 1 :] if prefix and full.startswith(prefix + ".") else full
        return self.net.constant(np.array(value, np.int32), rel, dtype="int32")

    # ------------------------------------------------------------ boundaries
    def _set_count(self, trip_count: int | Tensor) -> None:
        if self.count is not None:
            raise TrtdslError(f"loop {self.name!r} already has a trip count")
        if isinstance(trip_count, Tensor):
            if trip_count.ndim != 0 or trip_count.dtype != "int32":
                raise ShapeError(
                    f"loop {self.name!r}: trip count must be a 0-D int32 tensor, got {trip_count.shape} {trip_count.dtype}"
                )
            count = trip_count
        else:
            if int(trip_count) < 0:
                raise ShapeError(f"loop {self.name!r}: trip count must be >= 0, got {trip_count}")
            count = self._int_constant(int(trip_count), "trip_count")
        self._name(self.trt.add_trip_limit(count.trt, _trt.load().TripLimit.COUNT), "trip_limit")
        self.count = count

    def while_true(self, condition: Tensor) -> None:
        """Run iterations while ``condition`` (a 0-D bool tensor computed from recurrences) is true."""
        if condition.ndim != 0 or condition.dtype != "bool":
            raise ShapeError(
                f"loop {self.name!r}: while condition must be a 0-D bool tensor, got {condition.shape} {condition.dtype}"
            )
        self._name(self.trt.add_trip_limit(condition.trt, _trt.load().TripLimit.WHILE), "while")

    def recurrence(self, initial: Tensor) -> Recurrence:
        """A loop-carried tensor starting at ``initial``; call ``set_next`` on it inside the body."""
        layer = self.trt.add_recurrence(initial.trt)
        self._name(layer, "recurrence")
        r = Recurrence(layer.get_output(0), self.net)
        r.recurrence_layer = layer
        r.next = None
        self.recurrences.append(r)
        return r

    def iterate(self, x: Tensor, axis: int = 0, *, reverse: bool = False) -> Tensor:
        """Slice ``i`` of ``x`` along ``axis`` in iteration ``i`` (the axis is removed)."""
        ax = norm_axis(axis, x.ndim, f"loop {self.name!r} iterate axis")
        if self.count is None:
            if x.shape[ax] < 0:
                raise ShapeError(f"loop {self.name!r}: axis {ax} of {x.name!r} is dynamic; give the loop a trip_count")
            self._set_count(x.shape[ax])
        layer = self.trt.add_iterator(x.trt, ax, reverse)
        out = self._name(layer, "iterator")
        assert out is not None  # an iterator layer has one output
        return out

    def output(self, x: Tensor, kind: str = "last", *, axis: int = 0, length: int | Tensor | None = None) -> Tensor:
        """A tensor leaving the loop.

        ``kind``: ``'last'`` (a recurrence's value after the last iteration; its next-value
        tensor is accepted too), ``'concat'`` (every iteration's value stacked along a new
        ``axis``) or ``'reverse'`` (stacked in reverse order). ``length`` (default: the trip
        count) is the size of the stacked axis.
        """
        if kind not in _KINDS:
            raise TrtdslError(f"loop {self.name!r}: output kind must be one of {list(_KINDS)}, got {kind!r}")
        if kind == "last":
            x = self._as_recurrence(x)
            axis = 0
        else:
            axis = norm_axis(axis, x.ndim + 1, f"loop {self.name!r} {kind} output axis")
        layer = self.trt.add_loop_output(x.trt, getattr(_trt.load().LoopOutput, _KINDS[kind]), axis)
        if kind != "last":
            if length is None:
                if self.count is None:
                    raise TrtdslError(
                        f"loop {self.name!r}: a {kind!r} output needs length= when the loop has no trip count"
                    )
                length = self.count
            if not isinstance(length, Tensor):
                length = self._int_constant(int(length), "length")
            layer.set_input(1, length.trt)
        out = self._name(layer, f"output_{kind}")
        assert out is not None  # a loop output layer has one output
        return out

    def _as_recurrence(self, x: Tensor) -> Tensor:
        for r in self.recurrences:
            if x.trt is r.trt or x.name == r.name:
                return r
            if r.next is not None and x.name == r.next.name:
                return r  # the last "next" is the recurrence's value after the loop
        raise TrtdslError(
            f"loop {self.name!r}: a 'last' output must be a recurrence or a recurrence's next value; "
            f"{x.name!r} is neither (TensorRT allows LAST_VALUE only on recurrence outputs)"
        )


def cond(
    pred: Tensor,
    true_fn: Callable[..., Tensor | Sequence[Tensor]],
    false_fn: Callable[..., Tensor | Sequence[Tensor]],
    *operands: Tensor,
    name: str | None = None,
) -> Tensor | tuple[Tensor, ...]:
    """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)``; only one branch runs.

    ``pred`` is a 0-D bool tensor. Each branch gets the operands as conditional
    inputs and returns a tensor or a tuple of tensors; both branches must return
    the same number, with matching shapes and dtypes.

    Example::

        y = ops.cond(flag, lambda x: ops.exp(x), lambda x: x * 2.0, x)
    """
    net = net_of(pred, list(operands))
    if pred.ndim != 0 or pred.dtype != "bool":
        raise ShapeError(
            f"cond: predicate {pred.name!r} must be a 0-D bool tensor, got shape {pred.shape} {pred.dtype}"
        )
    c = net.trt.add_if_conditional()
    full = net.unique_name(name or "cond")
    c.name = full
    prefix = net.current_scope
    rel = full[len(prefix) + 1 :] if prefix else full

    def named(layer: Any, kind: str) -> Tensor | None:
        lname = net.unique_name(f"{full}.{kind}", scoped=False)
        layer.name = lname
        if layer.num_outputs:
            return net.register(layer, kind, lname, resolved=True)
        return None

    named(c.set_condition(pred.trt), "condition")
    inputs = [named(c.add_input(op.trt), "input") for op in operands]
    results = []
    for branch, fn in (("then", true_fn), ("else", false_fn)):
        with net.scope(f"{rel}.{branch}"):
            out = fn(*inputs)
        results.append((out,) if isinstance(out, Tensor) else tuple(out))
    t_out, f_out = results
    if len(t_out) != len(f_out):
        raise ShapeError(f"cond {full!r}: true branch returns {len(t_out)} tensors, false branch {len(f_out)}")
    outs = []
    for i, (t, f) in enumerate(zip(t_out, f_out, strict=True)):
        if t.shape != f.shape or t.dtype != f.dtype:
            raise ShapeError(
                f"cond {full!r}: output {i} is {t.shape} {t.dtype} in the true branch but {f.shape} {f.dtype} "
                "in the false branch"
            )
        outs.append(named(c.add_output(t.trt, f.trt), "output"))
    return outs[0] if len(outs) == 1 else tuple(outs)
