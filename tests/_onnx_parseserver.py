"""A long-lived process that runs ``trtdsl.onnx.parse`` on untrusted files, and its client.

TensorRT's ONNX parser is C++: a file it mishandles can crash or hang the
process that parses it. The tests send each hostile file here, so such a file
fails its test (``{"crash": signal}``, ``{"hang": seconds}``) instead of
killing pytest. Run as a script, it serves one JSON request per line.
"""

from __future__ import annotations

import json
import os
import resource
import select
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEMORY = 4 << 30  # address space; TensorRT-RTX needs well under 3 GB for these models


class ParseServer:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
            )  # fmt: skip
            assert json.loads(self.proc.stdout.readline()) == {"ready": True}
        return self.proc

    def parse(self, path: Path, *, timeout: float = 20.0) -> dict:
        """``{"ok": {...}}``, ``{"error": class, "message": ...}``, ``{"foreign": ...}``, ``{"crash": code}``
        or ``{"hang": seconds}``."""
        proc = self._start()
        proc.stdin.write(json.dumps({"path": str(path)}) + "\n")
        proc.stdin.flush()
        if not select.select([proc.stdout], [], [], timeout)[0]:
            self.close()
            return {"hang": timeout}
        line = proc.stdout.readline()
        if not line:
            self.proc = None
            return {"crash": proc.wait()}
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def _serve() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    import logging

    import trtdsl.onnx

    # Hostile files make TensorRT log pages of errors; the parse's OnnxParseError still carries them.
    logging.getLogger("trtdsl.tensorrt").setLevel(logging.CRITICAL + 1)
    from trtdsl.errors import TrtdslError

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        path = json.loads(line)["path"]
        start = time.monotonic()
        try:
            d = trtdsl.onnx.parse(path).trt
            io = {
                "inputs": {d.get_input(i).name: list(d.get_input(i).shape) for i in range(d.num_inputs)},
                "outputs": {d.get_output(i).name: list(d.get_output(i).shape) for i in range(d.num_outputs)},
            }
            result = {"ok": {"layers": d.num_layers, **io}}
        except TrtdslError as e:
            result = {"error": type(e).__name__, "message": str(e)}
        except BaseException as e:  # reported to the test, which fails on it
            result = {"foreign": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}
        result["seconds"] = time.monotonic() - start
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    _serve()
