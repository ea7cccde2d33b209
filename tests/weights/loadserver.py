"""A long-lived process that loads weight files for the fuzz and security tests (run by path, not collected).

It imports numpy, torch, h5py, safetensors and trtdsl once, caps its own
address space, then answers one request per line on stdin: load a file, read
every weight, and report JSON on stdout. Whatever the loader does, the answer
is one of:

- ``{"ok": {name: [shape, dtype]}}``: every array matched the shape and dtype the
  store declared for it, none holds the secret marker of another file, and none
  is larger than the load's limits let a file of its size inflate to (a stride-0
  view of a 4-byte storage is a bomb until it is copied);
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


def _open(path: Path, req: dict, limits: W.Limits) -> W.WeightStore:
    """``W.load``, or with ``"keras_folder": true`` what ``trtdsl.keras.load_model`` reads of a Keras 3 model
    saved unzipped: its config.json and metadata.json, then model.weights.h5 named through that config."""
    trusted = req.get("trusted", False)
    if not req.get("keras_folder"):
        return W.load(path, limits=limits, trusted=trusted, **req.get("options", {}))
    from trtdsl.weights.keras import load_keras_weights
    from trtdsl.weights.keras_config import parse_model, read
    from trtdsl.weights.keras_config.file import FOLDER_WEIGHTS, folder_file

    model = read(path, trusted=trusted, limits=limits)
    parse_model(model.config)
    weights = folder_file(path, FOLDER_WEIGHTS, "a Keras 3 model saved with zipped=False")
    return load_keras_weights(weights, model.config, trusted=trusted, limits=limits)


def handle(req: dict) -> dict:
    marker = bytes.fromhex(req.get("marker", ""))
    limits = W.Limits(**req.get("limits", {}))
    path = Path(req["path"])
    try:  # the bytes the arrays may come from: the file, or every file of a folder
        size = sum(p.stat().st_size for p in path.iterdir() if p.is_file()) if path.is_dir() else path.stat().st_size
    except OSError:
        size = 0
    try:
        w = _open(path, req, limits)
        out = {}
        try:
            for name in w:
                arr = w[name]
                if tuple(arr.shape) != tuple(w.shape(name)) or arr.dtype != w.dtype(name):
                    return {"other": "Mismatch", "message": f"{name}: {arr.shape} {arr.dtype} vs declared"}
                if not limits.inflated_ok(arr.nbytes, size):
                    return {"other": "Amplified", "message": f"{name}: {arr.nbytes} bytes from {size} bytes of file"}
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
