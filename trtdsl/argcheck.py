"""Wrong argument types to a public op, block or model become an ``ArgumentError`` naming the argument.

``ops.relu(np.ones(3))`` used to end in ``AttributeError: 'numpy.ndarray' object has no
attribute 'net'``, from deep inside the op. :func:`checked` wraps each public function of
``trtdsl.ops``, ``trtdsl.layers``, ``trtdsl.models``, ``trtdsl.calib``, ``trtdsl.rewrite`` and
``trtdsl.golden``, the entry points (``@api``: ``trtdsl.build``, ``weights.load``, ...) and the
script-facing methods of ``Network`` and ``WeightStore`` (:func:`check_methods`) so that, when the call fails with
Python's own AttributeError, TypeError, ValueError, IndexError or KeyError, its arguments are
compared with the function's annotations; one that plainly does not match (an array where a
``Tensor`` is annotated, a string for an ``int`` axis) is reported instead::

    trtdsl.errors.ArgumentError: ops.relu: argument 'x' must be a trtdsl.Tensor, got numpy.ndarray
    of shape (3,); make it a constant with net.constant(value), or pass a Tensor from net.input or an op

A call that succeeds pays one Python frame; annotations are read only after a failure. Where
no argument is at fault (or an annotation cannot be checked: ``Any``, a callable's signature),
the original exception propagates unchanged, so a bug inside trtdsl is never disguised.
"""

from __future__ import annotations

import functools
import inspect
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import ArgumentError

_CAUGHT = (AttributeError, TypeError, ValueError, IndexError, KeyError)


def checked(fn: Callable, prefix: str) -> Callable:
    """``fn`` reporting a wrongly typed argument as ``ArgumentError`` (``prefix``: 'ops', 'layers', 'models')."""
    label = f"{prefix}.{fn.__name__}"

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _CAUGHT as e:
            error = _misuse(fn, label, args, kwargs)
            if error is None:
                raise
            raise error from e

    return call


def api(prefix: str) -> Callable[[Callable], Callable]:
    """Decorator form of :func:`checked` for an entry point: ``@api("trtdsl")`` on ``build``."""
    return lambda fn: checked(fn, prefix)


def network_of(network: Any, label: str) -> Any:
    """``network``'s ``INetworkDefinition`` (a ``trtdsl.Network``'s or the definition itself), else ArgumentError."""
    definition = getattr(network, "trt", network)
    if not all(hasattr(definition, a) for a in ("num_layers", "get_layer", "num_inputs")):
        raise ArgumentError(
            f"{label}: expected a trtdsl.Network or a TensorRT INetworkDefinition, got {_shown(network)}"
        )
    return definition


def check_all(namespace: dict[str, Any], names: Sequence[str], prefix: str) -> None:
    """Wrap the functions ``names`` of a package's ``namespace`` (its ``globals()``) in place."""
    for name in names:
        value = namespace.get(name)
        if inspect.isfunction(value) and not hasattr(value, "__wrapped__"):
            namespace[name] = checked(value, prefix)


def check_methods(cls: type, names: Sequence[str] | None = None) -> None:
    """Wrap the public methods of ``cls`` (and of its trtdsl bases) in place, labelled ``Class.method``."""
    for name in names if names is not None else [n for n in dir(cls) if not n.startswith("_")]:
        value = inspect.getattr_static(cls, name)
        kind = type(value) if isinstance(value, (classmethod, staticmethod)) else None
        fn = value.__func__ if kind else value
        if inspect.isfunction(fn) and not hasattr(fn, "__wrapped__"):
            setattr(cls, name, kind(checked(fn, cls.__name__)) if kind else checked(fn, cls.__name__))


def _misuse(fn: Callable, label: str, args: tuple, kwargs: dict) -> ArgumentError | None:
    """The ArgumentError for the first argument that does not match its annotation, or None.

    Never raises: whatever goes wrong in here (an argument that breaks a comparison) leaves the
    original exception to propagate.
    """
    try:
        signature = inspect.signature(fn)
        bound = signature.bind(*args, **kwargs)
        for name, value in bound.arguments.items():
            hint = _hint_of(fn, signature.parameters[name].annotation)
            if hint is None or _matches(value, hint):
                continue
            return ArgumentError(
                f"{label}: argument {name!r} must be {_describe(hint)}, got {_shown(value)}{_hint(hint, label, value)}"
            )
    except Exception:  # a wrong number of arguments (Python's own message says it), an odd argument
        return None
    return None


def _hint_of(fn: Callable, annotation: Any) -> Any:
    """A parameter's annotation, evaluated (``from __future__ import annotations`` makes it a string);
    None when it names what only type checkers import."""
    if annotation is inspect.Parameter.empty:
        return None
    if not isinstance(annotation, str):
        return annotation
    from .network import Network  # what modules import only for type checkers, to dodge import cycles
    from .tensor import Tensor

    scope = {"Network": Network, "Tensor": Tensor, **getattr(fn, "__globals__", {})}
    try:
        return eval(annotation, scope)  # as typing.get_type_hints does: trtdsl's own annotations, not input
    except Exception:
        return None


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits ``hint``; True wherever the hint cannot be checked plainly."""
    if hint is Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:  # no ``value in args``: an array or a Tensor compares elementwise
        return any(type(value) is type(a) and value == a for a in args)
    if origin in (Sequence, list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, range, np.ndarray)):
            return False
        if isinstance(value, np.ndarray) and value.ndim == 0:  # a NumPy scalar array is no sequence
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
        return not args or all(_matches(v, args[0]) for v in value)
    if origin in (Mapping, dict) or hint in (Mapping, dict):  # a dict, an np.load result, a state dict
        return isinstance(value, Mapping) or (hasattr(value, "keys") and hasattr(value, "__getitem__"))
    if origin is not None or not isinstance(hint, type):  # Callable[...], a TypeVar: not checked
        return True
    if hint is int:
        return isinstance(value, (int, np.integer))
    if hint is float:
        return isinstance(value, (int, float, np.integer, np.floating))
    if hint is Callable:
        return True
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    if hint is None or hint is type(None):
        return "None"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_describe(a) for a in args))
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (Mapping, dict) or hint in (Mapping, dict):
        return "a mapping of name -> value (a dict)"
    if origin in (Sequence, list, tuple):
        elem = args[0] if args else None
        plural = {int: "ints", float: "numbers", str: "strings"}.get(elem)
        if plural is None and isinstance(elem, type):
            plural = _describe(elem).removeprefix("a ") + "s"
        return f"a sequence of {plural or 'values'}"
    if hint is os.PathLike:
        return "a path (os.PathLike)"
    if isinstance(hint, type):
        if hint.__module__.startswith("trtdsl"):
            return f"a trtdsl.{hint.__name__}"
        return {"int": "an int", "float": "a number", "str": "a string", "bool": "a bool"}.get(
            hint.__name__, f"a {hint.__module__}.{hint.__name__}" if hint.__module__ != "builtins" else hint.__name__
        )
    return str(hint)


def _shown(value: Any) -> str:
    kind = type(value)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__.split('.')[0]}.{kind.__name__}"
    if isinstance(value, np.ndarray):
        return f"{name} of shape {value.shape}"
    if isinstance(value, (list, tuple, dict, set)) and len(value) > 8:  # no repr of a huge container
        return f"{name} of {len(value)} items"
    try:
        text = repr(value)
    except Exception:
        return name
    return f"{name} {text[:40]}{'...' if len(text) > 40 else ''}"


def _hint(hint: Any, label: str, value: Any) -> str:
    from .network import Network
    from .tensor import Tensor

    wanted = set(typing.get_args(hint)) | {hint}
    if Tensor in wanted:
        return "; make it a constant with net.constant(value), or pass a Tensor from net.input or an op"
    if Network in wanted and isinstance(value, (int, float, Tensor, np.ndarray)):  # the data, where net belongs
        return f"; the network comes first: {label}(net, ...)"
    return ""
