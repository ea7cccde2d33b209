"""Load a synthetic checkpoint in every format and hand each array to ``trt.Weights``.

Compares trtdsl.weights.load with the naive way (read everything with
h5py/numpy/torch/safetensors, then ``astype(float32)`` a copy for TensorRT),
each case in its own process, measuring wall time and peak RSS (``ru_maxrss``
of that process from ``os.wait4``). After handing the arrays over, each case
reads every byte once, as TensorRT does when it builds, so memory-mapped pages
count too. The goal: peak RSS above the interpreter's baseline within 1.2x of
the weight bytes.

The baseline is the case's RSS after importing TensorRT, trtdsl (and torch for
.pt); page cache is warm since each checkpoint was just written.

    python bench/weights.py --size-gb 0.5
    python bench/weights.py --size-gb 2 --formats npz h5 safetensors torch
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORMATS = ["npz", "h5", "safetensors", "torch", "wts"]
SUFFIX = {"npz": ".npz", "h5": ".h5", "safetensors": ".safetensors", "torch": ".pt", "wts": ".wts"}
GOAL = 1.2


def shapes(total_bytes: int, n: int) -> list[tuple[int, ...]]:
    """Conv-like and linear-like float32 tensors summing to about ``total_bytes``."""
    per = max(total_bytes // (4 * n), 16)
    out = []
    for i in range(n):
        out.append((max(per // 1152, 1), 128, 3, 3) if i % 2 else (max(per // 1024, 1), 1024))
    return out


def arrays(total_bytes: int, n: int):
    rng = np.random.default_rng(0)
    for i, shape in enumerate(shapes(total_bytes, n)):
        yield f"layer{i // 2}.{'conv' if i % 2 else 'fc'}.weight", rng.random(shape, dtype=np.float32)


def generate(fmt: str, path: Path, total_bytes: int, n: int) -> None:
    if fmt == "npz":  # what np.savez does, one array at a time
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            for name, a in arrays(total_bytes, n):
                with z.open(name + ".npy", "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, a)
    elif fmt == "h5":
        import h5py

        with h5py.File(path, "w") as f:
            for name, a in arrays(total_bytes, n):
                f.create_dataset(name.replace(".", "/"), data=a)
    elif fmt == "safetensors":
        from safetensors.numpy import save_file

        save_file(dict(arrays(total_bytes, n)), str(path))
    elif fmt == "torch":
        import torch

        torch.save({k: torch.from_numpy(v) for k, v in arrays(total_bytes, n)}, path)
    elif fmt == "wts":
        from trtdsl.weights import write_wts

        write_wts(path, dict(arrays(total_bytes, n)))


def naive_read(fmt: str, path: Path) -> dict[str, np.ndarray]:
    """Everything read into memory the usual way."""
    if fmt == "npz":
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    if fmt == "h5":
        import h5py

        out = {}
        with h5py.File(path, "r") as f:
            f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        return out
    if fmt == "safetensors":
        from safetensors.numpy import load_file

        return load_file(str(path))
    if fmt == "torch":
        import torch

        return {k: v.numpy() for k, v in torch.load(path, weights_only=True).items()}
    out = {}  # .wts read the straightforward way: one int() per value
    with open(path) as f:
        next(f)
        for line in f:
            name, _, *words = line.split()
            out[name] = np.array([int(w, 16) for w in words], np.uint32).view(np.float32)
    return out


def child(fmt: str, mode: str, path: Path) -> None:
    import resource

    from trtdsl import _trt

    trt = _trt.load()
    from trtdsl import weights

    if fmt == "torch":
        import torch  # noqa: F401 - its libraries are not weights: count them in the baseline

    base = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()  # RSS now
    t0 = time.perf_counter()
    kept, handed = [], []
    if mode == "trtdsl":
        store = weights.load(path)
        for name in store:
            a = np.ascontiguousarray(store[name])  # what Network.keep does; no copy for a C-contiguous map
            kept.append(a)
            handed.append(trt.Weights(a))
    else:
        for raw in naive_read(fmt, path).values():
            a = raw.astype(np.float32)  # the usual copy before trt.Weights
            kept.append(a)
            handed.append(trt.Weights(a))
    t1 = time.perf_counter()
    checksum = sum(float(a.sum(dtype=np.float64)) for a in kept)  # TensorRT reads every byte at build time
    t2 = time.perf_counter()
    nbytes = sum(a.nbytes for a in kept)
    print(json.dumps({"base": base, "load_s": t1 - t0, "touch_s": t2 - t1, "bytes": nbytes, "checksum": checksum}))


def run_case(fmt: str, mode: str, path: Path) -> dict:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", fmt, mode, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{fmt}/{mode} failed with exit code {proc.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak"] = usage.ru_maxrss * 1024
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=2.0, help="checkpoint size (default 2 GB)")
    ap.add_argument("--wts-size-gb", type=float, default=0.1, help=".wts is text (2.25x the bytes); capped size")
    ap.add_argument("--tensors", type=int, default=200)
    ap.add_argument("--formats", nargs="+", default=FORMATS, choices=FORMATS)
    ap.add_argument("--dir", type=Path, default=None, help="where to write the checkpoints (default: a temp dir)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--generate", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], Path(args.child[2]))
        return
    if args.generate:
        fmt, path, size = args.generate
        generate(fmt, Path(path), int(size), args.tensors)
        return
    tmp = tempfile.TemporaryDirectory(dir=args.dir)
    rows = []
    for fmt in args.formats:
        size = int((args.wts_size_gb if fmt == "wts" else args.size_gb) * 1e9)
        path = Path(tmp.name) / f"ckpt{SUFFIX[fmt]}"
        t = time.perf_counter()
        # Generate in a child too: Linux carries a process's peak RSS across fork+exec, so a
        # parent that held the arrays would inflate every measured child.
        gen = [sys.executable, __file__, "--generate", fmt, str(path), str(size), "--tensors", str(args.tensors)]
        subprocess.run(gen, check=True, cwd=ROOT)
        print(f"wrote {path.name}: {path.stat().st_size / 1e9:.2f} GB in {time.perf_counter() - t:.1f} s", flush=True)
        results = {mode: run_case(fmt, mode, path) for mode in ("naive", "trtdsl")}
        rows.append((fmt, results))
        path.unlink()
    header = f"{'format':<12}{'GB':>6} | {'naive load s':>12}{'peak/W':>8} | {'trtdsl load s':>13}{'touch s':>8}{'peak/W':>8} | {'RSS ratio':>9}  goal"
    print("\npeak/W = (peak RSS - interpreter baseline) / weight bytes; RSS ratio = naive extra / trtdsl extra")
    print(header)
    print("-" * len(header))
    for fmt, r in rows:
        w = r["trtdsl"]["bytes"]
        extra = {m: r[m]["peak"] - r[m]["base"] for m in r}
        ok = "ok" if extra["trtdsl"] <= GOAL * w else "MISSED"
        print(
            f"{fmt:<12}{w / 1e9:>6.2f} | {r['naive']['load_s']:>12.2f}{extra['naive'] / w:>8.2f} | "
            f"{r['trtdsl']['load_s']:>13.2f}{r['trtdsl']['touch_s']:>8.2f}{extra['trtdsl'] / w:>8.2f} | "
            f"{extra['naive'] / max(extra['trtdsl'], 1):>9.2f}  {ok} (<= {GOAL}x)"
        )


if __name__ == "__main__":
    main()
