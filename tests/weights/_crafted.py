"""Crafted weight files for the security tests: an object whose unpickling leaves a trace, a secret
another file holds, and a zip rewriter."""

from __future__ import annotations

import pathlib
import re
import zipfile
from pathlib import Path

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "weights"
SECRET = b"TRTDSL-SECRET-MARKER-51ab" * 8  # 200 bytes of another file that no load may return


class Evil:
    """Unpickling this creates a file: proof that code from the weight file ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def refused(loader, path: Path, pattern: str, **request) -> str:
    """Load ``path`` in the server; it must be a TrtdslError whose message matches ``pattern``."""
    result = loader.load(path, marker=SECRET.hex(), **request)
    assert "error" in result, f"{path.name}: expected a TrtdslError matching {pattern!r}, got {result}"
    assert re.search(pattern, result["message"]), result["message"]
    return result["message"]


def rezip(src: Path, dst: Path, *, replace: dict[str, bytes] | None = None, extra=(), compress=zipfile.ZIP_STORED):
    """Copy a zip member by member, replacing some and appending ``extra`` (name, bytes) pairs."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compress) as zout:
        for item in zin.infolist():
            zout.writestr(item.filename, replace.get(item.filename, zin.read(item)))
        for name, data in extra:
            zout.writestr(name, data)
    return dst


# ------------------------------------------------- hand-written pickles for torch checkpoints
def op_global(module: str, name: str) -> bytes:
    """GLOBAL: push ``module.name`` (what a pickle calls with REDUCE)."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def op_int(n: int) -> bytes:
    """LONG1: push the integer ``n``, of any size."""
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def op_str(s: str) -> bytes:
    """BINUNICODE: push the string ``s``."""
    raw = s.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


def state_dict_pickle(value: bytes, name: str = "w") -> bytes:
    """A protocol-2 pickle of ``{name: <value>}``, where ``value`` is the opcodes that push the value."""
    return b"\x80\x02}" + op_str(name) + value + b"s."


def storage_tensor(key: str = "0", numel: int = 3, size=(3,), stride=(1,), offset: int = 0) -> bytes:
    """The opcodes torch.save writes for a float32 tensor over storage ``key`` of ``numel`` elements."""
    pid = b"(" + op_str("storage") + op_global("torch", "FloatStorage") + op_str(key) + op_str("cpu")
    dims = b"(" + b"".join(op_int(d) for d in size) + b"t(" + b"".join(op_int(s) for s in stride) + b"t"
    return (
        op_global("torch._utils", "_rebuild_tensor_v2")
        + b"("
        + pid
        + op_int(numel)
        + b"tQ"
        + op_int(offset)
        + dims
        + b"\x89"
        + op_global("collections", "OrderedDict")
        + b")RtR"
    )


def with_pickle(src: Path, dst: Path, pickle: bytes) -> Path:
    """``src`` (a torch.save zip of ``{"w": torch.ones(3)}`` or the like) with its data.pkl replaced by ``pickle``."""
    with zipfile.ZipFile(src) as z:
        (member,) = [n for n in z.namelist() if n.endswith("/data.pkl")]
    return rezip(src, dst, replace={member: pickle})


def legacy_with_pickle(src: Path, dst: Path, pickle: bytes) -> Path:
    """``src``, a legacy-format torch.save file, with its object pickle (the fourth) replaced by ``pickle``."""
    import io
    import pickletools

    data = src.read_bytes()
    stream, ends = io.BytesIO(data), []
    for _ in range(4):
        for _op in pickletools.genops(stream):
            pass
        ends.append(stream.tell())
    dst.write_bytes(data[: ends[2]] + pickle + data[ends[3] :])
    return dst
