"""``WeightStore``: a read-only, lazily read mapping from weight name to ``np.ndarray``.

A store knows every weight's shape and dtype without reading it, reads each
array on first access (a memory map wherever the format allows), and records
which weights a build took, so leftovers can be reported or made an error.

Example::

    w = trtdsl.weights.load("resnet50.npz").rename(strip_prefix="module.")
    stem = w.scope("stem")
    kernel = stem.take("conv1.weight", shape=(64, 3, 7, 7), layer="stem.conv1")
    w.check_all_used()          # WeightError listing what no layer took
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import WeightError, WeightShapeError, did_you_mean

log = logging.getLogger("trtdsl.weights")


@dataclass
class Entry:
    """One weight as a loader describes it: its metadata now, its data on ``read()``."""

    shape: tuple[int, ...]
    dtype: np.dtype
    read: Callable[[], np.ndarray]

    def __post_init__(self) -> None:
        self.dtype = canonical(self.dtype)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


def canonical(dtype: np.dtype) -> np.dtype:
    """NumPy's own instance of ``dtype``. h5py and explicit byte orders give equal but distinct
    instances ('<f4'), which trt.Weights refuses: "Could not implicitly convert NumPy data type"."""
    return np.dtype(np.dtype(dtype).str)


class _Source:
    """What every view of one loaded file shares: entries, cached arrays and the use record."""

    def __init__(self, path: Path, fmt: str, entries: dict[str, Entry], *, shapeless: bool, close: Callable | None):
        self.path, self.fmt, self.entries, self.shapeless = path, fmt, entries, shapeless
        self.cache: dict[str, np.ndarray] = {}
        self.used: set[str] = set()
        self._close = close

    def array(self, key: str) -> np.ndarray:
        arr = self.cache.get(key)
        if arr is None:
            try:
                arr = np.asarray(self.entries[key].read())
            except WeightError:
                raise
            except Exception as e:
                raise WeightError(f"{self.path.name}: cannot read weight {key!r}: {type(e).__name__}: {e}") from e
            if arr.dtype is not canonical(arr.dtype):
                arr = arr.view(canonical(arr.dtype))  # same bytes, a dtype TensorRT accepts
            arr.flags.writeable = False  # one cached array is shared by every view and every take()
            self.cache[key] = arr
        return arr

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None


def _fmt_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


class WeightStore(Mapping[str, np.ndarray]):
    """Read-only mapping from name to array over one weight file; see :func:`trtdsl.weights.load`.

    ``w[name]`` peeks at a weight; :meth:`take` checks it and records the use.
    Views from :meth:`scope` and :meth:`rename` share the file, the cache and
    the use record with the store they came from.
    """

    def __init__(self, source: _Source, names: dict[str, str] | None = None, *, where: str = "", strict: bool = False):
        self._src = source
        self._names = names if names is not None else {k: k for k in source.entries}
        self._where = where
        self.strict = strict

    @classmethod
    def from_entries(
        cls,
        path: str | Path,
        fmt: str,
        entries: dict[str, Entry],
        *,
        shapeless: bool = False,
        close: Callable | None = None,
    ) -> WeightStore:
        """Build a store from a loader's entries. ``shapeless``: the format keeps flat arrays only (``.wts``)."""
        return cls(_Source(Path(path), fmt, entries, shapeless=shapeless, close=close))

    # ------------------------------------------------------------- mapping
    def __getitem__(self, name: str) -> np.ndarray:
        return self._src.array(self._key(name))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    @property
    def path(self) -> Path:
        return self._src.path

    @property
    def format(self) -> str:
        return self._src.fmt

    def shape(self, name: str) -> tuple[int, ...]:
        """The stored shape of ``name``, without reading it."""
        return self._src.entries[self._key(name)].shape

    def dtype(self, name: str) -> np.dtype:
        """The dtype ``w[name]`` will have, without reading it."""
        return self._src.entries[self._key(name)].dtype

    def _label(self) -> str:
        return self._src.path.name + (f" {self._where}" if self._where else "")

    def _key(self, name: str, layer: str | None = None) -> str:
        try:
            return self._names[name]
        except (KeyError, TypeError):
            pass
        where = f"{layer}: " if layer else ""
        raise WeightError(
            f"{where}no weight {name!r} in {self._label()} ({len(self._names)} keys).{_suggest(str(name), self._names)}"
        ) from None

    # --------------------------------------------------------------- views
    def scope(self, prefix: str) -> WeightStore:
        """The weights under ``prefix`` with names relative to it.

        Both ``.`` and ``/`` separate levels, so ``w.scope("layer1.0")`` holds
        ``conv1.weight`` for ``layer1.0.conv1.weight`` and ``w.scope("conv2d")``
        holds ``kernel`` for the Keras name ``conv2d/kernel``.
        """
        prefix = prefix.rstrip("./")
        names = {
            n[len(prefix) + 1 :]: k
            for n, k in self._names.items()
            if n.startswith(prefix) and n[len(prefix) : len(prefix) + 1] in (".", "/")
        }
        if not names:
            tops = sorted({re.split(r"[./]", n)[0] for n in self._names})
            raise WeightError(
                f"no weight in {self._label()} lies under {prefix!r}; top-level names: {', '.join(tops[:12])}"
                f"{' ...' if len(tops) > 12 else ''}.{did_you_mean(prefix, tops)}"
            )
        where = f"{self._where}/{prefix}" if self._where else f"scope {prefix!r}"
        return WeightStore(self._src, names, where=where, strict=self.strict)

    def rename(
        self, pattern: str | None = None, repl: str | Callable[[re.Match], str] = "", *, strip_prefix: str | None = None
    ) -> WeightStore:
        """A view with renamed keys: a regex substitution, and/or a prefix stripped where present.

        Example: ``w.rename(strip_prefix="module.")`` or ``w.rename(r"^backbone\\.", "")``.
        """
        names: dict[str, str] = {}
        for n, k in self._names.items():
            new = n.removeprefix(strip_prefix) if strip_prefix else n
            if pattern is not None:
                new = re.sub(pattern, repl, new)
            if new in names:
                raise WeightError(f"renaming {self._label()} maps two weights to {new!r}: {names[new]!r} and {k!r}")
            names[new] = k
        return WeightStore(self._src, names, where=self._where, strict=self.strict)

    # --------------------------------------------------------------- use
    def take(
        self,
        name: str,
        shape: Sequence[int | None] | None = None,
        dtype: Any = None,
        *,
        layer: str | None = None,
    ) -> np.ndarray:
        """Return weight ``name`` after checking it, and record that it was used.

        ``shape`` entries may be ``None`` (or -1) for any size. ``layer`` names the
        layer in error messages. Flat formats (``.wts``) are reshaped to ``shape``
        when the sizes agree.
        """
        key = self._key(name, layer)
        arr = self._src.array(key)
        where = f"{layer}: " if layer else ""
        if shape is not None:
            want = tuple(-1 if d is None else int(d) for d in shape)
            if self._src.shapeless and arr.ndim == 1 and -1 not in want and arr.size == int(np.prod(want)):
                arr = arr.reshape(want)
            if len(want) != arr.ndim or any(w not in (-1, r) for w, r in zip(want, arr.shape, strict=False)):
                shown = tuple(None if d == -1 else d for d in want)
                raise WeightShapeError(
                    f"{where}weight {name!r} in {self._label()} has shape {tuple(arr.shape)}, expected {shown}."
                    + layout_hint(tuple(arr.shape), want)
                )
        if dtype is not None and arr.dtype != np.dtype(dtype):
            raise WeightError(
                f"{where}weight {name!r} in {self._label()} has dtype {arr.dtype}, expected {np.dtype(dtype)}; "
                f"convert it with .astype({np.dtype(dtype).name!r}) or take it without dtype="
            )
        self._src.used.add(key)
        return arr

    def unused(self) -> list[str]:
        """Names in this view that no :meth:`take` has used yet."""
        return [n for n, k in self._names.items() if k not in self._src.used]

    def check_all_used(self, what: str = "the build") -> None:
        """Raise :class:`WeightError` listing every weight of this view that ``take`` never used."""
        left = self.unused()
        if left:
            shown = ", ".join(left[:20]) + (f", ... ({len(left) - 20} more)" if len(left) > 20 else "")
            raise WeightError(f"{len(left)} of {len(self)} weights in {self._label()} were not used by {what}: {shown}")

    def finish(self, what: str = "the build") -> None:
        """The hook a build calls when its last layer is added: an error for leftovers in strict mode, a log line otherwise."""
        if self.strict:
            self.check_all_used(what)
        elif self.unused():
            log.info("%d weights in %s were not used by %s", len(self.unused()), self._label(), what)

    def close(self) -> None:
        """Close the underlying file; arrays already read (memory maps included) stay valid."""
        self._src.close()

    def __enter__(self) -> WeightStore:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            if exc_type is None:
                self.finish()
        finally:
            self.close()

    # ------------------------------------------------------------- summary
    def _by_dtype(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for k in self._names.values():
            e = self._src.entries[k]
            n, b = out.get(e.dtype.name, (0, 0))
            out[e.dtype.name] = (n + 1, b + e.nbytes)
        return out

    @property
    def nbytes(self) -> int:
        """Total bytes of every weight in this view, from metadata only."""
        return sum(self._src.entries[k].nbytes for k in self._names.values())

    def summary(self, names: bool = False) -> str:
        """Counts, bytes and dtypes, optionally one line per weight (shape, dtype, used)."""
        lines = [f"{self._label()} ({self._src.fmt}): {len(self)} weights, {_fmt_bytes(self.nbytes)}"]
        for dt, (n, b) in sorted(self._by_dtype().items()):
            lines.append(f"  {dt:>9}: {n:6d} weights {_fmt_bytes(b):>10}")
        used = len(self) - len(self.unused())
        lines.append(f"  used by take(): {used} of {len(self)}")
        if names:
            width = max((len(n) for n in self._names), default=0)
            for n, k in self._names.items():
                e = self._src.entries[k]
                mark = "*" if k in self._src.used else " "
                lines.append(f"  {mark} {n:<{width}}  {e.dtype.name:>8}  {e.shape}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        dts = ", ".join(f"{dt}x{n}" for dt, (n, _) in sorted(self._by_dtype().items()))
        return f"WeightStore({self._label()!r}, {len(self)} weights, {_fmt_bytes(self.nbytes)}, {dts or 'empty'})"


def _suggest(name: str, names: Mapping[str, str]) -> str:
    """Near matches, preferring weights of the same layer: 'conv1.kernel' for 'conv1.weight'."""
    parent = re.split(r"[./][^./]*$", name)[0]
    siblings = [n for n in names if n != parent and re.split(r"[./][^./]*$", n)[0] == parent]
    if siblings and parent != name:
        close = difflib.get_close_matches(name, siblings, n=3, cutoff=0.0)
        return " Did you mean " + " or ".join(repr(m) for m in close) + "?"
    return did_you_mean(name, names)


def layout_hint(got: tuple[int, ...], want: tuple[int, ...]) -> str:
    """A sentence naming the layout helper when ``got`` is a known transposition of ``want``."""
    if len(got) == len(want) >= 3 and -1 not in want:
        if got == (*want[2:], want[1], want[0]):
            return (
                " It looks like a Keras HWIO kernel (spatial..., in, out); use trtdsl.weights.layout.keras_conv(kernel)"
                " (or keras_conv_transpose for a Conv2DTranspose kernel)."
            )
        if want[1] == 1 and got[:-2] == want[2:] and got[-2] * got[-1] == want[0]:
            return " It looks like a Keras depthwise kernel (spatial..., C, M); use trtdsl.weights.layout.keras_depthwise(kernel)."
    if len(got) == len(want) == 2 and got == want[::-1]:
        return " It looks like a Keras Dense kernel (in, out); use trtdsl.weights.layout.keras_dense(kernel)."
    if -1 not in want and int(np.prod(got)) == int(np.prod(want)):
        if sorted(got) == sorted(want):
            return " Same sizes in another order: a transposed layout? See trtdsl.weights.layout."
        return " Same number of elements: reshape it if the layout is right."
    return ""
