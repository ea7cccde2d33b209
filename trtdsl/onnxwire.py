"""Reading ONNX's protobuf wire format in pure Python, for :mod:`trtdsl.onnxcheck`.

protobuf and the ``onnx`` package are not runtime dependencies, and a check must not
parse what it checks with the code it guards: so this reads only the fields asked
for, keeps bytes as (start, end) spans of the memory map (weights are skipped by
their length, never read), and counts every field against a budget, so that a
file of many tiny fields cannot make the walk run for minutes.
"""

from __future__ import annotations

from pathlib import Path

from .errors import OnnxParseError

MAX_FIELDS = 4_000_000  # ~6 per node (ResNet-50: 2,885): bounds the walk of a file of tiny fields to seconds


class Malformed(Exception):
    """Bytes that are not a protobuf message (a varint or a length past its message's end)."""


def varint(buf, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise Malformed(f"a varint at byte {pos} runs past its message")
        b = buf[pos]
        pos += 1
        value |= (b & ~0x80) << shift  # the byte without its continuation bit
        if b < 0x80:
            return (value - (1 << 64) if value >= 1 << 63 else value), pos
        shift += 7


def spans(fields: dict[int, list], n: int) -> list[tuple[int, int]]:
    return [v for v in fields.get(n, ()) if type(v) is tuple]


def read_ints(buf, fields: dict[int, list], n: int) -> list[int]:
    """A repeated int64 field's values, written one varint at a time or packed."""
    out = []
    for v in fields.get(n, ()):
        if type(v) is int:
            out.append(v)
        elif type(v) is tuple:
            pos, end = v
            while pos < end:
                x, pos = varint(buf, pos, end)
                out.append(x)
    return out


class Reader:
    """Messages, strings and repeated ints of one file's bytes ``buf``; ``fail`` names ``path``."""

    def __init__(self, buf, path: Path):
        self.buf, self.path = buf, path
        self.left = MAX_FIELDS

    def message(self, span: tuple[int, int], wanted: frozenset[int]) -> dict[int, list]:
        """The ``wanted`` fields of one message: number -> values, an int for a varint, a (start, end) span
        for bytes. A value of the wrong wire type for its field is kept here and ignored by the
        readers, as protobuf keeps it as an unknown field. Every field counts against the budget.
        """
        buf, left = self.buf, self.left
        pos, end = span
        out: dict[int, list] = {}
        while pos < end:
            key = buf[pos]  # keys, lengths and most values fit one byte: skip the general decoder then
            key, pos = (key, pos + 1) if key < 0x80 else varint(buf, pos, end)
            field, wire = key >> 3, key & 7
            if wire in (0, 2):
                if pos >= end:
                    raise Malformed(f"field {field} ends at byte {end} before its value")
                value = buf[pos]
                value, pos = (value, pos + 1) if value < 0x80 else varint(buf, pos, end)
                if wire == 2:
                    if value < 0 or pos + value > end:
                        raise Malformed(f"field {field} at byte {pos} declares {value} bytes, but {end - pos} remain")
                    value, pos = (pos, pos + value), pos + value
            elif wire in (1, 5):
                pos += 8 if wire == 1 else 4
                if pos > end:
                    raise Malformed(f"a fixed-size field {field} runs past byte {end}")
                value = None
            else:
                raise Malformed(f"field {field} before byte {pos} has wire type {wire} (ONNX uses 0, 1, 2 and 5)")
            if field in wanted:
                out.setdefault(field, []).append(value)
            left -= 1
            if not left:
                break
        self.left = left
        if not left:
            raise self.fail(
                f"it holds more than {MAX_FIELDS:,} protobuf fields outside its weights (about 6 per node); "
                "a graph that large would take TensorRT's parser many minutes"
            )
        return out

    def fail(self, msg: str) -> OnnxParseError:
        return OnnxParseError(f"trtdsl refused {str(self.path)!r} before TensorRT's parser read it: {msg}")

    def text(self, span: tuple[int, int], what: str, *args: object) -> str:
        """The UTF-8 string at ``span``; ``what.format(*args)`` names it, formatted only on failure."""
        raw = self.buf[span[0] : span[1]]  # bytes: a slice of the mmap copies
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"{what.format(*args)} is not UTF-8 text: {raw[:40]!r}") from None

    def texts(self, fields: dict[int, list], n: int, what: str, *args: object) -> list[str]:
        buf = self.buf
        try:  # the hot path of the walk: one comprehension, no call per string
            return [buf[v[0] : v[1]].decode("utf-8") for v in fields.get(n, ()) if type(v) is tuple]
        except UnicodeDecodeError:
            return [self.text(v, what, *args) for v in spans(fields, n)]  # raises, naming it
