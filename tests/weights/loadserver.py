"""A long-lived process that loads weight files for the fuzz and security tests (run by path, not collected).

It imports numpy, torch, h5py, safetensors and trtdsl once, caps its own
address space, then answers one request per line on stdin: load a file, read
every weight, and report JSON on stdout. Whatever the loader does, the answer
is one of:

- ``{"ok": {name: [shape, dtype]}}``: every array matched the shape and dtype the
  store declared for it, and none holds the secret marker of another file;
- ``{"error": "WeightError", "message": ...}``: a TrtdslError;
- ``{"other": "TypeError", "message": traceback}``: any other exception (a test failure);

and the test side turns a crash or a hang of this process into a failure too.
"""

from __future__ import annotations

import json
import resource
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import torch  # noqa: F401 - imported once here, not per case

from trtdsl import TrtdslError
from trtdsl import weights as W


def handle(req: dict) -> dict:
    marker = bytes.fromhex(req.get("marker", ""))
    limits = W.Limits(**req.get("limits", {}))
    try:
        w = W.load(req["path"], limits=limits, trusted=req.get("trusted", False), **req.get("options", {}))
        out = {}
        try:
            for name in w:
                arr = w[name]
                if tuple(arr.shape) != tuple(w.shape(name)) or arr.dtype != w.dtype(name):
                    return {"other": "Mismatch", "message": f"{name}: {arr.shape} {arr.dtype} vs declared"}
                raw = np.ascontiguousarray(arr).view(np.uint8).tobytes()
                if marker and marker in raw:
                    return {"other": "Leak", "message": f"{name} holds bytes of another file"}
                with np.errstate(all="ignore"):
                    total = float(np.asarray(arr, np.float64).sum())
                out[name] = [list(arr.shape), str(arr.dtype), total]
        finally:
            w.close()
        return {"ok": out}
    except TrtdslError as e:
        return {"error": type(e).__name__, "message": str(e)}
    except Exception as e:
        return {"other": type(e).__name__, "message": "".join(traceback.format_exception(e))[-3000:]}


def main() -> None:
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        print(json.dumps(handle(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
