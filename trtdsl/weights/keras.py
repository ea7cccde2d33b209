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
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import h5py
import numpy as np

from ..errors import WeightError
from .h5 import HDF5_MAGIC, Mapper, Window
from .keras_config import ALIASES, VARIABLES, to_snake_case, wrapped
from .keras_config import find as _find
from .keras_config import layer_name as _layer_name
from .keras_config import layers_of as _layers
from .keras_config import sub_class as _sub_class
from .keras_config import tree as _tree
from .registry import Probe, loads
from .store import Entry, WeightStore


def _attr_list(group: h5py.Group, name: str) -> list[str]:
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
        if sub:
            for part in parts[:-1]:
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
    with h5py.File(p.path, "r") as f:
        return "model_weights" in f or "layer_names" in f.attrs or "layer_names0" in f.attrs


@loads(".h5", name="keras_h5", sniff=_is_keras_h5, priority=1)
def load_keras_h5(path: Path, mmap: bool = True) -> WeightStore:
    """A Keras legacy ``.h5`` model (``model.save``) or weights file (``save_weights``)."""
    f = h5py.File(path, "r")
    mapper = Mapper(path if mmap else None)
    root = f["model_weights"] if "model_weights" in f else f
    config = _json_attr(f, "model_config", path)
    tree = _tree(config)
    entries: dict[str, Entry] = {}
    for layer in _attr_list(root, "layer_names"):
        if layer not in root:
            raise WeightError(f"{path.name}: layer_names lists {layer!r} but the file has no group for it")
        group = root[layer]
        weight_names = _attr_list(group, "weight_names")
        cls, sub = tree.get(layer, ("", None))
        for wn, stable in zip(weight_names, _legacy_names(layer, cls, sub, weight_names), strict=True):
            ds = group.get(wn)
            if not isinstance(ds, h5py.Dataset):
                raise WeightError(f"{path.name}: layer {layer!r} lists weight {wn!r} but has no such dataset")
            entry = mapper.entry(ds)
            if entry is None:
                raise WeightError(f"{path.name}: weight {wn!r} of layer {layer!r} has non-numeric dtype {ds.dtype}")
            entries[stable] = entry
    return WeightStore.from_entries(path, "keras_h5", entries, close=f.close)


def _json_attr(f: h5py.File, name: str, path: Path) -> Any:
    raw = f.attrs.get(name)
    if raw is None:
        return None
    try:
        return json.loads(raw.decode("utf8") if isinstance(raw, bytes) else str(raw))
    except ValueError as e:
        raise WeightError(f"{path.name}: attribute {name!r} is not valid JSON: {e}") from e


def _check_members(path: Path, zf: zipfile.ZipFile) -> None:
    for name in zf.namelist():
        p = PurePosixPath(name.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", name):
            raise WeightError(f"{path.name}: refused: zip member {name!r} points outside the archive (path traversal)")


def _is_keras_zip(p: Probe) -> bool:
    names = p.zip_names or []
    return "config.json" in names and "model.weights.h5" in names


@loads(".keras", sniff=_is_keras_zip, priority=1)
def load_keras(path: Path, mmap: bool = True) -> WeightStore:
    """A Keras 3 ``.keras`` zip; the weights file inside is mapped in place when stored uncompressed."""
    zf = zipfile.ZipFile(path)
    _check_members(path, zf)
    try:
        config = json.loads(zf.read("config.json"))
        info = zf.getinfo("model.weights.h5")
    except KeyError as e:
        raise WeightError(f"{path.name}: not a Keras 3 archive: {e.args[0]}") from e
    except ValueError as e:
        raise WeightError(f"{path.name}: config.json is not valid JSON: {e}") from e
    if info.compress_type == zipfile.ZIP_STORED:
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)
        if local[:4] != b"PK\x03\x04":
            raise WeightError(f"{path.name}: broken zip local header of model.weights.h5")
        start = (
            info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
        )
        fileobj: Any = Window(path, start, info.file_size)
        mapper = Mapper(path if mmap else None, base=start)
    else:  # inflate once to a temporary file instead of holding it in memory
        fileobj = tempfile.TemporaryFile()
        with zf.open(info) as src:
            shutil.copyfileobj(src, fileobj, 1 << 20)
        mapper = Mapper(None)
    f = h5py.File(fileobj, "r")
    entries: dict[str, Entry] = {}
    if "layers" in f:
        _walk(config, f["layers"], "", entries=entries, mapper=mapper, label=path.name)

    def close() -> None:
        f.close()
        fileobj.close()
        zf.close()

    return WeightStore.from_entries(path, "keras", entries, close=close)


def _walk(
    model_cfg: dict, group: h5py.Group, prefix: str, *, entries: dict[str, Entry], mapper: Mapper, label: str
) -> None:
    used: dict[str, int] = {}
    for layer in _layers(model_cfg):
        cls = str(layer.get("class_name"))
        snake = to_snake_case(cls)
        used[snake] = used.get(snake, -1) + 1
        gname = snake if used[snake] == 0 else f"{snake}_{used[snake]}"
        name = prefix + _layer_name(layer)
        g = group.get(gname)
        if not isinstance(g, h5py.Group):
            continue
        if _layers(layer) and isinstance(g.get("layers"), h5py.Group):
            _walk(layer, g["layers"], name + "/", entries=entries, mapper=mapper, label=label)
            continue
        for sub_group, sub, cls_, cfg in wrapped(cls, layer.get("config") or {}):
            sg = g.get(sub_group) if sub_group else g  # wrappers keep each inner layer in a group of its own
            if not isinstance(sg, h5py.Group):
                continue
            vars_ = sg.get("vars")
            if (not isinstance(vars_, h5py.Group) or not len(vars_)) and isinstance(sg.get("cell"), h5py.Group):
                vars_ = sg["cell"].get("vars")  # recurrent layers keep their weights in the cell
            if not isinstance(vars_, h5py.Group) or not len(vars_):
                continue
            count = len(vars_)
            known = VARIABLES.get(cls_)
            names = known(cfg) if known else []
            if len(names) != count:  # unknown class or unexpected options: number the variables
                names = [str(i) for i in range(count)]
            for i, wname in enumerate(names):
                ds = vars_.get(str(i))
                if not isinstance(ds, h5py.Dataset):
                    raise WeightError(
                        f"{label}: layer {name!r}: model.weights.h5 has no variable {i} under {vars_.name}"
                    )
                entry = mapper.entry(ds)
                if entry is None:
                    raise WeightError(f"{label}: layer {name!r}: variable {i} has non-numeric dtype {ds.dtype}")
                entries[f"{name}/{sub}{wname}"] = entry
