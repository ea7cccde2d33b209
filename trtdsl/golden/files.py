"""Golden files: ``record`` outputs to an ``.npz`` of plain arrays plus JSON metadata, and ``load`` them back.

Nothing is pickled, and ``load`` refuses files that would need unpickling.
Narrow types (bfloat16, fp8, int4, ...) that npz cannot name are stored as
exact values in their storage dtype, with the type recorded by name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import TrtdslError

_META_KEY = "__metadata__"
_DTYPES_KEY = "__dtypes__"  # narrow (ml_dtypes) outputs, stored as exact float32/int8 values


def record(outputs: Mapping[str, Any], path: str | os.PathLike, *, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``outputs`` (name -> array) and JSON-serializable ``metadata`` to an ``.npz`` file.

    The file loads with ``numpy.load(path, allow_pickle=False)``: metadata is
    stored as a 0-d unicode array holding JSON.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    narrow: dict[str, str] = {}
    for name, value in outputs.items():
        if name in (_META_KEY, _DTYPES_KEY):
            raise TrtdslError(f"golden record {str(path)!r}: output name {name!r} is reserved")
        array = np.asarray(value)
        narrow_name = narrow_type(array)
        if narrow_name is not None:
            # npz has no bfloat16/fp8 dtype: keep the exact values in the storage dtype and the type by name.
            narrow[name] = narrow_name
            array = array.astype(dtypes.to_numpy(narrow_name))
        if array.dtype.hasobject or array.dtype.kind not in "biuf":
            raise TrtdslError(
                f"golden record {str(path)!r}: output {name!r} has dtype {array.dtype}; "
                "golden files hold numeric or bool arrays only"
            )
        arrays[name] = array
    try:
        meta = json.dumps(dict(metadata or {}), sort_keys=True)
    except TypeError as e:
        raise TrtdslError(f"golden record {str(path)!r}: metadata is not JSON-serializable: {e}") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # an open file keeps numpy from appending '.npz' to the name
        extra = {_DTYPES_KEY: np.array(json.dumps(narrow))} if narrow else {}
        np.savez_compressed(f, **arrays, **{_META_KEY: np.array(meta)}, **extra)
    return path


def load(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(outputs, metadata)`` from a file written by ``record`` (or any ``.npz`` of plain arrays)."""
    path = Path(path)
    if not path.exists():
        raise TrtdslError(f"golden file {str(path)!r} does not exist")
    if not path.is_file():
        raise TrtdslError(f"golden file {str(path)!r} is not a file")
    outputs: dict[str, np.ndarray] = {}
    metadata: Any = {}
    narrow: Any = {}
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # garbage, a truncated zip, a pickle: numpy fails in many ways, none a crash here
        raise TrtdslError(f"golden file {str(path)!r} is not a readable .npz: {type(e).__name__}: {e}") from e
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise TrtdslError(
            f"golden file {str(path)!r} holds one bare array (.npy); golden files are .npz of named arrays"
        )
    with data:
        for name in data.files:
            try:
                array = data[name]
            except ValueError as e:  # numpy's refusal to unpickle an object array
                raise TrtdslError(
                    f"golden file {str(path)!r}: array {name!r} is a pickled object array; "
                    f"golden files hold plain arrays only, and trtdsl does not unpickle ({e})"
                ) from e
            except Exception as e:
                raise TrtdslError(
                    f"golden file {str(path)!r}: cannot read array {name!r}: {type(e).__name__}: {e}"
                ) from e
            if name == _META_KEY:
                try:
                    metadata = json.loads(str(array)) if array.dtype.kind == "U" else json.loads(bytes(array).decode())
                except (ValueError, TypeError, UnicodeDecodeError, RecursionError) as e:
                    raise TrtdslError(f"golden file {str(path)!r}: metadata is not valid JSON: {e}") from e
                if not isinstance(metadata, dict):
                    raise TrtdslError(
                        f"golden file {str(path)!r}: metadata must be a JSON object, got {type(metadata).__name__}"
                    )
            elif name == _DTYPES_KEY and array.dtype.kind == "U":
                try:
                    narrow = json.loads(str(array))
                except (ValueError, RecursionError) as e:
                    raise TrtdslError(f"golden file {str(path)!r}: its dtype record is not valid JSON: {e}") from e
            elif array.dtype.kind not in "biuf":
                raise TrtdslError(
                    f"golden file {str(path)!r}: array {name!r} has dtype {array.dtype}; golden files hold numeric "
                    "or bool arrays only"
                )
            else:
                outputs[name] = array
    for name, dt in narrow.items() if isinstance(narrow, dict) else ():
        if name in outputs and isinstance(dt, str) and dtypes.canonical(dt) in dtypes.TABLE:
            outputs[name] = outputs[name].astype(dtypes.holder(dt))
    return outputs, metadata


def narrow_type(array: np.ndarray) -> str | None:
    """The canonical name of an ``ml_dtypes`` array's type (bfloat16, fp8, ...), else None."""
    if array.dtype.kind != "V":
        return None
    try:
        name = dtypes.canonical(array.dtype)
    except TrtdslError:
        return None
    return name if dtypes.TABLE[name].narrow else None
