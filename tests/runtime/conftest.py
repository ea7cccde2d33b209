"""Fixtures of the runtime tests."""

from __future__ import annotations

import pytest

from trtdsl.runtime import cuda


@pytest.fixture
def stream():
    s = cuda.Stream()
    yield s
    s.synchronize()
    s.close()
