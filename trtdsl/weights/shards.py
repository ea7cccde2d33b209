"""Sharded checkpoints (the Hugging Face layout): an index that names, for each tensor, the shard file holding it.

``model.safetensors.index.json`` and ``pytorch_model.bin.index.json`` share one
layout, ``{"metadata": {...}, "weight_map": {"tensor name": "shard file name", ...}}``,
and share this one path: the index is read as untrusted JSON (bounded by
:class:`Limits`), each shard is resolved to a regular file in the index's folder,
checked to be of the index's format, opened once through that format's
single-file loader, and checked to hold exactly the tensors the index places in
it. A format takes part with a :class:`ShardFormat` made by :func:`sharded`;
the loaders are ``load_safetensors_index`` and ``load_torch_index``.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightError
from .limits import Limits, first_line, quote, read_capped
from .registry import Probe
from .store import Entry, WeightStore

OpenShard = Callable[[Path, bool, Limits], tuple[dict[str, Entry], Callable[[], None]]]


@dataclass
class ShardFormat:
    """One format's sharded checkpoints: what its index and shards are called, and how a shard opens.

    Attributes:
        name: the store's format, as ``load(format=...)`` takes it (``'torch_index'``).
        index: the index in messages (``'PyTorch shard index'``): "not a PyTorch shard index".
        shard: what each shard must be (``'a PyTorch checkpoint'``).
        sniff: whether a shard's first bytes are this format's (the single-file loader's sniffer).
        open: ``open(file, mmap, limits)`` -> the shard's entries and what closes them.
    """

    name: str
    index: str
    shard: str
    sniff: Callable[[Probe], bool]
    open: OpenShard


SHARD_FORMATS: dict[str, ShardFormat] = {}


def sharded(fmt: ShardFormat) -> ShardFormat:
    """Register ``fmt``, so that a shard of this format named by another format's index is called what it is."""
    SHARD_FORMATS[fmt.name] = fmt
    return fmt


def index_sniffer(*suffixes: str) -> Callable[[Probe], bool]:
    """A sniffer for an index: its name ends with one of ``suffixes`` and it starts like a JSON object."""
    ends = tuple(s.lower() for s in suffixes)
    return lambda p: p.path.name.lower().endswith(ends) and p.head.lstrip()[:1] == b"{"


def load_index(path: Path, fmt: ShardFormat, mmap: bool, limits: Limits) -> WeightStore:
    """The store of every tensor of every shard the index at ``path`` names, each shard opened once by ``fmt``.

    A shard named with a path, one that is not a regular file or whose links
    lead out of the folder, a shard of another format, a tensor the index places
    in a shard that lacks it, and a tensor a shard holds that the index does not
    place there are each a :class:`WeightError`. Closing the store closes every shard.
    """
    weight_map = _weight_map(path, fmt, limits)
    placed: dict[str, set[str]] = {}
    for tensor, shard in weight_map.items():
        placed.setdefault(shard, set()).add(tensor)
    if len(placed) > limits.max_shards:
        raise WeightError(
            f"{path.name}: the index names {len(placed)} shard files, over limits.max_shards={limits.max_shards}"
        )
    entries: dict[str, Entry] = {}
    closers: list[Callable[[], None]] = []
    try:
        for shard in sorted(placed):
            file = shard_file(path, shard)
            _check_format(path, shard, file, fmt, limits)
            try:
                got, close = fmt.open(file, mmap, limits)
            except WeightError:
                raise
            except Exception as e:  # the format library's own refusals (safetensors, torch.load)
                raise WeightError(f"{path.name}: shard {quote(shard)}: {type(e).__name__}: {first_line(e)}") from e
            closers.append(close)
            _check_shard(path, shard, set(got), placed[shard], weight_map)
            entries.update(got)
    except BaseException:
        _close_all(closers)
        raise
    return WeightStore.from_entries(path, fmt.name, entries, close=lambda: _close_all(closers))


def _weight_map(path: Path, fmt: ShardFormat, limits: Limits) -> dict[str, str]:
    raw = read_capped(path, limits, "index")
    try:
        index = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise WeightError(f"{path.name}: index is not UTF-8 JSON ({type(e).__name__}: {e})") from e
    expected = 'expected {"metadata": {...}, "weight_map": {"tensor name": "shard file name", ...}}'
    not_index = f"{path.name}: not a {fmt.index}: {expected}"
    if not isinstance(index, dict):
        raise WeightError(f"{not_index}; found {type(index).__name__}")
    if "weight_map" not in index:
        keys = ", ".join(quote(k, 40) for k in list(index)[:8])
        raise WeightError(f"{not_index}; found no weight_map (keys: {keys})")
    if not isinstance(index["weight_map"], dict):
        raise WeightError(f"{not_index}; weight_map is {type(index['weight_map']).__name__}")
    if not isinstance(index.get("metadata", {}), dict):
        raise WeightError(f"{path.name}: {fmt.index} metadata is {type(index['metadata']).__name__}; {expected}")
    weight_map = index["weight_map"]
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str):
            raise WeightError(
                f"{path.name}: weight_map[{quote(tensor)}] is {type(shard).__name__} {quote(repr(shard))}, "
                "expected a shard file name"
            )
    if not weight_map:
        raise WeightError(f"{path.name}: the {fmt.index}'s weight_map names no tensors")
    return weight_map


def shard_file(index: Path, shard: str) -> Path:
    """``shard`` as a regular file in the index's folder, or a WeightError; nothing is opened before this.

    The name must be a plain file name; after links, the file must lie in the index's folder as given
    or, for an index that is a link (the Hugging Face cache links ``snapshots/<rev>/*`` to
    ``../../blobs/<sha>``), in the folder the index itself lies in. Every sharded format checks its
    shards here (Keras 3's too, :mod:`.keras_shards`).
    """
    folders = {index.parent.resolve(), index.resolve().parent}
    where = f"{index.name}: shard {quote(shard)}"
    bad = not shard or shard in (".", "..") or any(c in shard for c in "/\\\0") or os.path.isabs(shard)
    if bad or not _encodable(shard):
        raise WeightError(f"{where}: expected a plain file name in the index's folder, not a path")
    file = index.parent / shard
    try:
        mode = os.stat(file).st_mode  # follows links: what would be opened
        real = file.resolve(strict=True)
    except FileNotFoundError:
        raise WeightError(f"{where}: no such file in {index.parent}") from None
    except OSError as e:  # a link loop, a name too long
        raise WeightError(f"{where}: cannot stat it ({type(e).__name__}: {e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        raise WeightError(f"{where}: expected a regular file, found a {_kind(mode)}")
    if real.parent not in folders:
        raise WeightError(f"{where}: is a link that leads out of the index's folder")
    return file


def _encodable(name: str) -> bool:
    """Whether ``name`` is a file name this system can hold: JSON's '\\ud800' (a lone surrogate) is none."""
    try:
        os.fsencode(name)
    except UnicodeEncodeError:
        return False
    return True


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"


def _check_format(index: Path, shard: str, file: Path, fmt: ShardFormat, limits: Limits) -> None:
    """A shard that is plainly another sharded format's file (a safetensors shard in a PyTorch index) is named so.

    A shard that is no known format's goes on to ``fmt``'s loader, whose message says what it expected.
    """
    probe = Probe(file, limits=limits)
    if _sniffs(fmt, probe):
        return
    other = next((o for o in SHARD_FORMATS.values() if o is not fmt and _sniffs(o, probe)), None)
    if other is not None:
        raise WeightError(
            f"{index.name}: shard {quote(shard)}: is {other.shard}, expected {fmt.shard} "
            f"(the shards of a {fmt.index} are all of its format)"
        )


def _sniffs(fmt: ShardFormat, probe: Probe) -> bool:
    try:
        return bool(fmt.sniff(probe))
    except WeightError:
        raise
    except Exception:  # a sniffer that trips on garbage just says no, as in registry.detect
        return False


def _check_shard(index: Path, shard: str, got: set[str], want: set[str], weight_map: dict[str, str]) -> None:
    """Every tensor the index places in ``shard`` is there, and nothing else is."""
    extra = sorted(got - want)
    if extra:
        name = extra[0]
        if name in weight_map:
            raise WeightError(
                f"{index.name}: tensor {quote(name)} is in shard {quote(shard)} and in shard "
                f"{quote(weight_map[name])}, where the index places it; a tensor must be in one shard only"
            )
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        raise WeightError(
            f"{index.name}: shard {quote(shard)} holds {quote(name)}{more}, which the index does not name"
        )
    missing = sorted(want - got)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise WeightError(
            f"{index.name}: the index places tensor {quote(missing[0])}{more} in shard {quote(shard)}, "
            f"which does not hold it ({len(got)} tensors)"
        )


def _close_all(closers: list[Callable[[], None]]) -> None:
    while closers:
        closers.pop()()
