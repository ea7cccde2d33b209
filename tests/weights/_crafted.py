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
