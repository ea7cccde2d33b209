"""weights/limits: error messages quote only a short, escaped prefix of a file (limits.preview)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trtdsl import WeightError
from trtdsl import weights as W


def test_messages_quote_only_a_short_escaped_prefix(tmp_path):
    secret = b"API_KEY=hunter2-do-not-print\n"
    for name in ("notes.bin", "notes.wts"):
        (tmp_path / name).write_bytes(secret * 4)
        with pytest.raises(WeightError) as e:
            W.load(tmp_path / name)
        assert "hunter2" not in str(e.value) and "API_KEY=" in str(e.value)
    with pytest.raises(WeightError) as e:
        W.load("/proc/self/environ")
    env = Path("/proc/self/environ").read_bytes()
    shown = str(e.value)
    assert all(env[i : i + 12].decode(errors="replace") not in shown for i in range(8, max(len(env) - 12, 8), 12))
