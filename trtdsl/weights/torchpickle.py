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
before torch builds them, and an allowed call given a tensor (``set(t)`` iterates a
stride-0 tensor of any length). A pickle the walk cannot follow to its end (an opcode
torch's weights-only unpickler does not take either, a persistent id that is not the
string ``'storage'``, a truncated pickle) is refused too: no pickle reaches torch
unchecked. The walk also returns the storage keys the tensors use, so that a legacy
file whose storage list leaves one out (torch would hand it out uninitialized) is
refused. A refusal names the file, the pickle, the call and, where the pickle shows it,
the dict key it was for.
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


@dataclass(frozen=True)
class _Int:
    """An integer from the file: bytearray(n) allocates n bytes, bytearray(b'..') copies them."""

    value: int


class _List:
    """A list being filled; ``tensors``: whether a tensor or storage went into it."""

    tensors = False


_STORAGE = object()  # a storage of the archive (BINPERSID)


_DICT = object()  # an empty dict being filled (EMPTY_DICT); a state dict is an OrderedDict instead (_Made)
DICTS = frozenset({"collections.OrderedDict", "collections.Counter"})
TENSORS = REBUILD | {"torch._tensor._rebuild_from_type_v2"}

_SUPPORTED = {  # the opcodes torch's weights-only unpickler takes; any other is refused here too
    "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK", "TUPLE", "TUPLE1",
    "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET",
    "BININT", "BININT1", "BININT2", "BINFLOAT", "BINUNICODE", "SHORT_BINSTRING", "BINPERSID", "BINGET",
    "LONG_BINGET", "BINPUT", "LONG_BINPUT", "LONG1", "PROTO", "STOP",
}  # fmt: skip


@dataclass
class Walked:
    """What a walk saw: the storages the pickle's tensors use, ``{key: (storage type, numel)}``."""

    storages: dict[str, tuple[str, int | None]]


def check(stream: IO[bytes], label: str, where: str, hint: Callable[[str], str] = lambda name: "") -> Walked:
    """Refuse, before torch reads it, a pickle that calls anything but :data:`CALLS` (see the module docstring).

    Reads ``stream`` up to and including the pickle's STOP, so a file of several pickles
    (the legacy format) is checked by calling this once per pickle. ``where`` names the
    pickle in messages (``'data.pkl'``); ``hint(name)`` adds advice for a refused global (a
    whole pickled model: save its state_dict). A pickle the walk cannot follow to its STOP
    (an opcode torch's weights-only unpickler does not take either, a persistent id that is
    not a storage's, a truncated pickle) is refused too: nothing reaches torch unchecked.
    """
    stack: list = []
    marks: list[list] = []
    memo: dict[int, object] = {}
    seen = Walked({})

    def key_now() -> str:
        """The dict key whose value is being built, where the stack shows one (none inside a list)."""
        if marks and marks[-1] and _is_dict(marks[-1][-1]) and len(stack) % 2 == 1 and isinstance(stack[-1], str):
            return f" for key {quote(stack[-1])}"
        if len(stack) >= 2 and _is_dict(stack[-2]) and isinstance(stack[-1], str):
            return f" for key {quote(stack[-1])}"
        return ""

    def refuse(op: str, what: object, why: str = "") -> None:
        name = what.name if isinstance(what, _Global) else what.by if isinstance(what, _Made) else "a value"
        if name in NOT_DENSE:
            raise WeightError(
                f"{label}: refused: it holds {NOT_DENSE[name]}, and only dense tensors can become weights "
                f"({where}: {op} of {quote(name)}{key_now()})"
            )
        raise WeightError(
            f"{label}: refused: it holds Python objects other than tensors and containers, and trtdsl only loads "
            f"with torch.load(weights_only=True) what torch.save writes for them. ({where}: {op} of "
            f"{quote(name)}{key_now()}{why}){hint(name) if isinstance(what, _Global) else ''}"
        )

    def unfollowable(why: str) -> WeightError:
        return WeightError(
            f"{label}: refused: {where} {why}; torch.save writes no such pickle for tensors and containers, and "
            "trtdsl hands torch no pickle it has not checked"
        )

    try:
        for op, arg, pos in pickletools.genops(stream):
            code = op.name
            if code not in _SUPPORTED:
                raise unfollowable(f"uses the pickle opcode {code} (at byte {pos}), which torch's weights-only "
                                   "unpickler does not read either")  # fmt: skip
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
                if len(stack) < n:
                    raise unfollowable(f"has a {code} with {len(stack)} values before it (at byte {pos})")
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(_Tuple(items))
            elif code == "EMPTY_TUPLE":
                stack.append(_Tuple(()))
            elif code == "EMPTY_DICT":
                stack.append(_DICT)
            elif code == "EMPTY_LIST":
                stack.append(_List())
            elif code in ("APPENDS", "SETITEMS"):
                items, stack = stack, marks.pop()  # the container stays on top
                if code == "APPENDS" and isinstance(stack[-1], _List) and any(map(_tensorish, items)):
                    stack[-1].tensors = True
            elif code == "APPEND":
                item = stack.pop()
                if isinstance(stack[-1], _List) and _tensorish(item):
                    stack[-1].tensors = True
            elif code == "SETITEM":
                del stack[-2:]
            elif code == "BINPERSID":
                pid = stack[-1]
                # torch.save names a storage ('storage', type, key, location, numel): anything else, bytes
                # b'storage' made by _codecs.encode included, is no storage of a checkpoint.
                items = pid.items if isinstance(pid, _Tuple) else ()
                if len(items) > 1 and items[0] == "module" and isinstance(items[1], _Global):  # torch.save(model)
                    refuse("BINPERSID", items[1], ", the source of a class: a pickled module, not its tensors")
                if not items or items[0] != "storage" or type(items[0]) is not str:
                    raise unfollowable(f"has a persistent id that is not a storage's (at byte {pos})")
                if len(items) < 5 or type(items[2]) is not str or not isinstance(items[1], _Global):
                    raise unfollowable(f"has a storage id that is not ('storage', type, key, location, numel) "
                                       f"(at byte {pos})")  # fmt: skip
                seen.storages[items[2]] = (items[1].name, items[4].value if isinstance(items[4], _Int) else None)
                stack[-1] = _STORAGE
            elif code in ("BINGET", "LONG_BINGET"):
                stack.append(memo.get(arg))
            elif code in ("BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif code in ("BININT", "BININT1", "BININT2", "LONG1"):
                stack.append(_Int(int(arg)))
            elif code in ("BINUNICODE", "SHORT_BINSTRING"):
                stack.append(str(arg))
            elif code == "STOP":
                return seen
            elif code != "PROTO":
                stack.append(None)  # a number, None, a bool, an empty list or set
    except WeightError:
        raise
    except (IndexError, ValueError, EOFError) as e:
        raise unfollowable(f"is truncated or malformed ({type(e).__name__}: {e})") from None
    raise unfollowable("ends before its STOP")


def _tensorish(value: object) -> bool:
    """A tensor, a storage, or a tuple or list holding one (at any depth the walk sees)."""
    if value is _STORAGE or (isinstance(value, _Made) and value.by in TENSORS):
        return True
    if isinstance(value, _List):
        return value.tensors
    return isinstance(value, _Tuple) and any(map(_tensorish, value.items))


def _is_dict(value: object) -> bool:
    return value is _DICT or (isinstance(value, _Made) and value.by in DICTS)


def _check_call(fn: object, args: object, refuse: Callable[..., None]) -> None:
    if not isinstance(fn, _Global) or fn.name not in CALLS:
        refuse("REDUCE", fn, ", not one of the calls a weights file may make: the tensor rebuilders, "
                             "OrderedDict, Counter, set, bytes, complex, torch.Size, torch.device")  # fmt: skip
    items = args.items if isinstance(args, _Tuple) else ()
    if fn.name not in TENSORS and _tensorish(args):
        # set(t), OrderedDict(t), torch.Size(t), bytearray(t) iterate a tensor's elements, and a stride-0 tensor
        # over one byte has as many as the file says: torch.save never passes a tensor to them.
        refuse("REDUCE", fn, " on a tensor or storage, which it would iterate element by element")
    sized = not isinstance(args, _Tuple) or any(isinstance(a, _Int) for a in items)
    if fn.name == "builtins.bytearray" and sized:
        refuse("REDUCE", fn, " with a size: a few bytes of pickle could allocate any amount of memory")
    if fn.name == "torch._tensor._rebuild_from_type_v2":
        ok = len(items) == 4 and isinstance(items[0], _Global) and items[0].name in REBUILD
        if not ok or not (isinstance(items[1], _Global) and items[1].name in TENSOR_TYPES):
            first = items[0] if items and isinstance(items[0], _Global) else fn
            refuse("REDUCE", first, " through _rebuild_from_type_v2, which calls what the file names")
