"""Whether a CUDA device is usable here, and the marks GPU tests carry (``gpu`` plus a skip with the reason)."""

from __future__ import annotations

import functools

import pytest

from trtdsl.runtime import cuda


@functools.cache
def gpu_skip_reason() -> str | None:
    """None when cuda-python works and a CUDA device exists, else why not."""
    if not cuda.available():
        return "cuda-python is not installed (pip install 'trtdsl[cuda]')"
    try:
        n = cuda.device_count()
    except cuda.CudaError as e:
        return f"no usable CUDA device: {e}"
    return None if n > 0 else "no CUDA device"


def gpu_marks():
    reason = gpu_skip_reason()
    return [pytest.mark.gpu, pytest.mark.skipif(reason is not None, reason=reason or "")]
