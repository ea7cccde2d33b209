"""``WeightStore``: a read-only, lazily read mapping from weight name to ``np.ndarray``.

A store knows every weight's shape and dtype without reading it, reads each
array on first access (a memory map wherever the format allows), and records
which weights a build read, so leftovers can be reported or made an error.

A use is an explicit read by name: ``w[name]``, ``w.get(name)`` or ``w.take(name)``.
Listing the store (iteration, ``keys()``, ``items()``, ``values()``, ``dict(w)``)
marks nothing, so copying a whole store cannot make the check pass vacuously.
Blocks (``trtdsl.layers``) read their weights through ``w.block(prefix, kind)``
views, and a plain dict becomes an in-memory store with :func:`as_store`.

Example::

    w = trtdsl.weights.load("resnet50.npz").rename(strip_prefix="module.")
    stem = w.scope("stem")
    kernel = stem.take("conv1.weight", shape=(64, 3, 7, 7), layer="stem.conv1")
    w.check_all_used()          # WeightError listing what no layer took
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..argcheck import check_methods
from ..errors import WeightError, WeightShapeError, did_you_mean
from .report import DEFAULT_IGNORE, ReportMixin, _BlockLabel, _fmt_shape, _siblings, _suggest, layout_hint
from .source import _CANONICAL_IDS, Entry, _Source, canonical

# DEFAULT_IGNORE, Entry and canonical live in report.py and source.py; they stay importable from here.
__all__ = ["DEFAULT_IGNORE", "Entry", "WeightStore", "as_store", "canonical"]

_F32 = np.dtype(np.float32)


class _Listed(str):
    """A name handed out by listing a store; reading it back (``dict(w)``, ``items()``) is not a use."""

    __slots__ = ()


class WeightStore(ReportMixin, Mapping[str, np.ndarray]):
    """Read-only mapping from name to array over one weight file; see :func:`trtdsl.weights.load`.

    ``w[name]``, ``w.get(name)`` and :meth:`take` (which also checks shape and
    dtype) record the use; listing the store does not. Views from :meth:`scope`,
    :meth:`block` and :meth:`rename` share the file, the cache and the use record
    with the store they came from.
    """

    def __init__(
        self,
        source: _Source,
        names: dict[str, str] | None = None,
        *,
        where: str = "",
        strict: bool = False,
        prefix: str = "",
        block: _BlockLabel | None = None,
        root: dict[str, str] | None = None,
        float32: bool = False,
    ):
        # block() makes the lazy views field by field: a field added here goes there too
        # (tests/weights/test_store.py compares the two).
        self._src = source
        # A block view is lazy: it reads ``_base``'s names under the key prefix ``_rel``
        # and lists them only when asked (a model opens one view per block and weight group).
        self._base: WeightStore | None = None
        self._rel = ""
        self._n = names if names is not None else {k: k for k in source.entries}
        self._where = where
        self.strict = strict
        self._prefix = prefix  # this view's names are relative to it: "layer1.0."
        self._block = block  # the layer block this view belongs to, for messages
        self._root = root if root is not None else self._n  # full names, for suggestions
        self._float32 = float32  # block views hand out float weights as float32
        self._sorted: list[str] | None = None  # this view's names, sorted when a view is first opened on it

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

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], name: str = "weights") -> WeightStore:
        """An in-memory store over a dict (or an ``np.load`` result) of name -> array; no copies.

        Example::

            w = WeightStore.from_mapping(model.state_dict() | extra, "resnet18")
        """
        entries: dict[str, Entry] = {}
        for key in mapping.keys():
            if not isinstance(key, str):
                raise WeightError(f"{name}: weight names must be strings, got {key!r} ({type(key).__name__})")
            value = mapping[key]
            array = value if type(value) is np.ndarray and value.dtype.kind in "fiub" else _as_array(value, key, name)
            # A view, so that making it read-only leaves the caller's array alone. Built without
            # __init__ for NumPy's own dtypes: a model wraps a whole state dict per call.
            if id(array.dtype) in _CANONICAL_IDS:
                entry = object.__new__(Entry)
                entry.shape, entry.dtype, entry.read = array.shape, array.dtype, array.view
            else:
                entry = Entry(array.shape, array.dtype, array.view)
            entries[key] = entry
        return cls(_Source(Path(name), "in-memory", entries, shapeless=False, close=None))

    @property
    def _names(self) -> dict[str, str]:
        """This view's names -> source keys (listed on first use for a lazy block view)."""
        if self._n is None:
            base, rel = self._base, self._rel
            run = base._run(rel)
            self._n = {k[len(rel) :]: base._names[k] for k in run}
        return self._n

    def _find(self, name: Any) -> str | None:
        """The source key of ``name`` in this view, or None."""
        try:
            if self._base is not None:
                return self._base._names.get(self._rel + name)
            return self._n.get(name)
        except TypeError:  # an unhashable or non-str name
            return None

    def _run(self, prefix: str) -> list[str]:
        """This view's names that start with ``prefix``, from the sorted names (one bisect)."""
        if self._sorted is None:
            self._sorted = sorted(self._names)
        keys = self._sorted
        return keys[bisect.bisect_left(keys, prefix) : bisect.bisect_right(keys, prefix + "\U0010ffff")]

    # ------------------------------------------------------------- mapping
    def __getitem__(self, name: str) -> np.ndarray:
        key = self._key(name)
        arr = self._src.array(key)
        if type(name) is not _Listed:
            self._src.used.add(key)
        return arr

    def get(self, name: str, default: Any = None) -> Any:
        """``w[name]`` (a use), or ``default`` when absent."""
        if name in self:
            return self[name]
        self._src.missed.add(self._full(str(name)))
        return default

    def __iter__(self) -> Iterator[str]:
        return map(_Listed, self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(name) is not None

    @property
    def path(self) -> Path:
        return self._src.path

    @property
    def format(self) -> str:
        return self._src.fmt

    @property
    def where(self) -> str:
        """How messages name this view: the block (``"linear 'fc' (in mlp 'head')"``) or the file."""
        return self._block.label if self._block else self._label()

    def shape(self, name: str) -> tuple[int, ...]:
        """The stored shape of ``name``, without reading it."""
        return self._src.entries[self._key(name)].shape

    def dtype(self, name: str) -> np.dtype:
        """The dtype ``w[name]`` will have, without reading it."""
        return self._src.entries[self._key(name)].dtype

    def _label(self) -> str:
        return self._src.path.name + (f" {self._where}" if self._where else "")

    def _full(self, name: str) -> str:
        return self._prefix + name

    def _key(self, name: str, layer: str | None = None, shape: Sequence[int | None] | None = None) -> str:
        key = self._find(name) if isinstance(name, str) else None
        if key is not None:
            return key
        if self._block is not None and layer is None:
            full = self._full(str(name))
            expect = f" (expected shape {_fmt_shape(shape)})" if shape is not None else ""
            hint = _suggest(full, self._root) or _siblings(self._prefix, self._root)
            raise WeightError(
                f"{self._block.label}: missing weight {full!r}{expect}; the weights have {len(self._root)} keys.{hint}"
            ) from None
        where = f"{layer}: " if layer else ""
        raise WeightError(
            f"{where}no weight {name!r} in {self._label()} ({len(self._names)} keys).{_suggest(str(name), self._names)}"
        ) from None

    # --------------------------------------------------------------- views
    def _under(self, prefix: str) -> tuple[dict[str, str], str]:
        """Names under ``prefix`` (``.`` or ``/`` separated) relative to it, and the separator used."""
        # Names that start with the prefix are one run of the sorted names: a model's
        # blocks each open a view, so a scan of every name per view would add up.
        n = len(prefix)
        run = self._run(prefix)
        names, sep, all_names = {}, "", self._names
        for k in run:
            c = k[n : n + 1]
            if c in {".", "/"}:
                names[k[n + 1 :]] = all_names[k]
                sep = sep or c
        return names, sep or "."

    def scope(self, prefix: str) -> WeightStore:
        """The weights under ``prefix`` with names relative to it.

        Both ``.`` and ``/`` separate levels, so ``w.scope("layer1.0")`` holds
        ``conv1.weight`` for ``layer1.0.conv1.weight`` and ``w.scope("conv2d")``
        holds ``kernel`` for the Keras name ``conv2d/kernel``.
        """
        prefix = prefix.rstrip("./")
        names, sep = self._under(prefix)
        if not names:
            tops = sorted({re.split(r"[./]", n)[0] for n in self._names})
            raise WeightError(
                f"no weight in {self._label()} lies under {prefix!r}; top-level names: {', '.join(tops[:12])}"
                f"{' ...' if len(tops) > 12 else ''}.{did_you_mean(prefix, tops)}"
            )
        where = f"{self._where}/{prefix}" if self._where else f"scope {prefix!r}"
        return WeightStore(
            self._src, names, where=where, strict=self.strict, prefix=self._full(prefix) + sep, root=self._root
        )

    def block(self, prefix: str, kind: str, *, float32: bool = False) -> WeightStore:
        """The view a layer block reads its weights from: names under ``prefix`` (maybe none yet).

        Messages name the block and the full key: ``conv_bn_act 'layer1.0.conv1' (in
        residual_block 'layer1.0'): missing weight 'layer1.0.conv1.weight' (expected
        shape (64, 64, 3, 3))``. An empty ``prefix`` is a block at the top of this view.
        ``float32=True``: floating-point weights come out as float32 (what blocks fold in), and an
        8-, 6- or 4-bit float weight (an FP8 checkpoint's ``float8_e4m3fn``) is a ``WeightError``:
        its values mean nothing without its scale, which blocks do not apply.
        """
        base = self._base if self._base is not None else self
        rel = self._rel
        if prefix:
            rel += prefix
            # "." or "/" after the prefix, whichever the names use (Keras: 'conv2d/kernel');
            # without a "/" in any name (a torch state dict) it is "." with no search.
            if self._src.slashed and not base._run(rel + ".") and base._run(rel + "/"):
                rel += "/"
            else:
                rel += "."
        # The labels are formatted only for a message (a model opens a view per block).
        full_prefix = base._prefix + rel
        # The fields __init__ sets for a lazy view, set directly: a model opens a view per
        # block and weight group, and the keyword call costs as much as the rest of block().
        view = object.__new__(WeightStore)
        view._src, view._base, view._rel, view._n, view._sorted = self._src, base, rel, None, None
        view._where, view.strict, view._prefix, view._root = self._where, self.strict, full_prefix, self._root
        view._block, view._float32 = _BlockLabel(kind, full_prefix[:-1], self._block), float32
        return view

    def rename(
        self, pattern: str | None = None, repl: str | Callable[[re.Match], str] = "", *, strip_prefix: str | None = None
    ) -> WeightStore:
        """A view with renamed keys: a regex substitution, and/or a prefix stripped where present.

        Example: ``w.rename(strip_prefix="module.")`` or ``w.rename(r"^backbone\\.", "")``.
        """
        names: dict[str, str] = {}
        try:
            regex = None if pattern is None else re.compile(pattern)
        except re.error as e:
            raise WeightError(f"rename: pattern {pattern!r} is not a regular expression: {e}") from None
        for n, k in self._names.items():
            new = n.removeprefix(strip_prefix) if strip_prefix else n
            if regex is not None:
                try:
                    new = regex.sub(repl, new)
                except re.error as e:  # a replacement naming a group the pattern lacks
                    raise WeightError(f"rename: replacement {repl!r} for pattern {pattern!r}: {e}") from None
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
        key = self._find(name)
        if key is None:
            key = self._key(name, layer, shape)
        return self._take(key, name, shape, dtype, layer)

    def _take(
        self, key: str, name: str, shape: Sequence[int | None] | None, dtype: Any, layer: str | None
    ) -> np.ndarray:
        """:meth:`take` of the source key ``key`` that ``name`` was found under."""
        arr = self._src.array(key)
        if shape is not None and arr.shape != shape:
            arr = self._check_shape(name, arr, shape, layer)
        if dtype is not None and arr.dtype != _dtype(dtype):
            where = f"{layer}: " if layer else ""
            raise WeightError(
                f"{where}weight {name!r} in {self._label()} has dtype {arr.dtype}, expected {np.dtype(dtype)}; "
                f"convert it with .astype({np.dtype(dtype).name!r}) or take it without dtype="
            )
        if self._float32 and arr.dtype is not _F32:
            if arr.dtype.itemsize >= 2 and (arr.dtype.kind == "f" or arr.dtype.name == "bfloat16"):
                arr = arr.astype(_F32)
            elif arr.dtype.name.startswith(_QUANTIZED_FLOATS):
                _quantized(self, name, arr.dtype)
        self._src.used.add(key)
        return arr

    def optional(self, name: str, shape: Sequence[int | None] | None = None) -> np.ndarray | None:
        """:meth:`take` when ``name`` exists, else None (a convolution without bias)."""
        key = self._find(name)
        if key is not None:
            return self._take(key, name, shape, None, None)
        self._src.missed.add(self._full(name))
        return None

    def _check_shape(self, name: str, arr: np.ndarray, shape: Sequence[int | None], layer: str | None) -> np.ndarray:
        try:
            want = tuple(-1 if d is None else int(d) for d in shape)
        except (TypeError, ValueError):
            raise WeightError(
                f"take {name!r}: shape must be a sequence of ints or None (any size), got {shape!r}"
            ) from None
        if self._src.shapeless and arr.ndim == 1 and -1 not in want and arr.size == int(np.prod(want)):
            arr = arr.reshape(want)
        if len(want) != arr.ndim or any(w not in (-1, r) for w, r in zip(want, arr.shape, strict=False)):
            hint = layout_hint(tuple(arr.shape), want)
            if self._block is not None and layer is None:
                raise WeightShapeError(
                    f"{self._block.label}: weight {self._full(name)!r} has shape {tuple(arr.shape)}, "
                    f"expected {_fmt_shape(shape)}.{hint}"
                )
            where = f"{layer}: " if layer else ""
            shown = tuple(None if d == -1 else d for d in want)
            raise WeightShapeError(
                f"{where}weight {name!r} in {self._label()} has shape {tuple(arr.shape)}, expected {shown}." + hint
            )
        return arr

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


_QUANTIZED_FLOATS = ("float8", "float6", "float4")  # ml_dtypes names (kind 'V', but float8_e5m2 is kind 'f')


def _quantized(view: WeightStore, name: str, dtype: np.dtype) -> None:
    """Refuse an 8-, 6- or 4-bit float weight in a block view: its values mean nothing without its scale.

    An FP8 checkpoint stores ``fc.weight`` as float8_e4m3fn beside a float32 ``fc.weight_scale``
    (or ``weight_scale_inv``), and the weight is ``fc.weight * scale``. Blocks fold plain float32
    weights and know no scale, so widening it (exact) would build a network that runs on unscaled
    weights without a word; it is refused instead, and read outside blocks (``w[name]``, then
    ``net.constant`` and ``ops.dequantize``).
    """
    full = view._full(name)
    scales = [k for k in view._names if "scale" in k]
    found = f" (this block holds {', '.join(repr(view._prefix + k) for k in scales[:4])})" if scales else ""
    raise WeightError(
        f"{view.where}: weight {full!r} is {dtype.name}, a quantized weight whose scale is another "
        f"weight{found}; this block computes in float32 and does not dequantize. Build the layer from the "
        f"file's arrays instead: ops.dequantize(net.constant(w[{full!r}]), scale), then ops.matmul/ops.linear"
    )


def as_store(weights: Any, name: str = "weights") -> WeightStore:
    """``weights`` as a :class:`WeightStore`: a store as it is, a mapping of name -> array wrapped in memory.

    Example::

        w = as_store({"fc.weight": np.ones((10, 4), np.float32)})
        w.take("fc.weight", (10, 4))
    """
    if isinstance(weights, WeightStore):
        return weights
    if isinstance(weights, Mapping) or (hasattr(weights, "keys") and hasattr(weights, "__getitem__")):
        return WeightStore.from_mapping(weights, name)
    raise WeightError(
        f"{name}: weights must be a WeightStore or a mapping of name -> array (a dict, an np.load result), "
        f"got {type(weights).__name__}"
    )


def _as_array(value: Any, key: str, name: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except Exception as e:
        raise WeightError(f"{name}: weight {key!r} is not an array ({type(value).__name__}): {e}") from e
    if array.dtype.kind in "OUSMm" or array.dtype.names is not None:
        raise WeightError(f"{name}: weight {key!r} is not a numeric array (dtype {array.dtype})")
    return array


def _dtype(dtype: Any) -> np.dtype:
    """``np.dtype(dtype)``, or a WeightError saying what ``take(dtype=...)`` accepts."""
    try:
        return np.dtype(dtype)
    except TypeError:
        raise WeightError(f"take: dtype {dtype!r} is not a NumPy dtype (e.g. 'float32', np.float16)") from None


check_methods(WeightStore, ["scope", "rename", "from_mapping", "from_entries"])  # script-facing: checked arguments
