"""Mutated real files of every format give arrays as declared or a TrtdslError: never a crash, a hang,
another exception, or bytes of another file.

Each load runs in the long-lived load server (conftest.py: a time and memory
limit, libraries imported once). The seeds are real files: the Keras 3 and
tf_keras fixtures, and files numpy, h5py, safetensors, torch and trtdsl write
here. Every seed gets deterministic mutations (truncation at many points, bit
flips spread over the file, corrupted header and tail, random bodies behind
the real magic) plus hypothesis examples. ``-m fuzz`` runs thousands more.
Where a byte flip rarely makes a file lie well, edits of one field at a time do:
a shard index's weight_map values (in a folder holding links out, a FIFO, a
loop), an FP8 safetensors header's dtype, shape, offsets and length, and a torch
pickle's globals, integers and memo indexes.

Set ``TRTDSL_FUZZ_REPORT=path.json`` to write the count of inputs and outcomes per seed.
"""

from __future__ import annotations

import atexit
import collections
import functools
import io
import itertools
import json
import os
import pickletools
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


FP8_TYPES = ("float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "float8_e4m3fnuz", "float8_e5m2fnuz")


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
    codes = np.arange(24, dtype=np.uint8).reshape(4, 6)  # every FP8 code safetensors names, and a scale
    every = {n: codes.view(getattr(ml_dtypes, n)) for n in FP8_TYPES} | {"weight_scale_inv": np.float32([0.5, 2.0])}
    save_file(every, str(d / "fp8-all.safetensors"))
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


# ------------------------------------------------- structured mutations: the paths byte flips rarely reach
# Byte flips break a JSON header or a pickle long before they make it lie well. These edit one field at a time:
# a shard index's weight_map values and shape (into a folder that holds links out, a FIFO, a loop and a directory),
# an FP8 safetensors header's dtype, shape, offsets and length, and a torch pickle's globals, numbers and memo.
def _run_folder_case(loader, seed: str, label: str, folder: Path, index: str, data: bytes) -> str | None:
    """Write ``data`` as ``folder``'s index and load the folder; the failure description, or None when sound."""
    (folder / index).write_bytes(data)
    result = loader.load(folder, marker=SECRET.hex(), limits=LIMITS)
    outcome = "loaded" if "ok" in result else "TrtdslError" if "error" in result else "FAILED"
    TALLY[seed][outcome] += 1
    if outcome == "FAILED":
        keep = WORK.parent / f"trtdsl-fuzz-failure-{seed}-{label}.json"
        keep.write_bytes(data)
        return f"{seed} {label}: {result} (index kept at {keep})"
    return None


HOSTILE_SHARDS = [
    "../secret.bin", "/etc/passwd", "a/b", "a\\b", "", ".", "..", "x\0y", "\ud800", "\udcff", "n" * 5000,
    "link-out", "link-proc", "link-loop", "link-dangling", "fifo", "dir", "@INDEX", "@OTHER",
]  # fmt: skip


@functools.cache
def _sharded_folder(fmt: str) -> tuple[Path, str, dict]:
    """A sharded checkpoint of format ``fmt`` beside hostile neighbours: (folder, index name, index document)."""
    from ._samples import SHARDINGS, write_sharded

    how = next(h for h in SHARDINGS if h.format == fmt)
    folder = WORK / f"sharded-{fmt}"
    rng = np.random.default_rng(1)
    write_sharded(folder, {"a.weight": rng.standard_normal((3, 2)).astype(np.float32),
                           "a.bias": np.arange(3, dtype=np.int64), "b": np.ones(4, np.float16)}, how, n=2)  # fmt: skip
    (folder / "link-out").symlink_to(WORK / "secret.bin")
    (folder / "link-proc").symlink_to("/proc/self/environ")
    (folder / "link-loop").symlink_to("link-loop")
    (folder / "link-dangling").symlink_to("gone")
    os.mkfifo(folder / "fifo")  # opening it would block: the load server turns a hang into a failure
    (folder / "dir").mkdir()
    return folder, how.index, json.loads((folder / how.index).read_text())


def _index_cases(index: str, doc: dict, n: int):
    """(label, bytes) for an index: byte mutations, each weight_map value made hostile, and odd shapes."""
    raw = json.dumps(doc, indent=2).encode()
    yield from mutations(raw, n, seed=len(raw))
    shards = sorted(set(doc["weight_map"].values()))
    for tensor, home in sorted(doc["weight_map"].items()):
        stand_ins = {"@INDEX": index, "@OTHER": next(s for s in shards if s != home)}
        for i, hostile in enumerate(HOSTILE_SHARDS):
            name = stand_ins.get(hostile, hostile)
            yield f"{tensor}->{i}", json.dumps({**doc, "weight_map": {**doc["weight_map"], tensor: name}}).encode()
    wm = doc["weight_map"]
    odd = {
        "weight_map-list": {"weight_map": list(wm.items())},
        "weight_map-deep": '{"weight_map": {"a": ' + "[" * 50_000 + "]" * 50_000 + "}}",
        "metadata-deep": '{"metadata": {"x": ' + "[" * 900 + "]" * 900 + '}, "weight_map": ' + json.dumps(wm) + "}",
        "many-entries": {"weight_map": {**wm, **{f"t{i}": shards[0] for i in range(100_000)}}},
        "many-shards": {"weight_map": {f"t{i}": f"s{i}" for i in range(20_000)}},
        "empty": {"weight_map": {}},
        "values-null": {"weight_map": dict.fromkeys(wm)},
        "top-list": [doc],
        "top-string": "weight_map",
    }
    for label, value in odd.items():
        yield label, (value if isinstance(value, str) and value.startswith("{") else json.dumps(value)).encode()


@pytest.mark.parametrize("n", [24, pytest.param(400, marks=pytest.mark.fuzz, id="fuzz")])
@pytest.mark.parametrize("fmt", ["safetensors_index", "torch_index"])
def test_hostile_shard_indexes_give_arrays_or_trtdsl_error(loader, fmt, n):
    folder, index, doc = _sharded_folder(fmt)
    (folder / index).write_text(json.dumps(doc))
    assert "ok" in loader.load(folder, marker=SECRET.hex()), "the unmutated checkpoint loads"
    seed = f"{index} ({fmt})"
    cases = _index_cases(index, doc, n)
    failures = [f for label, data in cases if (f := _run_folder_case(loader, seed, label, folder, index, data))]
    assert not failures, "\n".join(failures[:10])


LYING = {  # what a header field may say instead of the truth
    "dtype": ["F8_E4M3", "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F8_E4M3FN", "f8_e4m3", "F8", "F4",
              "F6_E2M3", "BF16", "F64", "BOOL", "", None, 8, ["F8_E4M3"]],
    "shape": [[4, 7], [4, 5], [24], [2, 12], [], [0], [25], [-1, -24], [2**64, 0], [2**62, 2**62, 0], [1] * 65,
              [True, 24], [4.0, 6], "24", None, {"x": 24}],
    "data_offsets": [[1, 25], [0, 23], [0, 25], [-1, 23], [24, 0], [2**63, 2**63 + 24], [0, 2**64], [0], [0, 24, 48],
                     None, [0.0, 24.0], "0:24"],
}  # fmt: skip


def _header_cases(data: bytes):
    """(label, bytes): each tensor's dtype, shape and byte range replaced by each lie, offsets made to overlap
    the tensor before, and the header length field made to lie."""
    n = int.from_bytes(data[:8], "little")
    header, body = json.loads(data[8 : 8 + n]), data[8 + n :]

    def pack(h: dict, length: int | None = None) -> bytes:
        raw = json.dumps(h).encode()
        return (len(raw) if length is None else length).to_bytes(8, "little") + raw + body

    names = [k for k in header if k != "__metadata__"]
    for name in names:
        for field, lies in LYING.items():
            for i, lie in enumerate(lies):
                yield f"{name}.{field}{i}", pack({**header, name: {**header[name], field: lie}})
    by_start = sorted(names, key=lambda k: header[k]["data_offsets"][0])
    for before, name in itertools.pairwise(by_start):  # overlap the tensor before: two names, one span
        begin = header[before]["data_offsets"][0]
        span = header[name]["data_offsets"][1] - header[name]["data_offsets"][0]
        yield (
            f"{name}-overlaps-{before}",
            pack({**header, name: {**header[name], "data_offsets": [begin, begin + span]}}),
        )
    raw_len = len(json.dumps(header).encode())
    for i, length in enumerate([0, 1, raw_len - 1, raw_len + 1, len(data), 2**63, 2**64 - 1]):
        yield f"length{i}", pack(header, length)
    yield "metadata-list", pack({**header, "__metadata__": [1]})
    yield "metadata-deep", pack({**header, "__metadata__": {"x": json.loads("[" * 500 + "]" * 500)}})


@pytest.mark.parametrize("mmap", [True, False])
def test_lying_fp8_safetensors_headers_give_arrays_or_trtdsl_error(loader, mmap):
    seed = "fp8-all.safetensors"
    data = SEEDS[seed][0]
    failures = []
    for label, case in _header_cases(data):
        path = WORK / f"case{next(_count)}.safetensors"
        path.write_bytes(case)
        try:
            result = loader.load(path, marker=SECRET.hex(), limits=LIMITS, options={"mmap": mmap})
        finally:
            path.unlink()
        TALLY[seed]["loaded" if "ok" in result else "TrtdslError" if "error" in result else "FAILED"] += 1
        if "ok" not in result and "error" not in result:
            failures.append(f"{label}: {result}")
    assert not failures, "\n".join(failures[:10])


# Callables torch.load(weights_only=True) allows whose call builds from a number rather than the file's data, and
# harmless ones: put in place of each GLOBAL of a real torch.save pickle.
GLOBALS = [
    ("builtins", "bytearray"), ("torch", "FloatTensor"), ("torch", "Tensor"), ("torch.storage", "UntypedStorage"),
    ("torch", "ByteStorage"), ("torch._utils", "_rebuild_meta_tensor_no_storage"),
    ("torch._utils", "_rebuild_wrapper_subclass"), ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"),
    ("torch._tensor", "_rebuild_from_type_v2"), ("builtins", "set"), ("collections", "Counter"), ("torch", "Size"),
    ("_codecs", "encode"), ("torch._utils", "_rebuild_tensor_v3"), ("os", "system"),
]  # fmt: skip
NUMBERS = [2**40, 2**62, -1, 0]


def _pickle_cases(pkl: bytes):
    """(label, pickle): each GLOBAL, each integer and each memo index of ``pkl`` replaced, one at a time."""
    from ._crafted import op_global, op_int

    ops = list(pickletools.genops(io.BytesIO(pkl)))
    ends = [pos for _op, _arg, pos in ops[1:]] + [len(pkl)]
    for (op, arg, pos), end in zip(ops, ends, strict=True):
        if op.name == "GLOBAL":
            swaps = [op_global(m, n) for m, n in GLOBALS]
        elif op.name in ("BININT", "BININT1", "BININT2", "LONG1"):
            swaps = [op_int(v) for v in NUMBERS]
        elif op.name in ("BINGET", "BINPUT", "LONG_BINGET", "LONG_BINPUT"):
            swaps = [(b"j" if "GET" in op.name else b"r") + v.to_bytes(4, "little") for v in (arg + 1, 2**32 - 1)]
        else:
            continue
        for i, swap in enumerate(swaps):
            yield f"{op.name}@{pos}.{i}", pkl[:pos] + swap + pkl[end:]
    yield "deep", pkl[:2] + b"]" + b"(]" * 20_000 + b"e" * 20_000 + b"0" + pkl[2:]  # 20,000 nested lists, dropped


def _torch_cases(seed: str):
    """(label, file bytes): a torch.save file's object pickle replaced by each of :func:`_pickle_cases`."""
    data = SEEDS[seed][0]
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            (member,) = [n for n in z.namelist() if n.endswith("/data.pkl")]
            items = [(i, z.read(i)) for i in z.infolist()]
        for label, pkl in _pickle_cases(dict((i.filename, b) for i, b in items)[member]):
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as z:
                for info, raw in items:
                    z.writestr(info, pkl if info.filename == member else raw)
            yield label, out.getvalue()
        return
    stream, ends = io.BytesIO(data), []
    for _ in range(4):  # magic number, protocol, system info, the object: torch's legacy layout
        for _op in pickletools.genops(stream):
            pass
        ends.append(stream.tell())
    for label, pkl in _pickle_cases(data[ends[2] : ends[3]]):
        yield label, data[: ends[2]] + pkl + data[ends[3] :]


@pytest.mark.parametrize("seed", ["s.pt", "legacy.pt", "fp8.pt"])
def test_edited_torch_pickles_give_arrays_or_trtdsl_error(loader, seed):
    failures = [f for label, case in _torch_cases(seed) if (f := run_case(loader, seed, f"pickle-{label}", case))]
    assert not failures, "\n".join(failures[:10])
