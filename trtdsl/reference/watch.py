"""A count of changes made to any network definition through the Python API.

Why: ``reference.run`` reuses an interpreter prepared for a network (weights
converted, plans made), which stays valid only while the definition is
unchanged. A definition has no change counter, and reading it back to compare
(every layer's inputs and properties through the bindings) costs 10 ms on
ResNet-50, a quarter of a run. Instead, every call that can change a definition
(each property setter of the layer, tensor, loop and conditional classes, and
their ``set_*``/``reset_*``/``add_*``/``mark_*``/``unmark_*``/``remove_*``
methods) goes through a thin wrapper that counts it, so checking a cached
interpreter is one comparison of ``changes()``. The wrappers are installed
on the bindings' classes the first time a cache is made (``install``), and
only count: each still calls the bindings' own function, whose arguments,
results and errors are untouched.

Not counted: code that changes a definition from C++ (``OnnxParser.parse``
into a network already run; the interpreter also compares layer, input and
output counts, which catches that), and writes into the NumPy array that backs
a layer's weights (TensorRT keeps a pointer to it, ``trt.Weights`` does not
copy, and the documented contract is that it stays unchanged until the build).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from .. import _trt

_PREFIXES = ("set_", "reset_", "add_", "mark_", "unmark_", "remove_")
_count = 0
_installed = False
_lock = threading.Lock()


def changes() -> int:
    """How many counted changes have been made to network definitions since ``install``."""
    return _count


def _bump() -> None:
    global _count
    _count += 1


def _counted_method(fn: Any) -> Any:
    @functools.wraps(fn)
    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        _bump()
        return fn(self, *args, **kwargs)

    return counted


def _counted_setter(fset: Any) -> Any:
    def counted(self: Any, value: Any) -> None:
        _bump()
        fset(self, value)

    return counted


def _definition_classes(trt: Any) -> list[type]:
    """The bindings' classes whose instances are parts of a network definition."""
    parts = tuple(getattr(trt, n) for n in ("ILayer", "ITensor", "INetworkDefinition", "ILoop", "IIfConditional")
                  if hasattr(trt, n))  # fmt: skip
    extra = tuple(getattr(trt, n) for n in ("IAttention",) if hasattr(trt, n))
    return [c for c in vars(trt).values() if isinstance(c, type) and (issubclass(c, parts) or c in extra)]


def install() -> None:
    """Wrap the mutating calls of the definition classes so that they count (once per process)."""
    global _installed
    with _lock:
        if _installed:
            return
        trt = _trt.load()
        for cls in _definition_classes(trt):
            for name, attr in list(vars(cls).items()):
                if isinstance(attr, property) and attr.fset is not None:
                    setattr(cls, name, property(attr.fget, _counted_setter(attr.fset), attr.fdel, attr.__doc__))
                elif name.startswith(_PREFIXES) and callable(attr) and not isinstance(attr, type):
                    setattr(cls, name, _counted_method(attr))
        _installed = True
