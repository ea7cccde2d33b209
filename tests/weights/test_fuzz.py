"""Mutated real files of every format give arrays as declared or a TrtdslError: never a crash, a hang,
another exception, or bytes of another file.

Each load runs in the long-lived load server (conftest.py: a time and memory
limit, libraries imported once). The seeds are real files: the Keras 3 and
tf_keras fixtures, and files numpy, h5py, safetensors, torch and trtdsl write
here. Every seed gets deterministic mutations (truncation at many points, bit
flips spread over the file, corrupted header and tail, random bodies behind
the real magic) plus hypothesis examples. ``-m fuzz`` runs thousands more.

Set ``TRTDSL_FUZZ_REPORT=path.json`` to write the count of inputs and outcomes per seed.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import h5py
import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trtdsl import weights as W

from .._mutations import mutations

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "weights"
WORK = Path(tempfile.mkdtemp(prefix="trtdsl-fuzz-"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
SECRET = b"TRTDSL-SECRET-MARKER-9f3c"  # lives in a file beside every case; no load may return it
(WORK / "secret.bin").write_bytes(SECRET * 64)
LIMITS = {"h5_timeout": 10.0}  # a hang inside HDF5 surfaces within the case's time limit
TALLY: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
_count = itertools.count()


def _write_seeds() -> dict[str, tuple[bytes, dict]]:
    """{seed name: (bytes, {weight name: (shape, dtype)} the writer stored, or {} for fixtures)}."""
    rng = np.random.default_rng(0)
    data = {
        "a.weight": rng.standard_normal((4, 3)).astype(np.float32),
        "a.bias": np.arange(4, dtype=np.int64),
        "b.weight": rng.standard_normal((2, 2, 3)).astype(np.float16),
    }
    want = {k: (v.shape, v.dtype.str) for k, v in data.items()}
    d = WORK / "seeds"
    d.mkdir()
    np.savez(d / "s.npz", **data)
    np.savez_compressed(d / "c.npz", **data)
    np.save(d / "s.npy", data["a.weight"])
    from safetensors.numpy import save_file

    save_file(data, str(d / "s.safetensors"))
    fp8 = {"w": data["a.weight"].astype(ml_dtypes.float8_e4m3fn), "w_scale": np.float32([0.5])}  # an FP8 checkpoint
    save_file(fp8, str(d / "fp8.safetensors"))
    with h5py.File(d / "s.h5", "w") as f:
        f["g/a"] = data["a.weight"]
        f.create_dataset("g/b", data=rng.standard_normal((40, 3)), chunks=(8, 3), compression="gzip", shuffle=True)
        f.create_dataset("c", data=data["a.bias"], chunks=(2,))
    torch.save({k: torch.from_numpy(v) for k, v in data.items()}, d / "s.pt")
    torch.save({k: torch.from_numpy(v) for k, v in data.items()}, d / "legacy.pt", _use_new_zipfile_serialization=False)
    torch.save({"w": torch.from_numpy(fp8["w"].view(np.uint8)).view(torch.float8_e4m3fn)}, d / "fp8.pt")
    W.write_wts(d / "s.wts", {k: v for k, v in data.items() if v.dtype == np.float32})
    with zipfile.ZipFile(FIX / "keras3_convnet.keras") as zin, zipfile.ZipFile(d / "deflated.keras", "w") as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, zin.read(item), compress_type=zipfile.ZIP_DEFLATED)
    seeds = {p.name: (p.read_bytes(), {}) for p in d.iterdir()}
    seeds["s.npz"] = (seeds["s.npz"][0], want)
    seeds["s.safetensors"] = (seeds["s.safetensors"][0], want)
    for name in ("keras3_convnet.keras", "keras3_seqnet.keras", "keras3_convnet.h5", "keras3_seqnet.h5",
                 "tfkeras_convnet.h5", "tfkeras_seqnet.h5", "tfkeras_convnet_weights.h5"):  # fmt: skip
        seeds[name] = ((FIX / name).read_bytes(), {})
    return seeds


SEEDS = _write_seeds()


def run_case(loader, seed: str, label: str, data: bytes) -> str | None:
    """Load one mutated file; the failure description, or None when the outcome is sound."""
    path = WORK / f"case{next(_count)}{Path(seed).suffix}"  # a new name: an old map may still hold the last one
    path.write_bytes(data)
    try:
        result = loader.load(path, marker=SECRET.hex(), limits=LIMITS)
    finally:
        path.unlink()
    outcome = "loaded" if "ok" in result else "TrtdslError" if "error" in result else "FAILED"
    TALLY[seed][outcome] += 1
    if "error" in result and ("HDF5 crashed" in result["message"] or "HDF5 did not answer" in result["message"]):
        TALLY[seed]["of which the HDF5 worker crashed or hung"] += 1
    if outcome == "FAILED":
        keep = WORK.parent / f"trtdsl-fuzz-failure-{seed}-{label}"
        keep.write_bytes(data)
        return f"{seed} {label}: {result} (input kept at {keep})"
    return None


def _sweep(loader, seed: str, n: int) -> None:
    data = SEEDS[seed][0]
    failures = [f for label, m in mutations(data, n, seed=len(data)) if (f := run_case(loader, seed, label, m))]
    assert not failures, "\n".join(failures[:10])


# The default run tries about 50 mutations per seed; -m fuzz about 600 more.
SIZES = [48, pytest.param(600, marks=pytest.mark.fuzz, id="fuzz")]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_mutations_give_arrays_or_trtdsl_error(loader, seed, n):
    _sweep(loader, seed, n)


def _hypothesis(examples: int):
    mutation = st.one_of(
        st.tuples(st.just("truncate"), st.floats(0, 1)),
        st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)), min_size=1, max_size=8)),
        st.tuples(st.just("splice"), st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=64))),
        st.tuples(st.just("random"), st.binary(max_size=512)),
    )
    config = settings(
        max_examples=examples, deadline=None, database=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )  # fmt: skip
    return lambda fn: config(given(mutation=mutation)(fn))


def _apply(data: bytes, mutation) -> bytes:
    kind, arg = mutation
    out = bytearray(data)
    if kind == "truncate":
        return bytes(out[: int(arg * len(out))])
    if kind == "flip":
        for pos, bit in arg:
            out[min(int(pos * len(out)), len(out) - 1)] ^= 1 << bit
        return bytes(out)
    if kind == "splice":
        at, blob = arg
        i = min(int(at * len(out)), len(out))
        out[i : i + len(blob)] = blob
        return bytes(out)
    return bytes(arg)


@pytest.mark.parametrize("examples", [20, pytest.param(300, marks=pytest.mark.fuzz, id="fuzz")])
@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_hypothesis_mutations(loader, seed, examples):
    @_hypothesis(examples)
    def check(mutation):
        failure = run_case(loader, seed, f"hypothesis-{mutation[0]}", _apply(SEEDS[seed][0], mutation))
        assert failure is None, failure

    check()


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_seeds_themselves_load(loader, seed, tmp_path):
    path = tmp_path / seed
    path.write_bytes(SEEDS[seed][0])
    result = loader.load(path)
    assert "ok" in result and len(result["ok"]) > 0, result
    for name, (shape, dtype) in SEEDS[seed][1].items():  # what the writer stored, name for name
        assert result["ok"][name][:2] == [list(shape), str(np.dtype(dtype).newbyteorder("="))]


def _report() -> None:
    target = os.environ.get("TRTDSL_FUZZ_REPORT")
    if target and TALLY:
        Path(target).write_text(json.dumps({k: dict(v) for k, v in sorted(TALLY.items())}, indent=1))


atexit.register(_report)
