"""The load server fixture: one long-lived process that loads untrusted files, with a time and memory limit."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

SERVER = Path(__file__).with_name("loadserver.py")
ROOT = Path(__file__).resolve().parents[2]
MEMORY = 6 << 30  # address space: torch alone maps ~3.3 GB of it


class LoadServer:
    """Sends one file at a time to loadserver.py; a crash or a hang becomes a result, and a fresh server."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            self.proc = subprocess.Popen(
                [sys.executable, str(SERVER), str(MEMORY)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
            )  # fmt: skip
            self.starts += 1
            assert json.loads(self.proc.stdout.readline()) == {"ready": True}
        return self.proc

    def load(self, path: Path, *, timeout: float = 30.0, **request) -> dict:
        proc = self._start()
        proc.stdin.write(json.dumps({"path": str(path), **request}) + "\n")
        proc.stdin.flush()
        deadline = time.monotonic() + timeout
        if not select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]:
            self.close()
            return {"hang": timeout}
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            self.proc = None
            return {"crash": code}
        return json.loads(line)

    def sound(self, path: Path, what: str = "", **request) -> dict:
        """Load ``path``; fail unless it gave arrays as declared or a TrtdslError (never a crash, hang or
        other exception)."""
        result = self.load(path, **request)
        assert "ok" in result or "error" in result, f"{what or path.name}: {result}"
        return result

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="session")
def loader():
    server = LoadServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """torch.save's own files of {'w': torch.ones(3)}, zip and legacy, whose pickle the torch tests replace."""
    torch = pytest.importorskip("torch")
    d = tmp_path_factory.mktemp("saved")
    torch.save({"w": torch.ones(3)}, d / "zip.pt")
    torch.save({"w": torch.ones(3)}, d / "legacy.pt", _use_new_zipfile_serialization=False)
    return d
