"""Keras 3 sharded weights: ``save_weights("x.weights.json", max_shard_size=...)``.

Keras writes shards ``x_00000.weights.h5, ...`` beside a JSON index that places each ``vars``
group (``/layers/dense/vars``) in the shards holding its variables; one layer's variables may
straddle two shards. :func:`open_shards` checks the index (bounded, no duplicate keys), every
shard name (a plain file name beside the index, a regular file, not a link out of the folder)
before any shard is opened, and then that the shards hold exactly what the index places in
them; :class:`ShardView` reads them as the one HDF5 file they were cut from, which
:func:`trtdsl.weights.keras.load_keras_weights` names through the model's config.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from ..errors import WeightError
from ..jsonstrict import DuplicateKey, unique_keys
from .h5 import Dataset, Group, H5Image, Node
from .limits import DEFAULT, Limits, first_line, quote, read_capped
from .shards import shard_file
from .store import Entry

_EXPECTED_INDEX = (
    'expected {"metadata": {...}, "weight_map": {"/layers/<group>/vars": ["<name>_00000.weights.h5", ...], ...}}, '
    "as Keras' save_weights(..., max_shard_size=...) writes it"
)
_VARS_GROUP = re.compile(r"(/[^/]+)*/vars")  # '/layers/dense/vars'; '/vars' holds the model's own variables


def open_shards(
    index: Path, *, mmap: bool = True, trusted: bool = False, limits: Limits = DEFAULT
) -> tuple[ShardView, Callable[[], None]]:
    """The shards a Keras 3 sharded-weights index names, as one HDF5 view, and the function closing them.

    Every shard name is checked before any shard is opened; each shard is then checked to hold exactly
    what the index places in it.
    """
    placed = _shard_map(index, limits)
    files = {shard: shard_file(index, shard) for shard in placed}  # every name checked before any file is opened
    images: dict[str, H5Image] = {}

    def close() -> None:
        for image in images.values():
            image.close()

    try:
        for shard, file in files.items():
            images[shard] = H5Image(file, mmap=mmap, trusted=trusted, limits=limits,
                                    label=f"{index.name}: shard {quote(shard)}")  # fmt: skip
            images[shard].refuse_links()
        return ShardView(index.name, images, placed), close
    except BaseException:
        close()
        raise


def _shard_map(index: Path, limits: Limits) -> dict[str, set[str]]:
    """Shard file name -> the ``vars`` groups (``layers/dense/vars``) the index places in it, in the index's order."""
    raw = read_capped(index, limits, "sharded weights index")
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=unique_keys)
    except DuplicateKey as e:
        raise WeightError(f"{index.name}: the sharded weights index names key {quote(e.key)} twice") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise WeightError(f"{index.name}: sharded weights index is not UTF-8 JSON ({first_line(e)})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("weight_map"), dict):
        found = (
            f"keys {', '.join(quote(k, 40) for k in list(doc)[:8])}" if isinstance(doc, dict) else type(doc).__name__
        )
        raise WeightError(f"{index.name}: not a Keras sharded weights index: {_EXPECTED_INDEX}; found {found}")
    if not isinstance(doc.get("metadata", {}), dict):
        raise WeightError(f"{index.name}: metadata is {type(doc['metadata']).__name__}; {_EXPECTED_INDEX}")
    placed: dict[str, set[str]] = {}
    for group, shards in doc["weight_map"].items():
        where = f"{index.name}: weight_map[{quote(group)}]"
        if not _VARS_GROUP.fullmatch(group) or any(p in (".", "..") for p in group.split("/")):
            raise WeightError(f"{where}: expected the path of a 'vars' group, like '/layers/dense/vars'")
        names = [shards] if isinstance(shards, str) else shards
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise WeightError(
                f"{where} is {type(shards).__name__} {repr(shards)[:60]}: expected a shard file name or a "
                "non-empty list of them"
            )
        for name in names:
            if group[1:] in placed.get(name, ()):
                raise WeightError(f"{where} lists shard {quote(name)} twice")
            placed.setdefault(name, set()).add(group[1:])
    if len(placed) > limits.max_shards:
        raise WeightError(f"{index.name}: names {len(placed)} shard files, over limits.max_shards={limits.max_shards}")
    return placed


class ShardView:
    """A sharded index's shards as the one HDF5 file Keras cut them from: the union of their objects.

    A variable held by two shards, or held where the index does not place its group, is refused: the
    index and the shards must agree, so no shard's copy is picked over another's. Each variable is read
    through the image of the shard holding it.
    """

    def __init__(self, label: str, images: dict[str, H5Image], placed: dict[str, set[str]]):
        self.label = label
        self.nodes: dict[str, dict] = {"": {"kind": "group", "attrs": {}}}  # a root even when the index names nothing
        self.children: dict[str, list[str]] = {}
        self._home: dict[str, tuple[str, H5Image]] = {}  # variable path -> its shard
        for shard, image in images.items():
            held = set()
            for path, info in image.nodes.items():
                if info["kind"] == "dataset":
                    self._place(shard, image, path, placed)
                    held.add(path.rpartition("/")[0])
                seen = self.nodes.get(path)
                if seen is None:
                    self.nodes[path] = info
                    if path:
                        parent, _, leaf = path.rpartition("/")
                        self.children.setdefault(parent, []).append(leaf)
                elif seen["kind"] != info["kind"]:
                    raise WeightError(f"{label}: {quote(path)} is a {seen['kind']} in one shard and a "
                                      f"{info['kind']} in shard {quote(shard)}")  # fmt: skip
            empty = sorted(placed[shard] - held)
            if empty:
                raise WeightError(
                    f"{label}: the index places {quote('/' + empty[0])} in shard {quote(shard)}, which holds no "
                    "variables of it"
                )

    def _place(self, shard: str, image: H5Image, path: str, placed: dict[str, set[str]]) -> None:
        if path in self._home:
            raise WeightError(
                f"{self.label}: variable {quote(path)} is in shard {quote(self._home[path][0])} and in shard "
                f"{quote(shard)}; a variable must be in one shard only"
            )
        group = path.rpartition("/")[0]
        if group not in placed[shard]:
            homes = sorted(s for s, groups in placed.items() if group in groups)
            there = f"in {', '.join(quote(h) for h in homes)}" if homes else "in no shard"
            raise WeightError(
                f"{self.label}: shard {quote(shard)} holds {quote(path)}, but the index places {quote('/' + group)} "
                f"{there}"
            )
        self._home[path] = (shard, image)

    @property
    def root(self) -> Group:
        return Group(self, "")  # type: ignore[arg-type]  # the view answers what Group asks of an image

    def node(self, name: str) -> Node | None:
        path = "/".join(p for p in name.split("/") if p and p != ".")
        info = self.nodes.get(path)
        if info is None:
            return None
        kind = {"group": Group, "dataset": Dataset}.get(info["kind"])
        return kind(self, path) if kind else None  # type: ignore[arg-type]

    def entry(self, ds: Dataset) -> Entry | None:
        _, image = self._home[ds.path]
        return image.entry(Dataset(image, ds.path))
