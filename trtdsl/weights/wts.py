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
from .limits import preview, quote
from .registry import Probe, loads
from .store import Entry, WeightStore


def _sniff(p: Probe) -> bool:
    return re.match(rb"\s*\d+\s*\r?\n\S+ \d+( |\r?\n|$)", p.head) is not None or (
        re.fullmatch(rb"\s*0\s*", p.head) is not None and p.path.suffix.lower() == ".wts"
    )


def _values(path: Path, lineno: int, name: str, count: int, body: bytes) -> np.ndarray:
    """``count`` float32 values from hex words. Memory stays within a few times the line's length."""
    # gen_wts.py's fixed-width words ('3f800000 bf800000 ...'): check the layout and parse in C, with no
    # Python object per value.
    if count and len(body) == 9 * count - 1 and (np.frombuffer(body, np.uint8)[8::9] == 32).all():
        try:
            return np.frombuffer(bytes.fromhex(body.decode("ascii")), ">f4").astype(np.float32)
        except (ValueError, UnicodeDecodeError):
            raise WeightError(f"{path.name}: line {lineno}: weight {quote(name)} has a value that is not hex") from None
    if len(body) < 2 * count - 1:  # each value needs a digit and a separator: refuse before allocating
        raise WeightError(
            f"{path.name}: line {lineno}: weight {quote(name)} declares {count} values but its line has room "
            f"for at most {(len(body) + 1) // 2}"
        )
    out = np.empty(count, np.uint32)
    n, pos = 0, 0
    while pos < len(body):  # other word widths: a bounded piece at a time, never one int per value at once
        end = min(len(body), pos + (1 << 20))
        while end < len(body) and not body[end : end + 1].isspace():
            end += 1
        words = body[pos:end].split()
        pos = end
        if n + len(words) > count:
            raise WeightError(
                f"{path.name}: line {lineno}: weight {quote(name)} has more than the {count} values it declares"
            )
        try:
            bits = [int(w, 16) for w in words]
        except ValueError:
            raise WeightError(f"{path.name}: line {lineno}: weight {quote(name)} has a value that is not hex") from None
        if any(b >> 32 or b < 0 for b in bits):
            raise WeightError(f"{path.name}: line {lineno}: weight {quote(name)} has a value wider than 32 bits")
        out[n : n + len(bits)] = bits
        n += len(bits)
    if n != count:
        raise WeightError(f"{path.name}: line {lineno}: weight {quote(name)} declares {count} values but has {n}")
    return out.view(np.float32)


@loads(".wts", sniff=_sniff)
def load_wts(path: Path) -> WeightStore:
    """A tensorrtx ``.wts`` file: flat float32 arrays by name (parsed once; text cannot be mapped)."""
    entries: dict[str, Entry] = {}
    with open(path, "rb") as f:
        first = f.readline()
        try:
            declared = int(first) if len(first) < 40 else -1
        except ValueError:
            declared = -1
        if declared < 0:
            raise WeightError(f"{path.name}: first line must be the number of weights, got {preview(first)}") from None
        for lineno, line in enumerate(f, 2):
            head = line[:512].split(None, 2)
            if not head:
                continue
            if len(head) < 2 or not head[1].isdigit() or len(head[1]) > 18:
                raise WeightError(f"{path.name}: line {lineno}: expected 'name count hex...', got {preview(line)}")
            try:
                name = head[0].decode("utf8")
            except UnicodeDecodeError:
                raise WeightError(f"{path.name}: line {lineno}: weight name {preview(head[0])} is not UTF-8") from None
            if name in entries:
                raise WeightError(f"{path.name}: line {lineno}: weight {quote(name)} appears twice")
            if len(entries) >= declared:
                raise WeightError(
                    f"{path.name}: line {lineno}: more weights than the {declared} the first line declares"
                )
            skip = line.index(head[1], len(head[0])) + len(head[1])  # the values start after the count
            body = line[skip:].strip()
            del line  # at most the line and its stripped copy are alive at once
            arr = _values(path, lineno, name, int(head[1]), body)
            del body
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
