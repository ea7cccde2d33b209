"""Sample weights and the checks the format tests share (tests/weights/test_formats.py, test_safetensors.py)."""

from __future__ import annotations

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
