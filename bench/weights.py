"""Load a synthetic checkpoint in every format and hand each array to ``trt.Weights``.

Compares trtdsl.weights.load with the naive way (read everything with
h5py/numpy/torch/safetensors, then ``astype(float32)`` a copy for TensorRT),
each case in its own process, measuring wall time, CPU time and peak RSS (that
process's ``VmHWM`` before a second load). After handing the arrays over, each case
reads every byte once, as TensorRT does when it builds, so memory-mapped pages
count too. The goal: peak RSS above the interpreter's baseline within 1.2x of
the weight bytes.

The baseline is the case's RSS after importing TensorRT, trtdsl (and torch for
.pt); page cache is warm since each checkpoint was just written.

``--before ROOT`` adds a column for the trtdsl found at ROOT (e.g. the main
branch), run interleaved with this tree's: the cost of treating files as
untrusted (HDF5 structure in a worker process, CRC-32 of zip members, bounded
parsing) is this tree's load time against it, and the ``trusted`` column is
this tree with ``trusted=True`` (HDF5 in-process). The goal: load time within
0.3 s + 1.3x of before; peak RSS within 1.2x of the weight bytes. The HDF5
worker is a separate process: its own peak RSS is reported beside.

    python bench/weights.py --size-gb 0.5
    python bench/weights.py --size-gb 2 --formats npz h5 safetensors torch
    python bench/weights.py --size-gb 1 --before /work/main
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

FORMATS = ["npz", "h5", "h5gz", "keras", "safetensors", "torch", "wts"]
SUFFIX = {"npz": ".npz", "h5": ".h5", "h5gz": ".h5", "keras": ".keras", "safetensors": ".safetensors",
          "torch": ".pt", "wts": ".wts"}  # fmt: skip
GOAL = 1.2
TIME_GOAL = (0.3, 1.3)  # seconds per file + ratio to before


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
    elif fmt in ("h5", "h5gz"):
        import h5py

        gz = {"chunks": True, "compression": "gzip", "compression_opts": 1} if fmt == "h5gz" else {}
        with h5py.File(path, "w") as f:
            for name, a in arrays(total_bytes, n):
                f.create_dataset(name.replace(".", "/"), data=a, **gz)
    elif fmt == "keras":  # what Keras 3 saves: config.json and a stored model.weights.h5
        import io

        import h5py

        layers, buf = [], io.BytesIO()
        with h5py.File(buf, "w") as f:
            for i, (_, a) in enumerate(arrays(total_bytes, n)):
                f.create_dataset(f"layers/dense{'_' + str(i) if i else ''}/vars/0", data=a.reshape(a.shape[0], -1))
                layers.append({"class_name": "Dense", "config": {"name": f"d{i}", "use_bias": False}})
        config = {"class_name": "Functional", "config": {"name": "m", "layers": layers}}
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            z.writestr("metadata.json", "{}")
            z.writestr("config.json", json.dumps(config))
            with z.open("model.weights.h5", "w", force_zip64=True) as dst:
                dst.write(buf.getbuffer())
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
    if fmt in ("h5", "h5gz", "keras"):
        import h5py

        out = {}
        src = zipfile.ZipFile(path).open("model.weights.h5") if fmt == "keras" else path
        with h5py.File(src, "r") as f:
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

    if mode == "before":
        sys.path.insert(0, os.environ["BENCH_BEFORE_ROOT"])
        sys.modules.pop("trtdsl", None)
    from trtdsl import _trt

    trt = _trt.load() if _trt.available() else None  # without TensorRT, the arrays are only kept
    from trtdsl import weights

    if fmt == "torch":
        import torch  # noqa: F401 - its libraries are not weights: count them in the baseline

    base = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize()  # RSS now
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    kept, handed = [], []
    if mode in ("trtdsl", "trusted", "before"):
        store = weights.load(path, trusted=True) if mode == "trusted" else weights.load(path)
        for name in store:
            a = np.ascontiguousarray(store[name])  # what Network.keep does; no copy for a C-contiguous map
            kept.append(a)
            handed.append(trt.Weights(a) if trt else a)
    else:
        for raw in naive_read(fmt, path).values():
            a = raw.astype(np.float32)  # the usual copy before trt.Weights
            kept.append(a)
            handed.append(trt.Weights(a) if trt else a)
    t1 = time.perf_counter()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
    client = getattr(sys.modules.get("trtdsl.weights.h5worker"), "CLIENT", None)
    worker_pid = client.proc.pid if client is not None and client.proc is not None else None
    if worker_pid is not None:  # the HDF5 worker's CPU (its start included) is part of the load's cost
        fields = Path(f"/proc/{worker_pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    checksum = sum(float(a.sum(dtype=np.float64)) for a in kept)  # TensorRT reads every byte at build time
    t2 = time.perf_counter()
    nbytes = sum(a.nbytes for a in kept)
    status = Path("/proc/self/status").read_text()  # the peak so far: the second load below maps the file again
    peak = int(status.split("VmHWM:")[1].split()[0]) * 1024
    again = 0.0  # a second load of the file in the same process: what each further file costs
    if mode != "naive":
        store.close()
        t3 = time.perf_counter()
        second = weights.load(path, trusted=True) if mode == "trusted" else weights.load(path)
        for name in second:
            second[name]
        again = time.perf_counter() - t3
    worker = 0  # the HDF5 worker's own peak RSS, when this trtdsl has one and started it
    if worker_pid is not None:
        status = Path(f"/proc/{worker_pid}/status").read_text()
        worker = int(status.split("VmHWM:")[1].split()[0]) * 1024
    print(json.dumps({"base": base, "load_s": t1 - t0, "touch_s": t2 - t1, "bytes": nbytes, "checksum": checksum,
                      "worker_peak": worker, "again_s": again, "peak": peak, "cpu_s": cpu}))  # fmt: skip


def run_case(fmt: str, mode: str, path: Path, before: Path | None = None) -> dict:
    env = {**os.environ, "BENCH_BEFORE_ROOT": str(before or "")}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", fmt, mode, str(path)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env=env,
    )  # fmt: skip
    out = proc.stdout.read()
    proc.wait()
    if proc.returncode:
        raise SystemExit(f"{fmt}/{mode} failed with exit code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=2.0, help="checkpoint size (default 2 GB)")
    ap.add_argument("--wts-size-gb", type=float, default=0.1, help=".wts is text (2.25x the bytes); capped size")
    ap.add_argument("--tensors", type=int, default=200)
    ap.add_argument("--formats", nargs="+", default=FORMATS, choices=FORMATS)
    ap.add_argument("--dir", type=Path, default=None, help="where to write the checkpoints (default: a temp dir)")
    ap.add_argument("--before", type=Path, default=None, help="root of the trtdsl to compare with (e.g. main)")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved runs per mode; the best time is kept")
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
        modes = ["naive", *(["before"] if args.before else []), "trtdsl", "trusted"]
        results: dict[str, dict] = {}
        for _ in range(args.repeat):  # interleaved, so load on the machine hits every mode alike
            for mode in modes:
                r = run_case(fmt, mode, path, args.before)
                if (
                    mode not in results
                    or r["load_s"] + r["touch_s"] < results[mode]["load_s"] + results[mode]["touch_s"]
                ):
                    results[mode] = r
        rows.append((fmt, results))
        path.unlink()
    print(
        "\nload s: first load and reading every array (wall); cpu s: its CPU time, the HDF5 worker's included;"
        "\n2nd s: the same again in that process (worker warm); goal: load within 0.3 s + 1.3x of before"
        "\npeak/W = (peak RSS - interpreter baseline) / weight bytes; worker = the HDF5 worker's peak RSS"
    )
    header = (
        f"{'format':<12}{'GB':>6} | {'mode':<8}{'load s':>8}{'cpu s':>7}{'touch s':>8}{'2nd s':>7}{'peak/W':>8}"
        f"{'worker MB':>10} | goal"
    )
    print(header)
    print("-" * len(header))
    for fmt, r in rows:
        w = r["trtdsl"]["bytes"]
        for mode, m in r.items():
            extra = m["peak"] - m["base"]
            note = ""
            if mode == "trtdsl":
                note = f"RSS {'ok' if extra <= GOAL * w else 'MISSED'} (<= {GOAL}x)"
                if "before" in r:
                    b = r["before"]
                    budget = TIME_GOAL[0] + TIME_GOAL[1] * b["load_s"]
                    cpu_budget = TIME_GOAL[0] + TIME_GOAL[1] * b["cpu_s"]
                    note += (
                        f"; wall {m['load_s'] / max(b['load_s'], 1e-9):.2f}x before "
                        f"{'ok' if m['load_s'] <= budget else 'MISSED'} (<= {budget:.2f} s), cpu "
                        f"{'ok' if m['cpu_s'] <= cpu_budget else 'MISSED'} (<= {cpu_budget:.2f} s), 2nd file "
                        f"{m['again_s'] / max(b['again_s'], 1e-9):.2f}x"
                    )
            print(
                f"{fmt:<12}{w / 1e9:>6.2f} | {mode:<8}{m['load_s']:>8.2f}{m['cpu_s']:>7.2f}{m['touch_s']:>8.2f}"
                f"{m['again_s']:>7.2f}{extra / w:>8.2f}"
                f"{m.get('worker_peak', 0) / 1e6:>10.0f} | {note}"
            )


if __name__ == "__main__":
    main()
