"""examples/test_golden_digits.py runs as users run it: pytest on the file."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ._load import EXAMPLES, ROOT

pytestmark = pytest.mark.usefixtures("trt")


def test_golden_example_passes_under_pytest():
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLES / "test_golden_digits.py")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 passed" in r.stdout
