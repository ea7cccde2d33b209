"""PyTorch ``.pt``/``.pth`` state dicts, only through ``torch.load(weights_only=True)``.

``weights_only=True`` makes torch's unpickler refuse anything but tensors and
plain containers, so a checkpoint cannot run code. Zip-format checkpoints are
opened with ``mmap=True``: tensor storages stay in the file and
``Tensor.numpy()`` shares them, so no copy is made. Nested dicts (``{'model':
{...}}``) are flattened with ``.``; values that are not tensors are skipped.
bfloat16 is widened to float32 (one copy). float8 tensors (``float8_e4m3fn``,
``float8_e5m2``, ``float8_e8m0fnu``, ``float8_e4m3fnuz``, ``float8_e5m2fnuz``)
have no NumPy dtype either; they come out as arrays of the ``ml_dtypes`` type of
the same name over the same storage (``t.view(torch.uint8).numpy().view(type)``:
no copy). Other types NumPy cannot hold (``float4_e2m1fn_x2``, ``complex32``)
are refused by name. torch (2.14 at least) writes float8 tensors in the legacy
format but cannot read them back; such a file is a :class:`WeightError` that says so.

A checkpoint is untrusted: a zip one is checked by :class:`.zipcheck.Archive`
first (duplicate members, overlaps, names), its pickle's CRC-32 before torch
reads it and every storage's before the first tensor is handed out. Its
pickle may call only what ``torch.save`` writes for tensors and containers
(:mod:`.torchpickle`: ``bytearray(1 << 40)`` and ``torch.FloatTensor(n)`` are
allowed by torch but make memory, not weights), and a tensor may span no more
bytes than its storage holds by more than a zip member may inflate (a stride
of 0 makes 4 bytes a tensor of any size). The
flattening visits at most ``limits.max_entries`` values, so shared references
(``x = [x, x]`` forty times is 2**40 paths in 1.8 KB) cannot make it run forever,
and two values that flatten to one name are an error, never a silent overwrite.

A sharded checkpoint (``pytorch_model.bin.index.json`` and the
``pytorch_model-00001-of-00002.bin`` files it names, as ``transformers`` writes
them) loads every shard this way into one store; see :func:`load_torch_index`. A folder
holding an unsharded ``pytorch_model.bin`` (or a PEFT adapter's ``adapter_model.bin``) loads it.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from ..errors import WeightError
from . import torchpickle
from .limits import DEFAULT, Limits, first_line, preview, quote
from .registry import Probe, loads
from .shards import ShardFormat, index_sniffer, load_index, sharded
from .store import Entry, WeightStore
from .zipcheck import Archive

# The legacy (non-zip) format starts with torch's magic number pickled at protocol 2:
# PROTO 2, LONG1 of 10 bytes, 0x1950a86a20f9469cfc6c little-endian (torch/serialization.py MAGIC_NUMBER).
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _sniff(p: Probe) -> bool:
    names = p.zip_names or []
    # torch.save writes '<archive>/data.pkl'; the legacy format is a pickle that starts with torch's magic number.
    return any(n.endswith("/data.pkl") or n == "data.pkl" for n in names) or p.head.startswith(LEGACY_MAGIC)


def _whole_module_hint(message: str) -> str:
    """A hint for the usual cause of torch's refusal: ``torch.save(model)`` pickles the module's class."""
    found = re.search(r"GLOBAL ([A-Za-z_][\w.]*) was not an allowed global", message)
    return _module_hint(found.group(1)) if found else ""


def _module_hint(name: str) -> str:
    """The hint for a refused global ``name`` that is a class of the user's (a whole pickled model)."""
    root = name.split(".", maxsplit=1)[0]
    if root in ("builtins", "collections", "numpy", "_codecs") or (
        root == "torch" and not name.startswith("torch.nn.")
    ):
        return ""
    return (
        f" It pickles a {quote(name, 80)} object, as torch.save(model) does with a whole model: save its tensors "
        "instead, with torch.save(model.state_dict(), path), and load that"
    )


def _check_pickles(path: Path, archive: Archive | None, torch: Any) -> None:
    """Every pickle torch would read, through :func:`.torchpickle.check`: a zip's ``data.pkl``, or the legacy
    format's pickles (magic number, protocol, system info, the object, its storage keys), in file order; and
    the storages the tensors use against what the file holds for them."""
    if archive is not None:
        for name in archive.members:
            if name == "data.pkl" or name.endswith("/data.pkl"):
                walked = torchpickle.check(io.BytesIO(archive.read(name)), path.name, name, _module_hint)
                _check_zip_storages(path, archive, name.removesuffix("data.pkl"), walked.storages, torch)
        return
    with open(path, "rb") as fh:
        walks = [torchpickle.check(fh, path.name, f"pickle {i + 1} of 5", _module_hint) for i in range(4)]
        listed = _storage_list(fh, path.name)
    # The legacy format fills only the storages its last pickle lists: one the object uses that is not listed
    # would be handed out as torch allocated it, uninitialized (whatever this process freed last).
    unlisted = sorted(set(walks[3].storages) - set(listed))
    if unlisted:
        raise WeightError(
            f"{path.name}: refused: the tensors use storage {quote(unlisted[0])}, which the file's storage list does "
            f"not hold ({len(unlisted)} such); its data would be uninitialized memory"
        )


def _storage_list(fh: Any, label: str) -> list[str]:
    """The legacy format's last pickle, read strictly as what torch.save writes: a flat list of key strings."""
    allowed = {"PROTO", "EMPTY_LIST", "MARK", "BINUNICODE", "SHORT_BINSTRING", "BINPUT", "LONG_BINPUT", "APPEND",
               "APPENDS", "STOP"}  # fmt: skip
    keys: list[str] = []
    try:
        for op, arg, pos in pickletools.genops(fh):
            if op.name not in allowed:
                raise WeightError(
                    f"{label}: refused: its storage list (pickle 5 of 5) holds {op.name} at byte {pos}; "
                    "torch.save writes a list of key strings there"
                )
            if op.name in ("BINUNICODE", "SHORT_BINSTRING"):
                keys.append(str(arg))
            if op.name == "STOP":
                return keys
    except (ValueError, EOFError) as e:
        raise WeightError(f"{label}: refused: its storage list (pickle 5 of 5) is malformed ({e})") from None
    raise WeightError(f"{label}: refused: its storage list (pickle 5 of 5) ends before its STOP")


def _check_zip_storages(path: Path, archive: Archive, prefix: str, storages: dict, torch: Any) -> None:
    """Each storage the pickle uses is a stored (not compressed) member ``<archive>/data/<key>`` of exactly the
    bytes the pickle gives it: torch maps the member from its offset without checking either (a compressed one
    came out as its compressed bytes, a longer one ran into the next members)."""
    for key, (kind, numel) in storages.items():
        name = f"{prefix}data/{key}"
        member = archive.members.get(name)
        info = member.info if member is not None else None
        if info is None:
            raise WeightError(
                f"{path.name}: refused: the tensors use storage {quote(key)}, but it holds no {quote(name)}"
            )
        if info.compress_type != zipfile.ZIP_STORED:
            raise WeightError(
                f"{path.name}: refused: storage member {quote(name)} is compressed; torch maps storages in place, so "
                "it would read the compressed bytes as data (torch.save stores them uncompressed)"
            )
        with warnings.catch_warnings():  # torch warns that TypedStorage classes are deprecated when asked
            warnings.simplefilter("ignore", UserWarning)
            cls = getattr(torch, kind.rsplit(".", 1)[-1], None) if kind.startswith("torch.") else None
            dtype = getattr(cls, "dtype", None) if cls is not None else None
        itemsize = 1 if kind.endswith(".UntypedStorage") else getattr(dtype, "itemsize", None)
        if numel is None or itemsize is None:
            raise WeightError(f"{path.name}: refused: storage {quote(key)} has type {quote(kind)} and numel {numel!r}")
        if numel * itemsize != info.file_size:
            raise WeightError(
                f"{path.name}: refused: storage {quote(key)} is {numel} x {itemsize} bytes in the pickle but member "
                f"{quote(name)} holds {info.file_size}; torch would read past it into the next members"
            )


def _flatten(obj: Any, torch: Any, limits: Limits, label: str) -> dict[str, Any]:
    """Tensors by dotted path. Iterative, bounded by ``limits``, refusing cycles and colliding names."""
    out: dict[str, Any] = {}
    stack: list[tuple[Any, str, int, tuple[int, ...]]] = [(obj, "", 0, ())]
    seen = 0
    while stack:
        value, prefix, depth, ancestors = stack.pop()
        seen += 1
        if seen > limits.max_entries:
            raise WeightError(
                f"{label}: refused: the checkpoint holds more than limits.max_entries={limits.max_entries} values "
                "(containers shared by reference multiply the paths); raise it with load(..., limits=Limits(...)) "
                "if you trust the file"
            )
        if isinstance(value, torch.Tensor):
            if prefix in out:
                raise WeightError(
                    f"{label}: two tensors flatten to the name {quote(prefix)} (e.g. a key 'a.b' and a key 'b' "
                    "inside 'a'); rename one before saving"
                )
            out[prefix] = value
            continue
        if isinstance(value, dict):
            items = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            items = [(str(i), v) for i, v in enumerate(value)]
        else:
            continue  # numbers, strings, optimizer settings: not weights
        if id(value) in ancestors:
            raise WeightError(f"{label}: refused: container {quote(prefix or '<root>')} contains itself")
        if depth >= limits.max_depth:
            raise WeightError(f"{label}: refused: containers nest deeper than limits.max_depth={limits.max_depth}")
        inner = (*ancestors, id(value))
        for k, v in reversed(items):  # reversed: the stack pops them in file order
            stack.append((v, f"{prefix}.{k}" if prefix else k, depth + 1, inner))
    return out


# torch's float8 types, by name: ml_dtypes has a type of each name with the same bits. A torch
# that lacks one (float8_e8m0fnu is recent) cannot have read a file holding it.
FLOAT8 = ("float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "float8_e4m3fnuz", "float8_e5m2fnuz")


def _float8(torch: Any) -> dict[Any, np.dtype]:
    return {getattr(torch, n): np.dtype(getattr(ml_dtypes, n)) for n in FLOAT8 if hasattr(torch, n)}


def _numpy_dtype(t: Any, torch: Any, float8: dict[Any, np.dtype], label: str, name: str) -> np.dtype:
    """The dtype ``t`` is handed out in: its NumPy type, float32 for bfloat16, ml_dtypes for float8."""
    if t.dtype == torch.bfloat16:
        return np.dtype(np.float32)
    if t.dtype in float8:
        return float8[t.dtype]
    try:
        return np.dtype(torch.empty(0, dtype=t.dtype).numpy().dtype)
    except (TypeError, RuntimeError) as e:  # "Got unsupported ScalarType Float4_e2m1fn_x2"
        raise WeightError(
            f"{label}: tensor {quote(name)} has dtype {t.dtype}, which trtdsl cannot read; it reads the types "
            f"NumPy has, torch.bfloat16 (as float32) and {', '.join(f'torch.{n}' for n in FLOAT8)}"
        ) from e


# Folder ranks, after both safetensors ranks and the shard index (3): the unsharded file under the exact names
# transformers and peft write (a *.bin glob would pick training_args.bin, a pickled TrainingArguments), then the one
# *.pt/*.pth a folder holds (a torch.save(model.state_dict(), "model.pt") habit).
FOLDER_NAMES = ("pytorch_model.bin", "adapter_model.bin")


@loads(
    ".pt", ".pth", ".bin", ".ckpt", name="torch", sniff=_sniff, priority=7,
    folder={4: FOLDER_NAMES, 5: ("*.pt", "*.pth")},
)  # fmt: skip
def load_torch(path: Path, mmap: bool = True, limits: Limits = DEFAULT) -> WeightStore:
    """A PyTorch checkpoint; needs torch, and refuses files holding anything but tensors and containers."""
    entries, close = _open(path, mmap, limits)
    return WeightStore.from_entries(path, "torch", entries, close=close)


def _open(path: Path, mmap: bool, limits: Limits) -> tuple[dict[str, Entry], Callable[[], None]]:
    """One checkpoint's entries, and what closes its archive (a legacy file has none)."""
    try:
        import torch
    except ImportError:
        raise WeightError(f"{path.name}: reading PyTorch checkpoints needs torch (pip install torch)") from None
    archive = None
    with open(path, "rb") as fh:
        head = fh.read(len(LEGACY_MAGIC))
    is_zip = head[:4] in (b"PK\x03\x04", b"PK\x05\x06")
    if not is_zip and not head.startswith(LEGACY_MAGIC):
        raise WeightError(
            f"{path.name}: not a PyTorch checkpoint: it starts with {preview(head)}, expected a zip (b'PK\\x03\\x04', "
            f"torch.save's format) or the legacy format's pickled magic number {preview(LEGACY_MAGIC, 4)}"
        )
    if is_zip:
        # No map of our own: torch maps the file, and a page mapped twice counts twice in RSS. The CRC-32 reads
        # through the page cache instead.
        archive = Archive(path, limits, mmap=False)
        _check_pickles(path, archive, torch)  # reads data.pkl, which CRC-checks it
        for name in archive.members:
            if "/data/" not in name:  # the pickle and small records: torch parses these now
                archive.verify(name)
        verify = _verifier(archive)
    else:
        verify = None
        _check_pickles(path, None, torch)
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError as e:
                if not mmap or "mmap" not in str(e):
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except AttributeError as e:
        # torch's legacy reader looks up a storage class's dtype, and torch.save gives types that have none
        # (float8, uint16/32/64) an UntypedStorage: it writes these files but cannot read them back.
        if is_zip or "UntypedStorage" not in str(e):
            raise
        raise WeightError(
            f"{path.name}: torch cannot read this legacy-format (non-zip) checkpoint back: it holds a tensor of a "
            f"type with no legacy storage class (float8, uint16, uint32, uint64), and torch.load fails with "
            f"{first_line(e)!r}. Save the tensors again in torch.save's default zip format, which trtdsl reads"
        ) from e
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        why = next((ln for ln in lines if "Unsupported" in ln or "WeightsUnpickler" in ln), lines[0] if lines else "")
        why = why.split(" Please use")[0]  # torch's advice (allow-listing globals) is not trtdsl's to follow
        why = "".join(c if c.isprintable() else repr(c)[1:-1] for c in why[:200])
        raise WeightError(
            f"{path.name}: refused: it holds Python objects other than tensors and containers, and trtdsl only "
            f"loads with torch.load(weights_only=True). ({why}){_whole_module_hint(str(e))}"
        ) from e
    tensors = _flatten(obj, torch, limits, path.name)
    float8 = _float8(torch)
    entries = {}
    for name, t in tensors.items():
        _check_dense(t, torch, limits, path.name, name)
        dtype = _numpy_dtype(t, torch, float8, path.name, name)
        entries[name] = Entry(tuple(t.shape), dtype, _reader(t, torch, verify, dtype if t.dtype in float8 else None))
    return entries, archive.close if archive else (lambda: None)


def _check_dense(t: Any, torch: Any, limits: Limits, label: str, name: str) -> None:
    """A tensor a weight can be: dense, in memory, and no larger than its storage allows.

    A stride of 0 makes a 4-byte storage a tensor of any size (``torch.ones(1).expand(n)``): its bytes, as
    TensorRT copies them, are bounded as a zip member's inflated size is (:meth:`Limits.inflated_ok`).
    """
    if t.layout != torch.strided or t.is_quantized or t.is_nested:
        kind = "quantized" if t.is_quantized else "nested" if t.is_nested else str(t.layout)
        raise WeightError(f"{label}: tensor {quote(name)} is {kind}; only dense tensors can become weights")
    if t.device.type != "cpu":  # map_location='cpu' moved every stored one: this one has no data (meta)
        raise WeightError(f"{label}: tensor {quote(name)} is on device {t.device.type!r}: it holds no data")
    nbytes, stored = t.numel() * t.element_size(), t.untyped_storage().nbytes()
    if not limits.inflated_ok(nbytes, stored):
        raise WeightError(
            f"{label}: refused: tensor {quote(name)} of shape {tuple(t.shape)} and strides {t.stride()} spans "
            f"{nbytes} bytes over a storage of {stored} bytes, past limits (ratio {limits.max_inflate_ratio:g}, "
            f"floor {limits.inflate_floor}, max {limits.max_member_bytes}); raise them with "
            "load(..., limits=Limits(...)) if you trust the file"
        )


def _verifier(archive: Archive):
    """Check every storage member's CRC-32, once, before the first tensor is handed out.

    torch maps all storages from one map of the file, and a tensor does not say
    which member it came from, so the first read checks them all (TensorRT reads
    every byte of every weight at build time anyway).
    """
    done = False

    def verify() -> None:
        nonlocal done
        if not done:
            for name in archive.members:
                archive.verify(name)
            done = True

    return verify


def _reader(t: Any, torch: Any, verify: Any, float8: np.dtype | None):
    def read() -> np.ndarray:
        if verify is not None:
            verify()
        x = t.detach()
        if float8 is not None:  # NumPy has no float8: the bytes, then their ml_dtypes type, both views
            return x.view(torch.uint8).numpy().view(float8)
        if x.dtype == torch.bfloat16:
            x = x.float()  # NumPy has no bfloat16
        return x.numpy()  # shares the (mapped) storage

    return read


# ------------------------------------------------------------------ sharded checkpoints
INDEX_SUFFIXES = (".bin.index.json", ".pt.index.json", ".pth.index.json")
SHARDS = sharded(ShardFormat("torch_index", "PyTorch shard index", "a PyTorch checkpoint", _sniff, _open))


@loads(*INDEX_SUFFIXES, name=SHARDS.name, sniff=index_sniffer(*INDEX_SUFFIXES), priority=4, folder=3)
def load_torch_index(path: Path, mmap: bool = True, limits: Limits = DEFAULT) -> WeightStore:
    """A sharded PyTorch checkpoint (Hugging Face layout): ``pytorch_model.bin.index.json`` and the shards it names.

    The index has the layout of ``model.safetensors.index.json`` and goes
    through the same checks (:func:`.shards.load_index`): each shard is a plain
    file name in the index's folder, a regular file, a PyTorch checkpoint (a
    safetensors shard is refused by name), and holds exactly the tensors the
    index places there. Every shard loads once through :func:`load_torch`, so
    only ``torch.load(weights_only=True)`` ever reads it.

    Example::

        w = trtdsl.weights.load("gpt2/pytorch_model.bin.index.json")  # or load("gpt2")
    """
    return load_index(path, SHARDS, mmap, limits)
