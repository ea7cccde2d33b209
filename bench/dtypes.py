"""Rounding to narrow types: trtdsl's ml_dtypes casts against hand-written bit arithmetic.

The interpreter rounds every bfloat16/fp8 tensor it stores. It used the bit-arithmetic
peers below before it moved to ``ml_dtypes``; this prints both times, interleaved, and
their ratio (< 1: ml_dtypes is faster), and checks that both give the same bits.

    python bench/dtypes.py [elements]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from trtdsl.reference import precision


def peer_bfloat16(x: np.ndarray) -> np.ndarray:
    """Round half to even on the 16 dropped bits: add 0x7FFF plus the lowest kept bit, truncate."""
    bits = np.require(x, np.float32, "C").view(np.uint32)
    rounding = ((bits >> np.uint32(16)) & np.uint32(1)) + np.uint32(0x7FFF)
    out = ((bits + rounding) & np.uint32(0xFFFF0000)).view(np.float32)
    return np.where(np.isnan(x), x, out)


def peer_fp8(x: np.ndarray) -> np.ndarray:
    """e4m3: 3 mantissa bits, subnormal spacing 2**-9 below 2**-6, saturating at 448."""
    a = np.minimum(np.abs(x), np.float32(448))
    exp = np.maximum(np.frexp(a)[1] - 1, -6)
    quantum = np.ldexp(np.float32(1), exp - 3).astype(np.float32)
    out = np.copysign(np.minimum(np.rint(a / quantum) * quantum, np.float32(448)), x).astype(np.float32)
    return np.where(np.isnan(x), x, out)


def best(fn, x: np.ndarray) -> float:
    t = time.perf_counter()
    fn(x)
    return time.perf_counter() - t


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 4_000_000
    x = (np.random.default_rng(0).standard_normal(n) * 100).astype(np.float32)
    for name, ours, peer in [
        ("bfloat16", precision.round_bfloat16, peer_bfloat16),
        ("fp8", precision.round_fp8, peer_fp8),
    ]:
        assert np.array_equal(ours(x).view(np.uint32), peer(x).view(np.uint32)), name
        a, b = [], []
        for _ in range(5):  # interleaved, best of 5: the machine is shared
            a.append(best(ours, x))
            b.append(best(peer, x))
        print(
            f"{name:9s} ml_dtypes {min(a) * 1e3:7.1f} ms  bit arithmetic {min(b) * 1e3:7.1f} ms  ratio {min(a) / min(b):.2f}"
        )


if __name__ == "__main__":
    main()
