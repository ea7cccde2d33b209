"""What a PyTorch checkpoint's pickle may call, checked before ``torch.load`` reads it.

``torch.load(weights_only=True)`` refuses classes it does not know, but some of
the callables it allows make objects from numbers in the file rather than from
its data: ``bytearray(1 << 36)`` is 30 bytes of pickle that allocate and zero
64 GB, ``torch.FloatTensor(n)`` and ``torch.UntypedStorage(n)`` are tensors
of uninitialized memory (whatever this process freed last, another file's bytes
included), ``_rebuild_meta_tensor_no_storage`` a tensor of any shape with no data.
``torch.save`` writes none of these for a checkpoint of tensors and containers.

:func:`check` walks the pickle's opcodes (``pickletools.genops``, nothing is
built) with a stack of what each value is, and allows a call (``REDUCE``) only of
:data:`CALLS`: the functions ``torch.save`` writes to rebuild tensors, parameters
and the containers that hold them, and a few builtins whose result is no larger
than their arguments. ``NEWOBJ`` (which builds a class from arguments) and a
``BUILD`` of anything but an ``OrderedDict`` or a tensor are refused, and so are
quantized, sparse and nested tensors (:data:`NOT_DENSE`), which no weight can be,
before torch builds them. Opcodes torch's own unpickler does not take are left
for it to refuse. A refusal names the file, the pickle, the call and the dict key
it was for.
"""

from __future__ import annotations

import pickletools
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from ..errors import WeightError
from .limits import quote

# Tensor rebuilders: each makes a dense tensor over a storage the archive holds (BINPERSID), never from a size alone.
REBUILD = frozenset(
    f"torch._utils._rebuild_{name}"
    for name in ("tensor", "tensor_v2", "tensor_v3", "parameter", "parameter_with_state")
)
# What else a checkpoint's pickle may call: containers and small values, each no larger than its arguments.
CALLS = REBUILD | {
    "torch._tensor._rebuild_from_type_v2",  # (rebuilder, Tensor or Parameter, args, state): a tensor with attributes
    "collections.OrderedDict", "collections.Counter", "builtins.set", "builtins.complex", "builtins.bytearray",
    "_codecs.encode", "torch.Size", "torch.device",
}  # fmt: skip
# Rebuilders of tensors no weight can be, refused before torch builds them (a quantized one allocates its size first).
NOT_DENSE = {
    "torch._utils._rebuild_qtensor": "a quantized tensor",
    "torch._utils._rebuild_sparse_tensor": "a sparse tensor",
    "torch._utils._rebuild_nested_tensor": "a nested tensor",
    "torch.serialization._get_layout": "a sparse tensor",  # its layout, pickled before the tensor
}
TENSOR_TYPES = frozenset({"torch.Tensor", "torch.nn.parameter.Parameter"})
# What a BUILD (set an object's state) may act on: a tensor, or a dict with attributes (a state_dict's _metadata).
BUILDS = REBUILD | {"torch._tensor._rebuild_from_type_v2", "collections.OrderedDict", "collections.Counter"}


@dataclass(frozen=True)
class _Global:
    name: str


@dataclass(frozen=True)
class _Tuple:
    items: tuple


@dataclass(frozen=True)
class _Made:
    by: str  # what REDUCE called to make it


class _Int:
    """An integer from the file: bytearray(n) allocates n bytes, bytearray(b'..') copies them."""


_SUPPORTED = {  # the opcodes torch's weights-only unpickler takes; at any other it stops, and so does this walk
    "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK", "TUPLE", "TUPLE1",
    "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET",
    "BININT", "BININT1", "BININT2", "BINFLOAT", "BINUNICODE", "SHORT_BINSTRING", "BINPERSID", "BINGET",
    "LONG_BINGET", "BINPUT", "LONG_BINPUT", "LONG1", "PROTO", "STOP",
}  # fmt: skip


def check(stream: IO[bytes], label: str, where: str, hint: Callable[[str], str] = lambda name: "") -> bool:
    """Refuse, before torch reads it, a pickle that calls anything but :data:`CALLS` (see the module docstring).

    Reads ``stream`` up to and including the pickle's STOP, so a file of several
    pickles (the legacy format) is checked by calling this once per pickle.
    ``where`` names the pickle in messages (``'data.pkl'``); ``hint(name)`` adds
    advice for a refused global (a whole pickled model: save its state_dict).
    True when the walk reached the pickle's STOP; False where it stopped before
    (an opcode torch refuses, a broken pickle), which torch then reports.
    """
    stack: list = []
    marks: list[list] = []
    memo: dict[int, object] = {}

    def refuse(op: str, what: object, why: str = "") -> None:
        name = what.name if isinstance(what, _Global) else what.by if isinstance(what, _Made) else "a value"
        # The key of the dict entry being built: pickle pushes it before the value (None inside a list).
        key = f" for key {quote(stack[-1])}" if stack and isinstance(stack[-1], str) else ""
        if name in NOT_DENSE:
            raise WeightError(
                f"{label}: refused: it holds {NOT_DENSE[name]}, and only dense tensors can become weights "
                f"({where}: {op} of {quote(name)}{key})"
            )
        raise WeightError(
            f"{label}: refused: it holds Python objects other than tensors and containers, and trtdsl only loads "
            f"with torch.load(weights_only=True) what torch.save writes for them. ({where}: {op} of "
            f"{quote(name)}{key}{why}){hint(name) if isinstance(what, _Global) else ''}"
        )

    try:
        for op, arg, _pos in pickletools.genops(stream):
            code = op.name
            if code not in _SUPPORTED:
                return False  # torch refuses it, with its own message
            if code == "GLOBAL":  # protocol 2 names builtins as Python 2 did, and pickle reads them so
                stack.append(_Global(str(arg).replace(" ", ".", 1).replace("__builtin__.", "builtins.", 1)))
            elif code == "REDUCE":
                args, fn = stack.pop(), stack.pop()
                _check_call(fn, args, refuse)
                stack.append(_Made(fn.name))
            elif code == "NEWOBJ":
                stack.pop()
                refuse("NEWOBJ", stack.pop(), ", which builds an object of a class from the file's arguments")
            elif code == "BUILD":
                stack.pop()
                inst = stack[-1]
                if not (isinstance(inst, _Made) and inst.by in BUILDS):
                    refuse("BUILD", inst, ", which sets the state of an object that is no tensor or dict")
            elif code == "MARK":
                marks.append(stack)
                stack = []
            elif code == "TUPLE":
                items, stack = tuple(stack), marks.pop()
                stack.append(_Tuple(items))
            elif code in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(code[-1])
                items = tuple(stack[-n:]) if len(stack) >= n else ()
                del stack[-n:]
                stack.append(_Tuple(items))
            elif code == "EMPTY_TUPLE":
                stack.append(_Tuple(()))
            elif code in ("APPENDS", "SETITEMS"):
                stack = marks.pop()  # the container stays on top
            elif code == "APPEND":
                stack.pop()
            elif code == "SETITEM":
                del stack[-2:]
            elif code == "BINPERSID":
                pid = stack[-1]
                if isinstance(pid, _Tuple) and pid.items[:1] != ("storage",):
                    return False  # torch loads only storages by id (a whole model pickles its classes so)
                stack[-1] = None  # a storage of the archive
            elif code in ("BINGET", "LONG_BINGET"):
                stack.append(memo.get(arg))
            elif code in ("BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif code in ("BININT", "BININT1", "BININT2", "LONG1"):
                stack.append(_Int())
            elif code in ("BINUNICODE", "SHORT_BINSTRING"):
                stack.append(str(arg))
            elif code == "STOP":
                return True
            elif code != "PROTO":
                stack.append(None)  # a string, a number, an empty container
    except WeightError:
        raise
    except (IndexError, ValueError, EOFError):  # a pickle broken here is torch's to report, with its message
        return False
    return False


def _check_call(fn: object, args: object, refuse: Callable[..., None]) -> None:
    if not isinstance(fn, _Global) or fn.name not in CALLS:
        refuse("REDUCE", fn, ", which torch.save never writes for a tensor or container")
    sized = not isinstance(args, _Tuple) or any(isinstance(a, _Int) for a in args.items)
    if fn.name == "builtins.bytearray" and sized:
        refuse("REDUCE", fn, " with a size: a few bytes of pickle could allocate any amount of memory")
    if fn.name == "torch._tensor._rebuild_from_type_v2":
        items = args.items if isinstance(args, _Tuple) else ()
        ok = len(items) == 4 and isinstance(items[0], _Global) and items[0].name in REBUILD
        if not ok or not (isinstance(items[1], _Global) and items[1].name in TENSOR_TYPES):
            first = items[0] if items and isinstance(items[0], _Global) else fn
            refuse("REDUCE", first, " through _rebuild_from_type_v2, which calls what the file names")
