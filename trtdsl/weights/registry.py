"""The format registry: ``@loads(".npz", sniff=...)`` and :func:`load`, which picks a loader.

A loader is ``load_<format>(path, **options) -> WeightStore``. The format is
picked from the file's first bytes (and, for zips, its member names) before
its suffix, so a checkpoint saved under the wrong name still loads. Any
failure inside a loader reaches the user as a :class:`WeightError` naming the
file and the problem, never as a raw h5py/zipfile/numpy traceback.
"""

from __future__ import annotations

import inspect
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from ..argcheck import api
from ..errors import WeightError
from .limits import DEFAULT, Limits, first_line, preview, quote
from .store import WeightStore


class Probe:
    """What sniffers look at: the first bytes, the size, and a zip's member names (read once)."""

    def __init__(self, path: Path, *, trusted: bool = False, limits: Limits = DEFAULT):
        self.path, self.trusted, self.limits = path, trusted, limits
        self.size = path.stat().st_size
        with open(path, "rb") as f:
            self.head = f.read(64)
        self._zip: list[str] | bool | None = False

    @property
    def zip_names(self) -> list[str] | None:
        if self._zip is False:
            self._zip = None
            if self.head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
                try:
                    with zipfile.ZipFile(self.path) as z:
                        self._zip = z.namelist()
                except Exception:  # a broken zip: let the suffix pick, and that loader report it
                    self._zip = None
        return self._zip  # type: ignore[return-value]


@dataclass
class Format:
    name: str
    suffixes: tuple[str, ...]
    fn: Callable[..., WeightStore]
    sniff: Callable[[Probe], bool] | None
    priority: int
    options: list[str] = field(default_factory=list)
    folder: dict[int, tuple[str, ...]] = field(default_factory=dict)  # rank -> file-name patterns


FORMATS: dict[str, Format] = {}
FOLDER_RANKS: dict[int, str] = {}  # rank -> format: one format per rank, so a rank's candidates are one kind


def loads(
    *suffixes: str,
    name: str | None = None,
    sniff: Callable[[Probe], bool] | None = None,
    priority: int = 5,
    folder: int | Mapping[int, Sequence[str]] | None = None,
) -> Callable:
    """Register ``load_<name>`` for ``suffixes``; ``sniff(probe)`` recognizes the format by content.

    Sniffers run by ``priority`` (lowest first), so a specific format (Keras
    ``.h5``) is tried before the generic one it refines (HDF5, priority 9).
    ``folder`` makes a directory holding exactly one such file load it;
    directories try the ranks of all formats lowest first (see :func:`load`).
    ``folder=n`` ranks every file ending in one of ``suffixes`` at ``n``;
    ``folder={n: patterns, ...}`` ranks file names matching the (case-sensitive,
    :func:`fnmatch.fnmatchcase`) patterns instead, for a format whose suffixes
    are too generic to pick a file by (``{4: ("pytorch_model.bin",)}``, not ``*.bin``).
    """
    if folder is None:
        ranks: dict[int, tuple[str, ...]] = {}
    elif isinstance(folder, int):
        ranks = {folder: tuple(f"*{s.lower()}" for s in suffixes)}
    else:
        ranks = {rank: tuple(patterns) for rank, patterns in folder.items()}

    def deco(fn: Callable[..., WeightStore]) -> Callable[..., WeightStore]:
        fmt = name or fn.__name__.removeprefix("load_")
        taken = {rank: FOLDER_RANKS[rank] for rank in ranks if FOLDER_RANKS.get(rank, fmt) != fmt}
        if taken:
            raise ValueError(f"@loads(name={fmt!r}): folder ranks already taken (rank: format): {taken}")
        FOLDER_RANKS.update(dict.fromkeys(ranks, fmt))
        opts = [p for p in inspect.signature(fn).parameters if p != "path"]
        FORMATS[fmt] = Format(fmt, tuple(s.lower() for s in suffixes), fn, sniff, priority, opts, ranks)
        return fn

    return deco


# What each format's file starts with, for the message when none matched.
MAGIC = {
    "zip (npz, .keras, torch)": b"PK\x03\x04",
    "HDF5 (.h5, .keras weights)": b"\x89HDF\r\n\x1a\n",
    ".npy": b"\x93NUMPY",
    "legacy torch pickle": b"\x80\x02\x8a\x0a",
}

# Files a Hugging Face folder holds beside the PyTorch checkpoint, that a folder never loads, and what to do
# instead. Their tensors have other frameworks' names (transformers, too, reads them only when asked: from_tf=True,
# from_flax=True), so picking one would bind nothing; they are named when a folder holds no checkpoint. A Keras 3
# sharded weights index is named too: its variables have names only through a model's config.
NOT_PICKED = {
    "tf_model*.h5": "TensorFlow Keras weights, named by TF scopes rather than PyTorch's names: to load them, "
    "pass the file itself, load('{path}')",
    "*.msgpack": "msgpack (Flax weights), a format trtdsl cannot read: convert it to safetensors, e.g. with "
    "transformers' AutoModel.from_pretrained(folder, from_flax=True).save_pretrained(out)",
    "*.onnx": "an ONNX model, not a weight file: parse it with trtdsl.onnx.parse('{path}')",
    "*.weights.json": "the index of Keras 3 sharded weights (save_weights(..., max_shard_size=...)), whose variables "
    "only the model's config names: pass it as trtdsl.keras.load_model(model_file, weights='{path}')",
}


def detect(path: str | os.PathLike, *, trusted: bool = False, limits: Limits = DEFAULT) -> str:
    """The name of the format that would read ``path`` ('npz', 'h5', 'keras', ...)."""
    path = _existing(path)
    probe = Probe(path, trusted=trusted, limits=limits)
    for fmt in sorted(FORMATS.values(), key=lambda f: f.priority):
        if fmt.sniff is not None:
            try:
                if fmt.sniff(probe):
                    return fmt.name
            except WeightError:  # a refusal (a crashed HDF5 worker, a hostile link) is the answer
                raise
            except Exception:  # a sniffer that trips on garbage just says no
                continue
    name = path.name.lower()
    for fmt in sorted(FORMATS.values(), key=lambda f: -f.priority):
        if any(name.endswith(s) for s in fmt.suffixes):  # ".safetensors.index.json" has two dots
            return fmt.name
    for pattern, hint in NOT_PICKED.items():  # a file of another kind, named by its suffix: what to do with it
        if fnmatchcase(name, pattern) and not name.endswith(".h5"):  # (real HDF5 was sniffed above)
            raise WeightError(f"{path.name}: does not start like any weight format trtdsl reads; by its name, "
                              f"{hint.format(path=path)}")  # fmt: skip
    known = sorted({s for f in FORMATS.values() for s in f.suffixes})
    expected = ", ".join(f"{k} {v!r}" for k, v in MAGIC.items())
    raise WeightError(
        f"{path.name}: not a weight file trtdsl can read: it starts with {preview(probe.head)}, expected one of "
        f"{expected}, a safetensors header length then '{{', a *.safetensors.index.json or *.bin.index.json, or a .wts weight count line; known suffixes: "
        f"{', '.join(known)}. Pass format=... to force one of {sorted(FORMATS)}."
    )


@api("trtdsl.weights")
def load(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    strict: bool = False,
    trusted: bool = False,
    limits: Limits | None = None,
    **options: Any,
) -> WeightStore:
    """Load a weight file as a :class:`WeightStore`, picking the format from its content and suffix.

    ``format`` forces a loader (``'npz'``, ``'npy'``, ``'h5'``, ``'keras_h5'``,
    ``'keras'``, ``'safetensors'``, ``'safetensors_index'``, ``'wts'``, ``'torch'``,
    ``'torch_index'``). A sharded checkpoint loads from its index
    (``model.safetensors.index.json``, ``pytorch_model.bin.index.json``) or from
    the directory holding it. A directory (a Hugging Face model or PEFT adapter
    folder) loads the first of these it holds exactly one of:

    1. a ``*.safetensors.index.json``;
    2. a ``*.safetensors`` file (``model.safetensors``, ``adapter_model.safetensors``);
    3. a ``*.bin.index.json`` (or ``*.pt.index.json``, ``*.pth.index.json``);
    4. a ``pytorch_model.bin`` or ``adapter_model.bin`` (these exact names, as
       ``transformers`` and ``peft`` write them: other ``.bin`` files, such as
       ``training_args.bin``, are not checkpoints);
    5. a ``*.pt`` or ``*.pth`` file.

    So safetensors wins over PyTorch, as in ``transformers``; two files of the
    first kind found are an error that lists them. ``tf_model.h5``,
    ``flax_model.msgpack`` and other files are never picked: a folder holding
    no checkpoint is an error that lists what it holds and says what to do
    with those (a ``tf_model.h5`` loads when passed itself). ``strict=True``
    makes :meth:`WeightStore.finish` (and leaving a ``with`` block) raise for
    weights no layer took. Other options go to the loader, e.g. ``mmap=False``.

    Every file is untrusted by default: it can only give arrays or a
    :class:`WeightError`. HDF5 structure is read in a worker process, so a
    corrupt file that crashes or hangs HDF5's C library cannot take this
    process down; ``trusted=True`` reads HDF5 in this process instead, for
    files you wrote yourself. ``limits`` (:class:`Limits`) raises the bounds on
    sizes, ratios and counts a file may declare.

    Example::

        w = trtdsl.weights.load("yolov5s.wts")
        w = trtdsl.weights.load("model.keras")     # names like 'conv2d/kernel'
        w = trtdsl.weights.load("Llama-3-8B/")     # model.safetensors.index.json and its shards
        w = trtdsl.weights.load("bert-base-uncased/")  # pytorch_model.bin, beside tf_model.h5 and flax_model.msgpack
    """
    path = _existing(path)
    limits = limits or DEFAULT
    name = format or detect(path, trusted=trusted, limits=limits)
    fmt = FORMATS.get(name)
    if fmt is None:
        raise WeightError(f"unknown weight format {name!r}; known: {sorted(FORMATS)}")
    own = [o for o in fmt.options if o not in ("trusted", "limits")]  # load() itself takes those two
    bad = sorted(set(options) - set(own))
    if bad:
        raise TypeError(f"load(): format {fmt.name!r} takes options {own}, not {bad}")
    given = {"trusted": trusted, "limits": limits}
    options.update({k: v for k, v in given.items() if k in fmt.options})  # only loaders that use them
    try:
        store = fmt.fn(path, **options)
    except WeightError:
        raise
    except RecursionError as e:
        raise WeightError(f"{path.name}: cannot read it as {fmt.name}: it nests too deeply") from e
    except MemoryError as e:
        raise WeightError(f"{path.name}: cannot read it as {fmt.name}: it asks for more memory than there is") from e
    except Exception as e:
        raise WeightError(f"{path.name}: cannot read it as {fmt.name}: {type(e).__name__}: {first_line(e)}") from e
    store.strict = strict
    return store


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise WeightError(f"{path}: no such weight file")
    if path.is_dir():
        path = _in_directory(path)
    if not path.is_file():
        raise WeightError(f"{path}: is not a file")
    return path


def _in_directory(folder: Path) -> Path:
    """The one checkpoint a directory holds: the folder ranks of all formats (``@loads(..., folder=...)``), lowest first.

    The ranks give the order :func:`load` documents, safetensors before PyTorch
    as in ``transformers``. Only this narrow rule: a directory is how Hugging
    Face checkpoints are handed around, and anything less clear-cut (two files
    of the first rank found, or none) is the caller's choice.
    """
    try:
        names = sorted(os.listdir(folder))
    except OSError as e:
        raise WeightError(f"{folder}: cannot list the directory: {e.strerror}") from e
    rules = sorted((rank, patterns) for f in FORMATS.values() for rank, patterns in f.folder.items())
    for _, patterns in rules:
        found = [n for n in names if any(fnmatchcase(n, p) for p in patterns)]
        if len(found) == 1:
            return inside_folder(folder, folder / found[0])
        if found:
            raise WeightError(
                f"{folder}: is a directory with {len(found)} {'/'.join(patterns)} files ({_listed(found, 5)}); "
                "pass the one to load"
            )
    wanted = ", or ".join(f"one {'/'.join(patterns)}" for _, patterns in rules)
    holds = f"it holds {_listed(names, 8)}" if names else "it is empty"
    hints = [
        f". {_listed([n], 1)}: {hint.format(path=folder / n)}"
        for n in names
        for pattern, hint in NOT_PICKED.items()
        if fnmatchcase(n, pattern)
    ]
    raise WeightError(f"{folder}: is not a file, and not a directory holding {wanted}; {holds}" + "".join(hints[:3]))


def inside_folder(folder: Path, file: Path) -> Path:
    """``file``, a name in ``folder``, unless it is a link that leads out of the folder: the folder chose it, not
    the caller, so it may not make a loader read another file (a folder's checkpoint, a Keras model saved
    unzipped). A Hugging Face cache snapshot's links (``snapshots/<rev>/model.safetensors`` ->
    ``../../blobs/<sha>``) may lead into that cache's ``blobs``."""
    try:
        real, home = file.resolve(strict=True), folder.resolve(strict=True)
    except (OSError, RuntimeError) as e:  # a dangling link, a loop
        raise WeightError(f"{file}: cannot resolve it ({type(e).__name__}: {e})") from None
    allowed = {home} | {p.parent.parent / "blobs" for p in (home, *home.parents) if p.parent.name == "snapshots"}
    if real.parent not in allowed:
        raise WeightError(
            f"{file}: is a link that leads out of {folder} (to {quote(str(real), 120)}); the files a folder is read "
            "by must lie in it: pass the file itself to load it"
        )
    return file


def _listed(names: list[str], n: int) -> str:
    """The first ``n`` names, each cut at 80 characters with what is not printable escaped, and how many in all."""
    shown = ["".join(c if c.isprintable() else repr(c)[1:-1] for c in name[:80]) for name in names[:n]]
    return ", ".join(shown) + (f", ... ({len(names)} in all)" if len(names) > n else "")
