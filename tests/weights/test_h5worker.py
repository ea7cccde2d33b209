"""weights/h5worker: HDF5 runs in a worker process that cannot take this one down: a crash or a hang
becomes a WeightError naming the file, a killed worker is replaced, threads share it, and trusted=True
reads in this process instead."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from trtdsl import WeightError
from trtdsl import weights as W
from trtdsl.weights import h5worker

from ._crafted import FIX


def test_hdf5_worker_failures_become_weight_errors_naming_the_file():
    path = FIX / "tfkeras_seqnet.h5"
    # A worker whose address space is too small to import NumPy dies (Python's SIGSEGV or exit status 1).
    with pytest.raises(
        WeightError,
        match=r"tfkeras_seqnet.h5: HDF5 crashed reading it \((killed by SIG[A-Z]+|exit status 1)\): the file is",
    ):
        W.load(path, limits=W.Limits(h5_worker_memory=64 << 20))
    # A worker that does not answer in time is killed.
    with pytest.raises(WeightError, match=r"tfkeras_seqnet.h5: HDF5 did not answer within 0 s \(killed it\)"):
        W.load(path, limits=W.Limits(h5_timeout=1e-4))
    assert len(W.load(path)) > 0  # and the next load gets a fresh worker


# One-byte changes that send HDF5 2.0 into an endless loop, found by fuzzing: the first two by a random
# byte hunt over the Keras fixtures read in-process (each hung until killed after 20 s), the third by
# test_fuzz.py's deterministic bit flips (a worker timeout in the -m fuzz run).
HANGS = [("tfkeras_convnet.h5", 7664, 166), ("tfkeras_seqnet.h5", 8688, 147), ("keras3_seqnet.h5", 12681, 1)]


@pytest.mark.parametrize(("seed", "pos", "value"), HANGS)
def test_hdf5_that_hangs_the_c_library_becomes_a_weight_error(tmp_path, seed, pos, value):
    data = bytearray((FIX / seed).read_bytes())
    data[pos] = value
    path = tmp_path / seed
    path.write_bytes(data)
    start = time.perf_counter()
    with pytest.raises(
        WeightError, match=rf"{seed}: HDF5 did not answer within 3 s \(killed it\): the file is corrupt"
    ):
        W.load(path, limits=W.Limits(h5_timeout=3))
    assert time.perf_counter() - start < 15
    assert len(W.load(FIX / seed)) > 0


def test_a_killed_worker_is_replaced(tmp_path):
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.create_dataset("c", data=np.arange(10.0), chunks=(5,))
    w = W.load(tmp_path / "w.h5")
    h5worker.CLIENT.proc.kill()  # e.g. the OOM killer between two reads
    h5worker.CLIENT.proc.wait()
    np.testing.assert_array_equal(w["c"], np.arange(10.0))


@pytest.mark.parametrize("trusted", [False, True])
def test_threads_share_the_worker(tmp_path, trusted):
    from concurrent.futures import ThreadPoolExecutor

    want = {}
    for i in range(4):
        want[i] = np.arange(1000.0) * i
        with h5py.File(tmp_path / f"w{i}.h5", "w") as f:
            f.create_dataset("c", data=want[i], chunks=(100,), compression="gzip")

    def read(i: int) -> np.ndarray:
        with W.load(tmp_path / f"w{i % 4}.h5", trusted=trusted) as w:
            return np.array(w["c"])

    with ThreadPoolExecutor(4) as pool:
        for i, got in enumerate(pool.map(read, range(16))):
            np.testing.assert_array_equal(got, want[i % 4])


def test_trusted_reads_hdf5_in_this_process(tmp_path):
    h5worker.CLIENT.kill()
    w = W.load(FIX / "tfkeras_convnet.h5", trusted=True)
    assert h5worker.CLIENT.proc is None  # no worker was started
    u = W.load(FIX / "tfkeras_convnet.h5")
    assert list(w) == list(u)
    for name in w:
        np.testing.assert_array_equal(w[name], u[name])


def test_exiting_with_a_trusted_keras_store_open_does_not_crash():
    # An h5py file over a zip member's file object, still open at interpreter teardown, crashed HDF5 (SIGSEGV).
    import subprocess
    import sys

    code = f"from trtdsl import weights; w = weights.load({str(FIX / 'keras3_convnet.keras')!r}, trusted=True); print(len(w))"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
