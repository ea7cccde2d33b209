"""Checking what a run is given: its feeds, the tensors to capture and the tensors to observe.

Every check runs before the first layer does, so a bad argument raises at once,
naming the feed or tensor, what was expected and the near names.
:meth:`Interpreter.run <trtdsl.reference.Interpreter.run>` calls these; a failed
run's message gets the named dims the feeds set (:func:`dims_text`).

Example::

    env = check_feeds({"x": batch}, interp.inputs, net, net.name)   # {'x': float32 array}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import ShapeError, TrtdslError, did_you_mean
from ..feeds import check_mapping
from . import precision

Capture = None | str | Iterable[str]
Observer = Callable[[str, np.ndarray], None]


def check_feeds(
    feeds: Mapping[str, Any], inputs: Mapping[str, tuple[tuple[int, ...], str]], network: Any, label: str
) -> dict[str, np.ndarray]:
    """The run's starting values: each feed converted to its input's type and checked against its shape.

    ``inputs`` maps input names to (shape with -1 for any size, dtype); ``network`` (a
    ``trtdsl.Network``) also has its profiles checked; ``label`` names the network in messages.
    """
    check_mapping(feeds, inputs, f"network {label!r}")
    for name in feeds:
        if name not in inputs:
            raise ShapeError(
                f"feed {name!r} is not an input of the network; inputs are {list(inputs)}." + did_you_mean(name, inputs)
            )
    missing = [n for n in inputs if n not in feeds]
    if missing:
        raise ShapeError(f"missing feed for input(s) {missing}; the network's inputs are {list(inputs)}")
    env: dict[str, np.ndarray] = {}
    for name, value in feeds.items():
        shape, dt = inputs[name]
        array = precision.feed(value, dt, f"feed {name!r}")  # the feed rule: dtypes.convert
        if array.ndim != len(shape) or any(s not in (-1, a) for s, a in zip(shape, array.shape, strict=True)):
            raise ShapeError(
                f"feed {name!r}: expected shape {shape} (-1 = any), got {array.shape}"
                + (f" (rank {array.ndim}, expected rank {len(shape)})" if array.ndim != len(shape) else "")
            )
        env[name] = array
    specs = getattr(network, "input_specs", None)
    if specs:
        from ..profile import select_profile

        select_profile(network.profiles(), specs, {n: a.shape for n, a in env.items()})
    return env


def dims_text(network: Any, feeds: Mapping[str, Any]) -> str:
    """'H=17, W=16': the named dims as the feeds set them (empty for a raw definition)."""
    specs = getattr(network, "input_specs", None) or {}
    seen: dict[str, int] = {}
    for name, spec in specs.items():
        shape = np.shape(feeds[name]) if name in feeds else ()
        for d, n in zip(spec, shape or (), strict=False):
            if isinstance(d, str):
                seen.setdefault(d, n)
    return ", ".join(f"{d}={n}" for d, n in seen.items())


def capture_set(capture: Capture, tensors: set[str]) -> set[str]:
    """The names ``capture`` asks for (``"all"``: every tensor), each checked against ``tensors``."""
    if capture is None:
        return set()
    if isinstance(capture, str) and capture == "all":
        return set(tensors)
    names = [capture] if isinstance(capture, str) else list(capture)
    for n in names:
        if n not in tensors:
            raise TrtdslError(
                f"cannot capture unknown tensor {n!r} ({len(tensors)} tensors in the network)."
                + did_you_mean(n, tensors)
            )
    return set(names)


def observe_map(
    observe: Mapping[str, Observer] | None, tensors: set[str], inputs: Iterable[str], top_level: set[str]
) -> dict[str, Observer]:
    """``observe`` checked: known tensors that are neither inputs nor inside a loop or conditional body."""
    if not observe:
        return {}
    if not isinstance(observe, Mapping):
        raise TrtdslError(f"observe must map tensor names to callbacks fn(name, array), got {type(observe).__name__}")
    inputs = set(inputs)
    for n, fn in observe.items():
        if n not in tensors:
            raise TrtdslError(
                f"cannot observe unknown tensor {n!r} ({len(tensors)} tensors in the network)."
                + did_you_mean(n, tensors)
            )
        if n in inputs:
            raise TrtdslError(f"cannot observe {n!r}: it is a network input (its value is the feed itself)")
        if n not in top_level:
            raise TrtdslError(
                f"cannot observe {n!r}: it lives inside a loop or conditional body; observe that "
                "structure's outputs instead"
            )
        if not callable(fn):
            raise TrtdslError(f"observer for {n!r} must be callable fn(name, array), got {type(fn).__name__}")
    return dict(observe)
