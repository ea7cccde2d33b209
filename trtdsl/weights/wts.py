"""tensorrtx ``.wts`` text files: read them as they are, and write them.

tensorrtx's ``gen_wts.py`` writes the number of weights on the first line,
then one line per weight: ``name count`` and ``count`` big-endian float32
values, each as 8 hex digits (``struct.pack('>f', v).hex()``) after a space.
The C++ side reads every value as a 32-bit word in hex, so shorter words are
valid too. Shapes are not stored: :meth:`WeightStore.take` reshapes these flat
arrays to the shape it is asked for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import WeightError
from .registry import Probe, loads
from .store import Entry, WeightStore


def _sniff(p: Probe) -> bool:
    return re.match(rb"\s*\d+\s*\r?\n\S+ \d+( |\r?\n|$)", p.head) is not None or (
        re.fullmatch(rb"\s*0\s*", p.head) is not None and p.path.suffix.lower() == ".wts"
    )


def _values(path: Path, lineno: int, name: str, count: int, data: bytes) -> np.ndarray:
    body = data.strip()
    # gen_wts.py's fixed-width words ('3f800000 bf800000 ...'): check the layout and parse in C, with no
    # Python object per value.
    if count and len(body) == 9 * count - 1 and (np.frombuffer(body, np.uint8)[8::9] == 32).all():
        try:
            return np.frombuffer(bytes.fromhex(body.decode("ascii")), ">f4").astype(np.float32)
        except (ValueError, UnicodeDecodeError) as e:
            raise WeightError(f"{path.name}: line {lineno}: weight {name!r} has a value that is not hex: {e}") from e
    words = body.split()
    if len(words) != count:
        raise WeightError(f"{path.name}: line {lineno}: weight {name!r} declares {count} values but has {len(words)}")
    try:
        bits = [int(w, 16) for w in words]
    except ValueError as e:
        raise WeightError(f"{path.name}: line {lineno}: weight {name!r} has a value that is not hex: {e}") from e
    if any(b >> 32 or b < 0 for b in bits):
        raise WeightError(f"{path.name}: line {lineno}: weight {name!r} has a value wider than 32 bits")
    return np.array(bits, np.uint32).view(np.float32)


@loads(".wts", sniff=_sniff)
def load_wts(path: Path) -> WeightStore:
    """A tensorrtx ``.wts`` file: flat float32 arrays by name (parsed once; text cannot be mapped)."""
    entries: dict[str, Entry] = {}
    with open(path, "rb") as f:
        first = f.readline()
        try:
            declared = int(first)
        except ValueError:
            raise WeightError(f"{path.name}: first line must be the number of weights, got {first[:40]!r}") from None
        for lineno, line in enumerate(f, 2):
            if not line.strip():
                continue
            parts = line.split(None, 2)
            if len(parts) < 2 or not parts[1].isdigit():
                raise WeightError(f"{path.name}: line {lineno}: expected 'name count hex...', got {line[:60]!r}")
            name = parts[0].decode("utf8", "replace")
            if name in entries:
                raise WeightError(f"{path.name}: line {lineno}: weight {name!r} appears twice")
            arr = _values(path, lineno, name, int(parts[1]), parts[2] if len(parts) > 2 else b"")
            entries[name] = Entry(arr.shape, arr.dtype, lambda arr=arr: arr)
    if len(entries) != declared:
        raise WeightError(f"{path.name}: the first line says {declared} weights but the file holds {len(entries)}")
    return WeightStore.from_entries(path, "wts", entries, shapeless=True)


def write_wts(path: str | os.PathLike, weights: Mapping[str, np.ndarray]) -> None:
    """Write ``weights`` as tensorrtx's ``gen_wts.py`` does (values flattened, cast to float32).

    Example: ``write_wts("yolov5s.wts", model.state_dict())`` after ``.numpy()``.
    """
    with open(path, "w", encoding="ascii") as f:
        f.write(f"{len(weights)}\n")
        for name, value in weights.items():
            if not name or any(c.isspace() for c in name):
                raise WeightError(f"{path}: weight name {name!r} cannot be written to .wts (empty or has spaces)")
            flat = np.asarray(value, dtype=">f4").ravel()
            # ' ' + 8 hex digits per value, laid out by NumPy rather than a Python loop per value
            line = np.full((flat.size, 9), ord(" "), np.uint8)
            line[:, 1:] = np.frombuffer(flat.tobytes().hex().encode("ascii"), np.uint8).reshape(-1, 8)
            f.write(f"{name} {flat.size} ")
            f.write(line.tobytes().decode("ascii"))
            f.write("\n")
