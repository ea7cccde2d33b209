"""Reading a Keras ``.h5`` or ``.keras`` file's model config: JSON only, through the checked readers."""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import WeightError
from ...jsonstrict import no_constant
from ..h5 import HDF5_MAGIC, H5Image
from ..limits import DEFAULT, Limits, preview, read_capped
from ..registry import inside_folder
from ..zipcheck import Archive


@dataclass
class ModelFile:
    """What a Keras file says about its model: the config and the Keras that wrote it."""

    path: Path
    format: str  # "h5" (legacy, Keras 2 or 3), "keras" (Keras 3 zip) or "folder" (Keras 3, saved with zipped=False)
    config: dict
    keras_version: str
    backend: str | None = None  # legacy .h5 records it; .keras does not

    @property
    def keras_major(self) -> int:
        m = re.match(r"\d+", self.keras_version)
        return int(m.group()) if m else 3


def _json(raw: Any, what: str, path: Path) -> Any:
    try:
        return json.loads(raw.decode("utf8") if isinstance(raw, bytes) else str(raw), parse_constant=no_constant)
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        raise WeightError(f"{path.name}: {what} is not valid JSON: {e}") from e


def read(path: str | Path, *, trusted: bool = False, limits: Limits = DEFAULT) -> ModelFile:
    """Read the model config of a Keras ``.h5`` or ``.keras`` file (JSON only, no weights).

    The file is read as untrusted, like every weight file: HDF5 attributes are read in
    the isolated HDF5 worker (``trusted=True`` reads them in-process), and a ``.keras``
    archive goes through :class:`~trtdsl.weights.zipcheck.Archive` (duplicate members,
    bombs and CRC errors refused), with the JSON capped at ``limits.max_json_bytes``.
    """
    path = Path(path)
    if path.is_dir():
        return _read_folder(path, limits)
    if not path.is_file():
        raise WeightError(f"no Keras model file {str(path)!r}")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(HDF5_MAGIC):
        image = H5Image(path, mmap=False, trusted=trusted, limits=limits)
        try:
            attrs = image.root.attrs
            raw, version, backend = attrs.get("model_config"), attrs.get("keras_version", b""), attrs.get("backend")
        finally:
            image.close()
        if raw is None:
            raise WeightError(
                f"{path.name}: HDF5 file has no 'model_config' attribute: it holds weights only "
                "(save_weights); save the whole model with model.save(...)"
            )
        if not isinstance(raw, (str, bytes)):
            raise WeightError(
                f"{path.name}: attribute 'model_config' is {type(raw).__name__}, expected the model's JSON text"
            )
        if len(raw) > limits.max_json_bytes:
            raise WeightError(
                f"{path.name}: attribute 'model_config' is {len(raw)} bytes, more than the limit of "
                f"{limits.max_json_bytes}; raise it with limits=Limits(max_json_bytes=...) if you trust the file"
            )
        version = version.decode() if isinstance(version, bytes) else str(version)
        backend = backend.decode() if isinstance(backend, bytes) else (None if backend is None else str(backend))
        return ModelFile(path, "h5", _json(raw, "attribute 'model_config'", path), version or "2", backend)
    if head.startswith(b"PK"):
        try:
            z = Archive(path, limits, mmap=False)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise WeightError(f"{path.name}: cannot read the zip archive (truncated or damaged?): {e}") from e
        try:
            if "config.json" not in z.members:
                raise WeightError(f"{path.name}: not a Keras 3 archive: no member 'config.json'")
            cfg = _json(z.read("config.json", limits.max_json_bytes, what="config"), "config.json", path)
            meta = (
                _json(z.read("metadata.json", limits.max_json_bytes, what="metadata"), "metadata.json", path)
                if "metadata.json" in z.members
                else {}
            )
        finally:
            z.close()
        return ModelFile(path, "keras", cfg, str((meta if isinstance(meta, dict) else {}).get("keras_version", "3")))
    raise WeightError(
        f"{path.name}: neither a Keras .h5 (HDF5) nor a .keras (zip) file; it starts with {preview(head)}"
    )


# What Keras 3 writes for model.save(folder, zipped=False): the members of a .keras archive, as files.
FOLDER_CONFIG, FOLDER_METADATA, FOLDER_WEIGHTS = "config.json", "metadata.json", "model.weights.h5"


def _read_folder(folder: Path, limits: Limits) -> ModelFile:
    """A Keras 3 model saved unzipped (``model.save(folder, zipped=False)``): config.json and metadata.json."""
    config = folder_file(folder, FOLDER_CONFIG, "a Keras 3 model saved with zipped=False")
    cfg = _json(read_capped(config, limits, FOLDER_CONFIG), FOLDER_CONFIG, config)
    meta = {}
    if (folder / FOLDER_METADATA).exists():
        metadata = folder_file(folder, FOLDER_METADATA, "")
        meta = _json(read_capped(metadata, limits, FOLDER_METADATA), FOLDER_METADATA, metadata)
    return ModelFile(folder, "folder", cfg, str((meta if isinstance(meta, dict) else {}).get("keras_version", "3")))


def folder_file(folder: Path, name: str, what: str) -> Path:
    """``folder/name`` as a regular file lying in the folder (not a link out of it, a FIFO or a device)."""
    file = folder / name
    if not os.path.lexists(file):  # (a link loop or a dangling link exists: inside_folder says what it is)
        listed = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
        raise WeightError(f"{folder}: is a directory without {name!r}, so not {what}; it holds {listed}")
    inside_folder(folder, file)
    if not file.is_file():
        raise WeightError(f"{file}: is not a regular file")
    return file
