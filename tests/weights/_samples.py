"""Sample weights, sharded checkpoints and the checks the format tests share (test_formats.py, test_safetensors.py,
test_shards.py, test_torchfile.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


def sample(rng) -> dict[str, np.ndarray]:
    return {
        "stem.conv1.weight": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "stem.bn1.running_var": rng.random(8).astype(np.float32) + 0.5,
        "layer1.0.fc.weight": rng.standard_normal((5, 7)).astype(np.float16),
        "layer1.0.fc.bias": rng.standard_normal(5).astype(np.float64),
        "steps": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 4), np.float32),
    }


def assert_same(store, expected):
    assert sorted(store) == sorted(expected)
    for k, v in expected.items():
        got = store[k]
        assert got.shape == v.shape and got.dtype == v.dtype, k
        assert store.shape(k) == v.shape and store.dtype(k) == v.dtype, k
        np.testing.assert_array_equal(got, v, err_msg=k)


def mapped(arr) -> bool:
    base = arr
    while base is not None:
        if isinstance(base, np.memmap):
            return True
        base = base.base
    return False


def map_of(arr) -> np.memmap | None:
    """The np.memmap an array is a view of, or None."""
    base = arr
    while base is not None and not isinstance(base, np.memmap):
        base = base.base
    return base


def in_file_map(arr: np.ndarray, path: Path) -> bool:
    """Whether ``arr``'s data lies in a memory map of ``path`` (this process's /proc/self/maps): not a copy.

    torch maps a checkpoint itself, so a view of its storage has no np.memmap to find.
    """
    address, inode = arr.ctypes.data, Path(path).stat().st_ino
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, _perms, _offset, _dev, ino, *_name = line.split()
        lo, hi = (int(v, 16) for v in span.split("-"))
        if lo <= address < hi:
            return int(ino) == inode
    return False


def float8_tensors() -> dict[str, Any]:
    """torch tensors: every byte value of each float8 type (NaNs included), a weight rounded from floats,
    its float32 scale, and a transposed (non-contiguous) float8 tensor."""
    import torch

    kinds = [torch.float8_e4m3fn, torch.float8_e5m2, torch.float8_e8m0fnu, torch.float8_e4m3fnuz, torch.float8_e5m2fnuz]
    g = torch.Generator().manual_seed(0)
    every = {
        str(dt).removeprefix("torch."): torch.arange(256, dtype=torch.uint8).view(dt).reshape(16, 16) for dt in kinds
    }
    return {
        **every,
        "fc.weight": (torch.randn(6, 5, generator=g) * 100).to(torch.float8_e4m3fn),
        "fc.weight_scale": torch.tensor(0.02),
        "column": torch.randn(4, 3, generator=g).to(torch.float8_e4m3fn).T,
    }


# ------------------------------------------------- sharded checkpoints (Hugging Face layout)
@dataclass(frozen=True)
class Sharding:
    """One format's sharded checkpoint as ``transformers`` writes it: file names, index label, shard writer."""

    format: str  # the store's format, load(format=...)
    index: str  # the index's file name
    shard: str  # the shards' names, from (i, n)
    label: str  # what messages call the index: "not a <label>"
    save: Callable[..., None]  # (tensors, file, **writer options)

    def __str__(self) -> str:  # the pytest id
        return self.format


def _save_safetensors(tensors: dict[str, np.ndarray], file: Path) -> None:
    from safetensors.numpy import save_file

    save_file(tensors, str(file))


def _save_torch(tensors: dict, file: Path, **options) -> None:
    """A state dict part, saved as transformers saves it; values are arrays or torch tensors (bfloat16)."""
    import torch

    torch.save(
        {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in tensors.items()}, file, **options
    )


SAFETENSORS = Sharding(
    "safetensors_index", "model.safetensors.index.json", "model-{:05d}-of-{:05d}.safetensors", "safetensors index",
    _save_safetensors,
)  # fmt: skip
TORCH = Sharding(
    "torch_index", "pytorch_model.bin.index.json", "pytorch_model-{:05d}-of-{:05d}.bin", "PyTorch shard index",
    _save_torch,
)  # fmt: skip
SHARDINGS = [SAFETENSORS, TORCH]


def write_sharded(folder: Path, data, how: Sharding = SAFETENSORS, n=3, weight_map=None, **index) -> dict:
    """Shards written by the format's own library, named as transformers names them, and their index:
    {shard file: {name: array}}."""
    folder.mkdir(exist_ok=True)
    names = sorted(data)
    files = [how.shard.format(i + 1, n) for i in range(n)]
    shards = {f: {k: data[k] for k in names[i::n]} for i, f in enumerate(files)}
    for f, tensors in shards.items():
        how.save(tensors, folder / f)
    if weight_map is None:
        weight_map = {k: f for f, tensors in shards.items() for k in tensors}
    doc = {"metadata": {"total_size": sum(v.nbytes for v in data.values())}, "weight_map": weight_map, **index}
    (folder / how.index).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")  # transformers' own dump
    return shards
