"""PyTorch ``.pt``/``.pth`` state dicts, only through ``torch.load(weights_only=True)``.

``weights_only=True`` makes torch's unpickler refuse anything but tensors and
plain containers, so a checkpoint cannot run code. Zip-format checkpoints are
opened with ``mmap=True``: tensor storages stay in the file and
``Tensor.numpy()`` shares them, so no copy is made. Nested dicts (``{'model':
{...}}``) are flattened with ``.``; values that are not tensors are skipped.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WeightError
from .registry import Probe, loads
from .store import Entry, WeightStore


def _sniff(p: Probe) -> bool:
    names = p.zip_names or []
    # torch.save writes '<archive>/data.pkl'; the legacy format is a bare pickle.
    return any(n.endswith("/data.pkl") or n == "data.pkl" for n in names) or p.head[:1] == b"\x80"


def _flatten(obj: Any, prefix: str, out: dict[str, Any], torch: Any) -> None:
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out, torch)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}.{i}" if prefix else str(i), out, torch)


def _numpy_dtype(t: Any, torch: Any) -> np.dtype:
    if t.dtype == torch.bfloat16:
        return np.dtype(np.float32)
    return np.dtype(torch.empty(0, dtype=t.dtype).numpy().dtype)


@loads(".pt", ".pth", ".bin", ".ckpt", name="torch", sniff=_sniff, priority=7)
def load_torch(path: Path, mmap: bool = True) -> WeightStore:
    """A PyTorch checkpoint; needs torch, and refuses files holding anything but tensors and containers."""
    try:
        import torch
    except ImportError:
        raise WeightError(f"{path.name}: reading PyTorch checkpoints needs torch (pip install torch)") from None
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError as e:
                if not mmap or "mmap" not in str(e):
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except pickle.UnpicklingError as e:
        raise WeightError(
            f"{path.name}: refused: it holds Python objects other than tensors and containers, and trtdsl only "
            f"loads with torch.load(weights_only=True). ({str(e).strip().splitlines()[-1][:200]})"
        ) from e
    tensors: dict[str, Any] = {}
    _flatten(obj, "", tensors, torch)
    entries = {}
    for name, t in tensors.items():
        if t.layout != torch.strided or t.is_quantized:
            raise WeightError(
                f"{path.name}: tensor {name!r} is {t.layout}{' quantized' if t.is_quantized else ''}; only dense tensors can become weights"
            )
        entries[name] = Entry(tuple(t.shape), _numpy_dtype(t, torch), _reader(t, torch))
    return WeightStore.from_entries(path, "torch", entries)


def _reader(t: Any, torch: Any):
    def read() -> np.ndarray:
        x = t.detach()
        if x.dtype == torch.bfloat16:
            x = x.float()  # NumPy has no bfloat16
        return x.numpy()  # shares the (mapped) storage

    return read
