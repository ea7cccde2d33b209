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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WeightError
from .limits import DEFAULT, Limits, first_line, preview
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
    folder: int | None = None


FORMATS: dict[str, Format] = {}


def loads(
    *suffixes: str,
    name: str | None = None,
    sniff: Callable[[Probe], bool] | None = None,
    priority: int = 5,
    folder: int | None = None,
) -> Callable:
    """Register ``load_<name>`` for ``suffixes``; ``sniff(probe)`` recognizes the format by content.

    Sniffers run by ``priority`` (lowest first), so a specific format (Keras
    ``.h5``) is tried before the generic one it refines (HDF5, priority 9).
    ``folder`` makes a directory holding one file of these suffixes load it;
    directories try such formats by this rank, lowest first (see :func:`load`).
    """

    def deco(fn: Callable[..., WeightStore]) -> Callable[..., WeightStore]:
        fmt = name or fn.__name__.removeprefix("load_")
        opts = [p for p in inspect.signature(fn).parameters if p != "path"]
        FORMATS[fmt] = Format(fmt, tuple(s.lower() for s in suffixes), fn, sniff, priority, opts, folder)
        return fn

    return deco


# What each format's file starts with, for the message when none matched.
MAGIC = {
    "zip (npz, .keras, torch)": b"PK\x03\x04",
    "HDF5 (.h5, .keras weights)": b"\x89HDF\r\n\x1a\n",
    ".npy": b"\x93NUMPY",
    "legacy torch pickle": b"\x80\x02\x8a\x0a",
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
    known = sorted({s for f in FORMATS.values() for s in f.suffixes})
    expected = ", ".join(f"{k} {v!r}" for k, v in MAGIC.items())
    raise WeightError(
        f"{path.name}: not a weight file trtdsl can read: it starts with {preview(probe.head)}, expected one of "
        f"{expected}, a safetensors header length then '{{', a *.safetensors.index.json or *.bin.index.json, or a .wts weight count line; known suffixes: "
        f"{', '.join(known)}. Pass format=... to force one of {sorted(FORMATS)}."
    )


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
    the directory holding it: a directory must hold exactly one
    ``*.safetensors.index.json``, else exactly one ``.safetensors`` file, else
    exactly one ``*.bin.index.json`` (or ``.pt``/``.pth``); so a folder with both
    a safetensors and a PyTorch index loads the safetensors one, as Hugging Face
    ``transformers`` does. ``strict=True``
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
    """The one checkpoint a directory holds: the formats registered with a ``folder`` rank, lowest first.

    The ranks (``@loads(..., folder=n)``) give the order :func:`load` documents,
    safetensors before PyTorch as in ``transformers``. Only this narrow rule: a
    directory is how Hugging Face checkpoints are handed around, and anything
    less clear-cut (two files of the first format found) is the caller's choice.
    """
    ranked = sorted((f for f in FORMATS.values() if f.folder is not None), key=lambda f: f.folder)
    for fmt in ranked:
        found = sorted({p.name for s in fmt.suffixes for p in folder.glob(f"*{s}")})
        if len(found) == 1:
            return folder / found[0]
        if found:
            shown = ", ".join(found[:5]) + (" ..." if len(found) > 5 else "")
            raise WeightError(
                f"{folder}: is a directory with {len(found)} {_patterns(fmt)} files ({shown}); pass the one to load"
            )
    wanted = ", or ".join(f"one {_patterns(f)}" for f in ranked)
    raise WeightError(f"{folder}: is not a file, and not a directory holding {wanted}")


def _patterns(fmt: Format) -> str:
    return "/".join(f"*{s}" for s in fmt.suffixes)
