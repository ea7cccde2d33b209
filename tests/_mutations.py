"""Deterministic byte-level mutations of a seed file, shared by every reader's fuzz test."""

from __future__ import annotations

import numpy as np


def mutations(data: bytes, n: int, seed: int):
    """About ``n`` deterministic mutations of ``data``: (label, bytes)."""
    rng = np.random.default_rng(seed)
    size = len(data)
    k = max(n // 4, 1)
    for cut in sorted({1, 8, 16, 64, *np.linspace(0, size, k + 2).astype(int)[1:-1].tolist()}):
        yield f"truncate@{cut}", data[:cut]
    for pos in rng.choice(size, size=min(size, 2 * k), replace=False):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        yield f"flip@{pos}", bytes(flipped)
    for i in range(max(k // 6, 2)):
        head, tail = bytearray(data), bytearray(data)
        w = min(64, size)
        head[:w] = rng.integers(0, 256, w, dtype=np.uint8).tobytes()
        tail[size - w :] = rng.integers(0, 256, w, dtype=np.uint8).tobytes()
        yield f"header{i}", bytes(head)
        yield f"tail{i}", bytes(tail)
        body = data[:8] + rng.integers(0, 256, int(rng.integers(8, 4096)), dtype=np.uint8).tobytes()
        yield f"random-body{i}", body


def scattered(data: bytes, n: int, seed: int, width: int = 8):
    """``n`` copies of ``data`` with ``width`` bytes overwritten at random places each: (label, bytes).

    One flipped bit rarely breaks two fields of a protobuf at once; this does (it found the
    node-without-outputs crash of TensorRT's ONNX parser).
    """
    rng = np.random.default_rng(seed)
    for i in range(n):
        out = bytearray(data)
        for pos in rng.choice(len(data), size=min(width, len(data)), replace=False):
            out[pos] = int(rng.integers(256))
        yield f"scattered{i}", bytes(out)
