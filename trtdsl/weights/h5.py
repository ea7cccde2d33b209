"""Generic HDF5: every numeric dataset under its path, described by a worker and mapped in place.

HDF5's C library never parses an untrusted file in this process:
:mod:`.h5worker` describes its structure in a separate process as plain data
(:class:`H5Image` holds that description), and this module decides from it.
A dataset stored as one contiguous run of bytes inside the file is
memory-mapped at its offset (no copy, and no HDF5 at all); chunked, compressed
or compact datasets are decoded by the worker and streamed back. Refused:
datasets with external storage, virtual datasets, and soft, external or
user-defined links, so a file can never make trtdsl read another file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WeightError
from . import h5worker
from .h5worker import Window
from .limits import DEFAULT, Limits, quote
from .registry import loads
from .store import Entry, WeightStore

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_described: dict[tuple, dict] = {}  # the last few descriptions: a format sniff and its load ask for the same one

__all__ = ["HDF5_MAGIC", "Dataset", "Group", "H5Image", "Window", "load_h5"]


def _describe(path: Path, base: int, size: int | None, *, trusted: bool, limits: Limits, label: str) -> dict:
    st = path.stat()
    key = (str(path), base, size, st.st_ino, st.st_size, st.st_mtime_ns, trusted, limits)
    if key in _described:
        return _described[key]
    args = {"path": str(path), "base": base, "size": size, "max_entries": limits.max_entries}
    args["max_text"] = limits.max_json_bytes
    if trusted:
        try:
            with h5worker.LOCK:
                desc = h5worker.describe(**args)
        except h5worker.Refused as e:
            raise WeightError(f"{label}: refused: {e}") from e
        except Exception as e:
            raise WeightError(f"{label}: cannot read it as HDF5: {type(e).__name__}: {e}") from e
    else:
        desc = _ask({"op": "describe", **args}, label, timeout=limits.h5_timeout, limits=limits)
    while len(_described) >= 4:
        _described.pop(next(iter(_described)))
    _described[key] = desc
    return desc


def _ask(req: dict, label: str, *, timeout: float, limits: Limits, sink: Any = None) -> Any:
    try:
        return h5worker.CLIENT.request(req, timeout=timeout, memory=limits.h5_worker_memory, sink=sink)
    except h5worker.WorkerError as e:
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(e))
        if e.crashed:
            raise WeightError(
                f"{label}: {text}: the file is corrupt or hostile (HDF5 runs in a worker process, so this one is "
                "unharmed; pass trusted=True only for files you wrote)"
            ) from None
        if e.refused:
            raise WeightError(f"{label}: refused: {text}") from None
        raise WeightError(f"{label}: cannot read it as HDF5: {text}") from None


class Node:
    """An object of an :class:`H5Image` by its path; ``attrs`` holds its string and small numeric attributes."""

    def __init__(self, image: H5Image, path: str):
        self.image, self.path, self.info = image, path, image.nodes[path]

    @property
    def name(self) -> str:
        return "/" + self.path

    @property
    def attrs(self) -> dict[str, Any]:
        return self.info.get("attrs") or {}


class Group(Node):
    """A group: ``get`` follows hard links only, and raises for a soft or external link."""

    def get(self, name: str) -> Node | None:
        return self.image.node(name if name.startswith("/") else f"{self.path}/{name}")

    def __getitem__(self, name: str) -> Node:
        node = self.get(name)
        if node is None:
            raise KeyError(name)
        return node

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def keys(self) -> list[str]:
        return list(self.image.children.get(self.path, []))

    def __len__(self) -> int:
        return len(self.image.children.get(self.path, []))


class Dataset(Node):
    """A dataset as described: ``dtype`` is None for strings, compounds and other non-numeric types."""

    @property
    def dtype(self) -> np.dtype | str:
        return np.dtype(self.info["dtype"]) if self.info["dtype"] else self.info["type"]

    @property
    def shape(self) -> tuple[int, ...] | None:
        return None if self.info["shape"] is None else tuple(self.info["shape"])


class H5Image:
    """The checked structure of the HDF5 image at bytes ``[base, base+size)`` of ``path``.

    ``before_read`` runs before any data is handed out (a ``.keras`` archive checks
    the CRC-32 of its weights member there); ``mm`` is a map of ``path`` to share.
    """

    def __init__(
        self,
        path: Path,
        *,
        base: int = 0,
        size: int | None = None,
        mmap: bool = True,
        trusted: bool = False,
        limits: Limits = DEFAULT,
        label: str | None = None,
        before_read: Any = None,
        mm: np.memmap | None = None,
    ):
        self.path, self.base, self.trusted, self.limits = path, base, trusted, limits
        self.label = label or path.name
        self.window = size
        self.size = size if size is not None else path.stat().st_size
        desc = _describe(path, base, size, trusted=trusted, limits=limits, label=self.label)
        self.nodes: dict[str, dict] = desc["nodes"]
        self.links: dict[str, dict] = desc["links"]
        self.children: dict[str, list[str]] = {}
        for p in [*self.nodes, *self.links]:
            if p:
                parent, _, leaf = p.rpartition("/")
                self.children.setdefault(parent, []).append(leaf)
        if mm is None and mmap and path.stat().st_size:
            mm = np.memmap(path, np.uint8, mode="r")
        self.mm = mm if mmap else None  # one map per file: a page mapped twice counts twice in RSS
        self.before_read = before_read

    @property
    def root(self) -> Group:
        return Group(self, "")

    def node(self, name: str) -> Node | None:
        """The object at ``name`` (hard links only); WeightError if the path goes through any other link."""
        parts = [p for p in name.split("/") if p and p != "."]
        for i in range(1, len(parts) + 1):
            link = self.links.get("/".join(parts[:i]))
            if link is not None:
                raise self._link_error("/".join(parts[:i]), link)
        path = "/".join(parts)
        info = self.nodes.get(path)
        if info is None:
            return None
        return (
            Group(self, path) if info["kind"] == "group" else Dataset(self, path) if info["kind"] == "dataset" else None
        )

    def refuse_links(self) -> None:
        """WeightError for the first soft, external or user-defined link anywhere in the file."""
        for path, link in self.links.items():
            raise self._link_error(path, link)

    def _link_error(self, path: str, link: dict) -> WeightError:
        return WeightError(
            f"{self.label}: refused: {quote(path)} is {'an' if link['type'] == 'external' else 'a'} {link['type']} link (to {quote(link['target'])}); trtdsl "
            "reads only the opened file's own (hard-linked) objects, as Keras' loader does"
        )

    def datasets(self) -> list[Dataset]:
        return [Dataset(self, p) for p, info in self.nodes.items() if info["kind"] == "dataset"]

    # ------------------------------------------------------------------ data
    def entry(self, ds: Dataset) -> Entry | None:
        """An Entry for a numeric dataset (None for strings, compounds and the like), after every check."""
        info = ds.info
        where = f"{self.label}: dataset {quote(ds.path)}"
        if info["external"]:
            raise WeightError(
                f"{where}: refused: it keeps its data in another file (HDF5 external storage); "
                "trtdsl reads only the file it opened"
            )
        if info["layout"] == "virtual":
            raise WeightError(
                f"{where}: refused: it is a virtual dataset, which maps data from other files; "
                "trtdsl reads only the file it opened"
            )
        if info["dtype"] is None or info["shape"] is None:
            return None
        dtype, shape = np.dtype(info["dtype"]), tuple(info["shape"])
        nbytes = math.prod(shape) * dtype.itemsize
        offset = info["offset"]
        if info["layout"] == "contiguous" and offset is not None:
            if offset < 0 or offset + nbytes > self.size or info["storage"] < nbytes:
                raise WeightError(
                    f"{where}: its {nbytes} bytes at offset {offset} do not lie inside the file "
                    f"({self.size} bytes): the file is truncated or corrupt"
                )
            read = self._mapped(shape, dtype, self.base + offset)
        else:
            stored, filters = info["storage"], info["filters"]
            fits = self.limits.inflated_ok(nbytes, stored) if filters else nbytes <= self.size
            if not fits or stored > self.size or nbytes > self.limits.max_member_bytes:
                raise WeightError(
                    f"{where}: declares {nbytes} bytes ({shape} {dtype}) from {stored} stored bytes"
                    f"{' compressed' if filters else ''} in a file of {self.size}: more than it can hold "
                    f"(limits: ratio {self.limits.max_inflate_ratio:g}, floor {self.limits.inflate_floor})"
                )
            read = self._decoded(ds.path, shape, dtype, nbytes, where)
        return Entry(shape, dtype.newbyteorder("="), read)

    def _mapped(self, shape: tuple[int, ...], dtype: np.dtype, start: int):
        def read() -> np.ndarray:
            if self.before_read is not None:
                self.before_read()
            if self.mm is not None:
                arr = np.ndarray(shape, dtype, buffer=self.mm, offset=start)
            else:
                arr = np.empty(shape, dtype)
                with open(self.path, "rb") as f:
                    f.seek(start)
                    if arr.nbytes and f.readinto(memoryview(arr.reshape(-1).view(np.uint8))) != arr.nbytes:
                        raise WeightError(f"{self.label}: truncated while reading")
            return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))

        return read

    def _decoded(self, name: str, shape: tuple[int, ...], dtype: np.dtype, nbytes: int, where: str):
        req = {"op": "read", "path": str(self.path), "base": self.base, "size": self.window, "name": name}

        def read() -> np.ndarray:
            if self.before_read is not None:
                self.before_read()
            out = np.empty(nbytes, np.uint8)
            pos = 0

            def sink(n: int) -> memoryview | None:
                nonlocal pos
                if pos + n > nbytes:
                    return None
                pos += n
                return memoryview(out)[pos - n : pos]

            if self.trusted:
                try:
                    with h5worker.LOCK:
                        for slab in h5worker.read_slabs(req["path"], self.base, self.window, name):
                            target = sink(len(slab))
                            if target is None:
                                raise WeightError(f"{where}: HDF5 returned more bytes than the dataset declares")
                            target[:] = slab
                except (WeightError, MemoryError):
                    raise
                except Exception as e:
                    raise WeightError(f"{where}: cannot read it: {type(e).__name__}: {e}") from e
            else:
                _ask(req, where, timeout=self.limits.h5_timeout + nbytes / 1e8, limits=self.limits, sink=sink)
            if pos != nbytes:
                raise WeightError(f"{where}: HDF5 returned {pos} of its {nbytes} bytes")
            arr = out.view(dtype).reshape(shape)
            return arr if dtype.isnative else arr.astype(dtype.newbyteorder("="))

        return read

    def close(self) -> None:
        """Let the worker close the file (a temporary file can then be deleted)."""
        if self.trusted:
            with h5worker.LOCK:
                h5worker.forget()
        elif h5worker.CLIENT.proc is not None and h5worker.CLIENT.owner == os.getpid():
            try:
                h5worker.CLIENT.request({"op": "forget"}, timeout=10, memory=self.limits.h5_worker_memory)
            except h5worker.WorkerError:
                pass
        for key in [k for k in _described if k[0] == str(self.path)]:
            _described.pop(key, None)


@loads(".h5", ".hdf5", ".hdf", name="h5", sniff=lambda p: p.head.startswith(HDF5_MAGIC), priority=9)
def load_h5(path: Path, mmap: bool = True, trusted: bool = False, limits: Limits = DEFAULT) -> WeightStore:
    """Every numeric dataset of an HDF5 file, keyed by its path (``'group/sub/name'``)."""
    image = H5Image(path, mmap=mmap, trusted=trusted, limits=limits)
    image.refuse_links()
    entries: dict[str, Entry] = {}
    for ds in image.datasets():
        e = image.entry(ds)
        if e is not None:
            entries[ds.path] = e
    return WeightStore.from_entries(path, "h5", entries, close=image.close)
