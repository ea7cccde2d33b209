"""Keras weights: legacy ``.h5`` (Keras 2 and 3) and Keras 3 ``.keras`` zips.

Both give the same stable names, ``<layer>/<weight>`` (``conv2d/kernel``,
``batch_normalization/moving_mean``, ``lstm/recurrent_kernel``), with nested
models as ``<model>/<layer>/<weight>``. Nothing from the file is executed:
the model config is parsed as JSON only, so Lambda layers and custom objects
are never deserialized.

- Legacy ``.h5`` lists each layer's weights in its ``weight_names``
  attribute; those are read in order, never built from a path. Keras 2 names
  end in ``:0``, Keras 3 names carry the model and cell scopes
  (``convnet/conv2d/kernel``, ``lstm/lstm_cell/kernel``): the last component
  is the weight's name. Attributes over 64 KB are split into ``name0, name1..``.
- ``.keras`` stores ``layers/<snake_case class>[_N]/vars/<i>`` in
  ``model.weights.h5``. The config gives each such group its layer name (Keras
  numbers same-class layers in config order), and :data:`VARIABLES` the names
  of the variables by class, in the order Keras creates them.
- A Keras 3 weights-only file (``save_weights("x.weights.h5")``) has that
  layout too, and so do sharded ones (``save_weights("x.weights.json",
  max_shard_size=...)``), read as the one file they were cut from by
  :mod:`.keras_shards`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WeightError
from .h5 import HDF5_MAGIC, Dataset, Group, H5Image
from .keras_config import ALIASES, MODEL_CLASSES, VARIABLES, WRAPPERS, to_snake_case, wrapped
from .keras_config import find as _find
from .keras_config import layer_name as _layer_name
from .keras_config import layers_of as _layers
from .keras_config import sub_class as _sub_class
from .keras_config import tree as _tree
from .keras_shards import ShardView, open_shards
from .limits import DEFAULT, Limits
from .registry import Probe, loads
from .store import Entry, WeightStore
from .zipcheck import Archive


def _attr_list(group: Group, name: str) -> list[str]:
    """A list attribute, joined again when Keras split it into ``name0``, ``name1``, ... (64 KB limit)."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks, i = [], 0
        while f"{name}{i}" in group.attrs:
            chunks.append(group.attrs[f"{name}{i}"])
            i += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for chunk in chunks for v in np.atleast_1d(chunk)]


def _short(cls: str, weight: str) -> str:
    name = re.sub(r":\d+$", "", weight.rsplit("/", maxsplit=1)[-1])
    return ALIASES.get((cls, name), name)


def _legacy_names(layer: str, cls: str, sub: dict | None, weight_names: list[str]) -> list[str]:
    names = []
    for wn in weight_names:
        parts = re.sub(r":\d+$", "", wn).split("/")
        path = None
        if sub:  # the innermost scope that names a layer: 'inner_seq/dense_4/kernel' is dense_4's
            for part in reversed(parts[:-1]):
                path = _find(sub, part)
                if path:
                    break
        if path:
            inner_cls = _sub_class(sub, path)
            names.append("/".join([layer, *path, _short(inner_cls, parts[-1])]))
        else:
            names.append(f"{layer}/{_short(cls, parts[-1])}")
    if len(set(names)) < len(names):  # e.g. a wrapper holding two cells: keep the full, unique paths
        names = [layer + "/" + re.sub(r":\d+$", "", wn) for wn in weight_names]
    return names


def _is_keras_h5(p: Probe) -> bool:
    if not p.head.startswith(HDF5_MAGIC):
        return False
    f = H5Image(p.path, mmap=False, trusted=p.trusted, limits=p.limits).root  # described in the HDF5 worker
    return "model_weights" in f or "layer_names" in f.attrs or "layer_names0" in f.attrs


@loads(".h5", name="keras_h5", sniff=_is_keras_h5, priority=1)
def load_keras_h5(path: Path, mmap: bool = True, trusted: bool = False, limits: Limits = DEFAULT) -> WeightStore:
    """A Keras legacy ``.h5`` model (``model.save``) or weights file (``save_weights``)."""
    mapper = H5Image(path, mmap=mmap, trusted=trusted, limits=limits)
    mapper.refuse_links()
    f = mapper.root
    root = f["model_weights"] if "model_weights" in f else f
    if not isinstance(root, Group):
        raise WeightError(f"{path.name}: 'model_weights' is not a group")
    config = _json_attr(f, "model_config", path)
    tree = _tree(config)
    entries: dict[str, Entry] = {}
    for layer in _attr_list(root, "layer_names"):
        if layer not in root:
            raise WeightError(f"{path.name}: layer_names lists {layer!r} but the file has no group for it")
        group = root[layer]
        if not isinstance(group, Group):
            raise WeightError(f"{path.name}: layer_names lists {layer!r} but it is not a group")
        weight_names = _attr_list(group, "weight_names")
        cls, sub = tree.get(layer, ("", None))
        for wn, stable in zip(weight_names, _legacy_names(layer, cls, sub, weight_names), strict=True):
            ds = group.get(wn)
            if not isinstance(ds, Dataset):
                raise WeightError(f"{path.name}: layer {layer!r} lists weight {wn!r} but has no such dataset")
            entry = mapper.entry(ds)
            if entry is None:
                raise WeightError(f"{path.name}: weight {wn!r} of layer {layer!r} has non-numeric dtype {ds.dtype}")
            entries[stable] = entry
    return WeightStore.from_entries(path, "keras_h5", entries, close=mapper.close)


def _json_attr(f: Group, name: str, path: Path) -> Any:
    raw = f.attrs.get(name)
    if raw is None:
        return None
    try:
        return json.loads(raw.decode("utf8") if isinstance(raw, bytes) else str(raw))
    except ValueError as e:
        raise WeightError(f"{path.name}: attribute {name!r} is not valid JSON: {e}") from e


def _is_keras_zip(p: Probe) -> bool:
    names = p.zip_names or []
    return "config.json" in names and "model.weights.h5" in names


@loads(".keras", sniff=_is_keras_zip, priority=1)
def load_keras(path: Path, mmap: bool = True, trusted: bool = False, limits: Limits = DEFAULT) -> WeightStore:
    """A Keras 3 ``.keras`` zip; the weights file inside is mapped in place when stored uncompressed."""
    z = Archive(path, limits, mmap=mmap)  # refuses traversal, duplicate members, overlaps and bombs
    for need in ("config.json", "model.weights.h5"):
        if need not in z.members:
            raise WeightError(f"{path.name}: not a Keras 3 archive: no member {need!r}")
    try:
        config = json.loads(z.read("config.json", limits.max_json_bytes, what="config"))
    except ValueError as e:
        raise WeightError(f"{path.name}: config.json is not valid JSON: {e}") from e
    m = z.member("model.weights.h5")
    tmp: Any = None
    if m.stored:
        mapper = H5Image(
            path, base=m.start, size=m.info.file_size, mmap=mmap, trusted=trusted, limits=limits,
            before_read=lambda: z.verify(m.name),  # CRC-32 of the whole member, before its first weight
            mm=z.mm,
        )  # fmt: skip
    else:  # inflate once (bounded by Archive's limits, CRC-checked at the end) to a file the worker can open
        tmp = tempfile.NamedTemporaryFile(prefix="trtdsl-", suffix=".weights.h5")
        with z.open(m.name) as src:
            shutil.copyfileobj(src, tmp, 1 << 20)
        tmp.flush()
        mapper = H5Image(Path(tmp.name), mmap=mmap, trusted=trusted, limits=limits, label=path.name)
    mapper.refuse_links()
    layers = mapper.root.get("layers")
    entries = _keras3_entries(config, layers, mapper, path.name) if isinstance(layers, Group) else {}

    def close() -> None:
        mapper.close()
        if tmp is not None:
            tmp.close()
        z.close()

    return WeightStore.from_entries(path, "keras", entries, close=close)


# What Keras 3's save_weights writes (keras/src/saving/saving_api.py): the sharded index's name is
# what tells it from a single file, as in Keras' own load_weights.
WEIGHTS_ONLY_SUFFIXES = (".weights.h5", ".weights.json")


def load_keras_weights(
    path: str | os.PathLike, config: dict, *, mmap: bool = True, trusted: bool = False, limits: Limits = DEFAULT
) -> WeightStore:
    """A Keras 3 weights-only file (``model.save_weights("x.weights.h5")``), named through ``config``.

    Such a file has the layout of the weights inside a ``.keras`` archive (``layers/dense/vars/0``):
    only the model's config (from its ``.keras`` or ``.h5`` file) says which layer each group is.
    A path ending in ``.weights.json`` is the index of sharded weights
    (``save_weights("x.weights.json", max_shard_size=...)``): its shards, named by the index, must
    lie beside it, and each is opened once.
    """
    path = Path(path)
    if not path.is_file():  # missing, a directory, a FIFO or a device: nothing HDF5 should open
        raise WeightError(f"no Keras weights file {str(path)!r}" if not path.exists() else f"{path}: is not a file")
    if path.name.endswith(".json"):
        view, close = open_shards(path, mmap=mmap, trusted=trusted, limits=limits)
        try:
            layers = view.root.get("layers")
            entries = _keras3_entries(config, layers, view, path.name) if isinstance(layers, Group) else {}
        except BaseException:
            close()
            raise
        return WeightStore.from_entries(path, "keras", entries, close=close)
    mapper = H5Image(path, mmap=mmap, trusted=trusted, limits=limits)
    try:
        mapper.refuse_links()
        layers = mapper.root.get("layers")
        if not isinstance(layers, Group):
            raise WeightError(f"{path.name}: not a Keras 3 weights file (model.save_weights): it has no 'layers' group")
        entries = _keras3_entries(config, layers, mapper, path.name)
    except BaseException:
        mapper.close()
        raise
    return WeightStore.from_entries(path, "keras", entries, close=mapper.close)


def _keras3_entries(config: dict, layers: Group, mapper: H5Image | ShardView, label: str) -> dict[str, Entry]:
    """The weights under a Keras 3 ``layers`` group (a ``.keras`` archive's or a weights-only file's),
    named through the model's config."""
    entries: dict[str, Entry] = {}
    _walk(config, layers, "", entries=entries, mapper=mapper, label=label)
    _alias_shared(config, entries)
    return entries


def _walk(
    model_cfg: dict, group: Group, prefix: str, *, entries: dict[str, Entry], mapper: H5Image | ShardView, label: str
) -> None:
    used: dict[str, int] = {}
    for layer in _layers(model_cfg):
        cls = str(layer.get("class_name"))
        snake = to_snake_case(cls)
        used[snake] = used.get(snake, -1) + 1
        gname = snake if used[snake] == 0 else f"{snake}_{used[snake]}"
        g = group.get(gname)
        if isinstance(g, Group):
            _walk_layer(cls, layer, g, prefix + _layer_name(layer) + "/", entries=entries, mapper=mapper, label=label)


def _alias_shared(model_cfg: dict, entries: dict[str, Entry]) -> None:
    """Give a layer object listed in two containers its weights under both names.

    Keras saves a shared object once, in the first container that lists it
    (saving_lib's ``visited_saveables``); the others have no group for it. A
    layer object keeps its name everywhere, so the group is found by name.
    The scopes of the keys are listed once (a model of thousands of weights
    would otherwise scan every key for every layer).
    """
    scopes: dict[str, set[str]] = {}  # a name component -> the scopes ('outer/dense_4/') it ends
    for key in entries:
        parts = key.split("/")
        for i in range(len(parts) - 1):
            scopes.setdefault(parts[i], set()).add("/".join(parts[: i + 1]) + "/")
    owned = set().union(*scopes.values())
    _alias_in(model_cfg, "", entries, scopes, owned)


def _alias_in(
    model_cfg: dict, prefix: str, entries: dict[str, Entry], scopes: dict[str, set[str]], owned: set[str]
) -> None:
    for layer in _layers(model_cfg):
        name = _layer_name(layer)
        if _layers(layer):
            _alias_in(layer, f"{prefix}{name}/", entries, scopes, owned)
            continue
        own = f"{prefix}{name}/"
        cls = str(layer.get("class_name"))
        if (cls not in VARIABLES and cls not in WRAPPERS) or own in owned:
            continue  # a layer without variables is no alias, whatever a component of a key is named
        homes = scopes.get(name, set())
        if len(homes) == 1:  # never guess between two layers of one name in different containers
            (home,) = homes
            for k in [k for k in entries if k.startswith(home)]:
                entries[own + k[len(home) :]] = entries[k]


def _walk_layer(
    cls: str, layer: dict, g: Group, name: str, *, entries: dict[str, Entry], mapper: H5Image | ShardView, label: str
) -> None:
    """The variables of one layer entry whose group is ``g``, named ``name + <weight>``.

    Containers and wrappers nest: a TimeDistributed over a Bidirectional or over a whole model
    keeps the inner layer's groups under its own ``layer`` group.
    """
    if _layers(layer) and isinstance(g.get("layers"), Group):
        _walk(layer, g["layers"], name, entries=entries, mapper=mapper, label=label)
        return
    for sub_group, sub, cls_, cfg in wrapped(cls, layer.get("config") or {}):
        sg = g.get(sub_group) if sub_group else g  # wrappers keep each inner layer in a group of its own
        if not isinstance(sg, Group):
            continue
        if sub_group and (cls_ in WRAPPERS or cls_ in MODEL_CLASSES):
            _walk_layer(cls_, {"config": cfg}, sg, name + sub, entries=entries, mapper=mapper, label=label)
            continue
        vars_ = sg.get("vars")
        if (not isinstance(vars_, Group) or not len(vars_)) and isinstance(sg.get("cell"), Group):
            vars_ = sg["cell"].get("vars")  # recurrent layers keep their weights in the cell
        if not isinstance(vars_, Group) or not len(vars_):
            continue
        count = len(vars_)
        known = VARIABLES.get(cls_)
        names = known(cfg) if known else []
        if len(names) != count:  # unknown class or unexpected options: number the variables
            names = [str(i) for i in range(count)]
        for i, wname in enumerate(names):
            ds = vars_.get(str(i))
            if not isinstance(ds, Dataset):
                raise WeightError(
                    f"{label}: layer {name[:-1]!r}: model.weights.h5 has no variable {i} under {vars_.name}"
                )
            entry = mapper.entry(ds)
            if entry is None:
                raise WeightError(f"{label}: layer {name[:-1]!r}: variable {i} has non-numeric dtype {ds.dtype}")
            entries[f"{name}{sub}{wname}"] = entry
