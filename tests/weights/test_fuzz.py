"""Truncated, bit-flipped and random files raise WeightError (or load), for every loader, and never hang."""

from __future__ import annotations

import atexit
import itertools
import shutil
import signal
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trtdsl import WeightError
from trtdsl import weights as W

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "weights"
WORK = Path(tempfile.mkdtemp(prefix="trtdsl-fuzz-"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
_count = itertools.count()


def _seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    data = {"a.weight": rng.standard_normal((4, 3)).astype(np.float32), "a.bias": np.arange(4, dtype=np.int64)}
    d = WORK / "seeds"
    d.mkdir()
    np.savez(d / "s.npz", **data)
    np.savez_compressed(d / "c.npz", **data)
    np.save(d / "s.npy", data["a.weight"])
    from safetensors.numpy import save_file

    save_file(data, str(d / "s.safetensors"))
    with h5py.File(d / "s.h5", "w") as f:
        f["g/a"] = data["a.weight"]
        f.create_dataset("g/b", data=data["a.weight"], chunks=(2, 3), compression="gzip")
    torch.save({k: torch.from_numpy(v) for k, v in data.items()}, d / "s.pt")
    W.write_wts(d / "s.wts", data)
    seeds = {p.name: p.read_bytes() for p in d.iterdir()}
    for name in ("keras3_convnet.keras", "tfkeras_seqnet.h5"):
        seeds[name] = (FIX / name).read_bytes()
    return seeds


SEEDS = _seeds()


class Hang(Exception):
    pass


def _alarm(*_):
    raise Hang("a loader ran for more than 10 s")


def load_everything(data: bytes, suffix: str) -> None:
    path = WORK / f"case{next(_count)}{suffix}"  # a new name each time: earlier stores may still map old files
    path.write_bytes(data)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        w = W.load(path)
        for name in w:
            float(np.asarray(w[name], dtype=np.float64).sum())
        w.close()
    except WeightError:
        pass
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


mutations = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 7)), min_size=1, max_size=8)),
    st.tuples(st.just("random"), st.binary(max_size=512)),
)

FUZZ = settings(
    max_examples=25, deadline=5000, database=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@pytest.mark.parametrize("seed", sorted(SEEDS))
@FUZZ
@given(mutation=mutations)
def test_mutated_files_raise_only_weight_error(seed, mutation):
    data = bytearray(SEEDS[seed])
    kind, arg = mutation
    if kind == "truncate":
        data = data[: int(arg * len(data))]
    elif kind == "flip":
        for pos, bit in arg:
            data[min(int(pos * len(data)), len(data) - 1)] ^= 1 << bit
    else:
        data = bytearray(arg)
    load_everything(bytes(data), Path(seed).suffix)


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_seeds_themselves_load(seed):
    path = WORK / f"ok_{seed}"
    path.write_bytes(SEEDS[seed])
    assert len(W.load(path)) > 0
