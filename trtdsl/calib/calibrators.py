"""Calibrators: where calibration batches come from, shaped like TensorRT's ``IInt8EntropyCalibrator2``.

Subclass ``Calibrator`` and implement ``get_batch()`` (a dict of input name -> array,
or None when done); ``read_cache()``/``write_cache(data)`` are optional, as in TensorRT.
Ready-made: ``ArrayCalibrator`` (arrays, ``.npz``/``.npy`` files), ``IterableCalibrator``
(any iterable or generator of feeds) and ``ImageFolderCalibrator`` (a folder of images
decoded by Pillow and turned into arrays by your function).

Example::

    class MyCalibrator(trtdsl.calib.Calibrator):
        def __init__(self, batches):
            super().__init__(cache="model.cache")
            self.batches = iter(batches)

        def get_batch(self):
            return next(self.batches, None)
"""

from __future__ import annotations

import os
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CacheError, CalibrationError, ProfileError, did_you_mean
from .cache import MAX_BYTES

__all__ = ["ArrayCalibrator", "Calibrator", "ImageFolderCalibrator", "IterableCalibrator", "check_feeds"]

Feeds = Mapping[str, np.ndarray]
_KINDS = {"f": "float", "i": "integer", "u": "integer", "b": "bool"}


class Calibrator:
    """Base class of calibrators: implement ``get_batch``; the options tune the range algorithm.

    Args:
        algorithm: range algorithm (``'entropy'``, ``'entropy-legacy'``, ``'percentile'``,
            ``'mse'``, ``'max'``); None: the one ``quantize`` is given.
        percentile: for ``'percentile'`` (default 99.99).
        num_bins: histogram bins on the first batch (default 2048).
        sample: count every k-th element only (default: every element).
        cache: a file for the default ``read_cache``/``write_cache`` (legacy TensorRT text,
            or JSON when the name ends in ``.json``).
        progress: show a progress bar (batches and batches/s).
    """

    algorithm: str | None = None
    percentile: float = 99.99
    num_bins: int = 2048
    sample: int | None = None
    cache: str | os.PathLike | None = None
    cache_format: str | None = None  # what write_cache gets: "json", "legacy", or None (by the cache file's name)
    progress: bool = True

    def __init__(
        self,
        *,
        algorithm: str | None = None,
        percentile: float = 99.99,
        num_bins: int = 2048,
        sample: int | None = None,
        cache: str | os.PathLike | None = None,
        progress: bool = True,
    ):
        self.algorithm = algorithm
        self.percentile = percentile
        self.num_bins = num_bins
        self.sample = sample
        self.cache = cache
        self.progress = progress

    def get_batch(self) -> dict[str, np.ndarray] | None:
        """The next batch of feeds, or None when calibration data is exhausted."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_batch()")

    def read_cache(self) -> bytes | None:
        """A calibration cache to use instead of data, or None (default: the ``cache`` file if it exists)."""
        if self.cache is not None and Path(self.cache).is_file():
            size = Path(self.cache).stat().st_size
            if size > MAX_BYTES:  # refused before reading: parse_cache would refuse it after
                raise CacheError(f"{self.cache}: {size} bytes is too large for a calibration cache (limit {MAX_BYTES})")
            return Path(self.cache).read_bytes()
        return None

    def write_cache(self, data: bytes) -> None:
        """Keep the cache that calibration produced (default: write the ``cache`` file, if one is set)."""
        if self.cache is not None:
            Path(self.cache).write_bytes(data)

    def __len__(self) -> int:
        raise TypeError(f"{type(self).__name__} does not know its number of batches")

    def batches(self) -> Iterator[dict[str, np.ndarray]]:
        """Iterate ``get_batch()`` until it returns None."""
        while True:
            b = self.get_batch()
            if b is None:
                return
            yield b


def _split(array: np.ndarray, batch_size: int | None) -> list[np.ndarray]:
    if batch_size is None or array.shape[0] <= batch_size:
        return [array]
    return [array[i : i + batch_size] for i in range(0, array.shape[0], batch_size)]


class ArrayCalibrator(Calibrator):
    """Batches cut along axis 0 from arrays: one array, a dict of arrays, or a ``.npz``/``.npy`` file.

    A bare array (or ``.npy``, or a one-array ``.npz`` whose key is no input name) feeds
    the network's only input. Files are read with ``allow_pickle=False``.

    Example::

        calib = ArrayCalibrator("calib.npz", batch_size=32)
    """

    def __init__(
        self, data: np.ndarray | Mapping[str, np.ndarray] | str | os.PathLike, *, batch_size: int | None = 32, **kw: Any
    ):
        super().__init__(**kw)
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise CalibrationError(f"batch_size must be a positive int or None, got {batch_size!r}")
        self.source = str(data) if isinstance(data, (str, os.PathLike)) else "arrays"
        arrays = _load(data)
        lengths = {n: a.shape[0] if a.ndim else None for n, a in arrays.items()}
        if any(v is None for v in lengths.values()) or len(set(lengths.values())) > 1:
            raise CalibrationError(
                f"calibration arrays from {self.source} must share their first (batch) axis; got shapes "
                f"{ {n: a.shape for n, a in arrays.items()} }"
            )
        self.arrays = arrays
        self.batch_size = batch_size
        self._pos = 0
        cut = {n: _split(a, batch_size) for n, a in arrays.items()}
        self._batches = [dict(zip(cut, vals)) for vals in zip(*cut.values())]

    def __len__(self) -> int:
        return len(self._batches)

    def get_batch(self) -> dict[str, np.ndarray] | None:
        if self._pos >= len(self._batches):
            return None
        self._pos += 1
        return self._batches[self._pos - 1]

    def reset(self) -> None:
        self._pos = 0


_UNNAMED = ""  # key of a bare array, bound to the network's one input by check_feeds


def _load(data: Any) -> dict[str, np.ndarray]:
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if not path.is_file():
            raise CalibrationError(f"no calibration data file {str(path)!r}")
        try:
            loaded = np.load(path, allow_pickle=False)
            if isinstance(loaded, np.ndarray):
                return {_UNNAMED: loaded}
            with loaded:
                return {k: loaded[k] for k in loaded.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise CalibrationError(
                f"{path.name}: cannot read calibration data ({type(e).__name__}: {e}); expected .npz or .npy "
                "of numeric arrays (object arrays are refused: trtdsl never unpickles)"
            ) from e
    if isinstance(data, Mapping):
        return {str(k): np.asarray(v) for k, v in data.items()}
    return {_UNNAMED: np.asarray(data)}


class IterableCalibrator(Calibrator):
    """Batches from any iterable or generator of feeds (dicts, or bare arrays for a one-input network).

    Example::

        calib = IterableCalibrator(({"x": x[i : i + 8]} for i in range(0, len(x), 8)), batches=len(x) // 8)
    """

    def __init__(self, feeds: Iterable[Any], *, batches: int | None = None, **kw: Any):
        super().__init__(**kw)
        self._it = iter(feeds)
        self._len = batches if batches is not None else (len(feeds) if hasattr(feeds, "__len__") else None)

    def __len__(self) -> int:
        if self._len is None:
            raise TypeError("this iterable has no length; pass batches=")
        return self._len

    def get_batch(self) -> dict[str, np.ndarray] | None:
        item = next(self._it, None)
        if item is None:
            return None
        if isinstance(item, Mapping):
            return {str(k): np.asarray(v) for k, v in item.items()}
        return {_UNNAMED: np.asarray(item)}


class ImageFolderCalibrator(Calibrator):
    """Batches of images from a folder, decoded with Pillow and converted by ``preprocess(image) -> array``.

    ``preprocess`` gets a ``PIL.Image.Image`` and returns one sample (e.g. CHW float32);
    samples are stacked into batches of ``batch_size``. Files are the folder's own
    regular files with an image suffix, sorted by name (symbolic links are skipped, so the
    folder cannot make trtdsl read elsewhere). Needs Pillow: ``pip install trtdsl[images]``.

    Example::

        def prep(img):
            a = np.asarray(img.convert("RGB").resize((224, 224)), np.float32) / 255
            return a.transpose(2, 0, 1)

        calib = ImageFolderCalibrator("calib_images/", prep, batch_size=16)
    """

    SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

    def __init__(
        self,
        folder: str | os.PathLike,
        preprocess: Callable[[Any], np.ndarray],
        *,
        batch_size: int = 32,
        input_name: str | None = None,
        limit: int | None = None,
        **kw: Any,
    ):
        super().__init__(**kw)
        try:
            from PIL import Image
        except ImportError as e:
            raise CalibrationError("ImageFolderCalibrator needs Pillow: pip install trtdsl[images]") from e
        self._image = Image
        root = Path(folder)
        if not root.is_dir():
            raise CalibrationError(f"no image folder {str(root)!r}")
        if not callable(preprocess):
            raise CalibrationError(f"preprocess must be a function image -> array, got {type(preprocess).__name__}")
        files = sorted(
            p for p in root.iterdir() if p.suffix.lower() in self.SUFFIXES and p.is_file() and not p.is_symlink()
        )
        if limit is not None:
            files = files[:limit]
        if not files:
            raise CalibrationError(f"{str(root)!r} holds no image files ({', '.join(self.SUFFIXES)})")
        self.files = files
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.input_name = input_name or _UNNAMED
        self._pos = 0

    def __len__(self) -> int:
        return (len(self.files) + self.batch_size - 1) // self.batch_size

    def _read(self, path: Path) -> np.ndarray:
        Image = self._image
        try:
            with warnings.catch_warnings():
                # An image that decodes to billions of pixels is an error, not a warning.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    img.load()
                    sample = self.preprocess(img)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
            raise CalibrationError(f"cannot decode calibration image {path.name!r}: {e}") from e
        arr = np.asarray(sample)
        if arr.dtype == object or arr.dtype.kind not in "fiub":
            raise CalibrationError(f"preprocess returned {type(sample).__name__} for {path.name!r}; expected an array")
        return arr

    def get_batch(self) -> dict[str, np.ndarray] | None:
        if self._pos >= len(self.files):
            return None
        chunk = self.files[self._pos : self._pos + self.batch_size]
        self._pos += len(chunk)
        samples = [self._read(p) for p in chunk]
        shapes = {s.shape for s in samples}
        if len(shapes) > 1:
            raise CalibrationError(
                f"preprocess returned samples of different shapes {sorted(shapes)} in one batch "
                f"({chunk[0].name} ...); resize images to one size"
            )
        return {self.input_name: np.stack(samples)}


def check_feeds(net: Any, feeds: Mapping[str, Any], batch: int) -> dict[str, np.ndarray]:
    """Feeds checked against ``net``'s inputs (names, dtypes, ranks, static dims, profiles).

    A bare array (key ``''``) is bound to the network's one input.
    """
    specs: Mapping[str, Sequence[int | str]] = net.input_specs
    where = f"calibration batch {batch}"
    if not isinstance(feeds, Mapping):
        raise CalibrationError(
            f"{where}: get_batch() must return a dict of input name -> array, got {type(feeds).__name__}"
        )
    feeds = dict(feeds)
    if _UNNAMED in feeds:
        if len(specs) != 1:
            raise CalibrationError(
                f"{where}: an unnamed array cannot feed a network with inputs {list(specs)}; give a dict by input name"
            )
        feeds[next(iter(specs))] = feeds.pop(_UNNAMED)
    unknown = [n for n in feeds if n not in specs]
    if unknown:
        hint = did_you_mean(unknown[0], specs)
        if len(feeds) == 1 and len(specs) == 1 and not hint:
            feeds = {next(iter(specs)): next(iter(feeds.values()))}  # one array for one input: the name is free
        else:
            raise CalibrationError(f"{where}: {unknown[0]!r} is not an input; inputs are {list(specs)}.{hint}")
    missing = [n for n in specs if n not in feeds]
    if missing:
        raise CalibrationError(f"{where}: no data for input(s) {missing}; got {list(feeds)}")
    out = {}
    for name, value in feeds.items():
        a = np.asarray(value)
        want = net.input_dtypes[name]
        kind = "float" if want in ("float32", "float16", "bfloat16") else ("bool" if want == "bool" else "integer")
        if _KINDS.get(a.dtype.kind) != kind:
            raise CalibrationError(f"{where}: input {name!r} is {want}; got an array of dtype {a.dtype}")
        spec = specs[name]
        if a.ndim != len(spec) or any(isinstance(d, int) and d != s for d, s in zip(spec, a.shape)):
            hint = ""
            if a.ndim == len(spec) and isinstance(spec[0], int) and tuple(spec[1:]) == a.shape[1:]:
                hint = (
                    f": the network's batch is static ({spec[0]}): calibrate in batches of {spec[0]} "
                    f"(batch_size={spec[0]}, or trtdsl build --calib-batch {spec[0]})"
                )
            raise CalibrationError(f"{where}: input {name!r} expects shape {tuple(spec)}, got {a.shape}{hint}")
        if kind == "float" and not np.all(np.isfinite(a)):
            raise CalibrationError(f"{where}: input {name!r} holds NaN or infinite values")
        out[name] = a.astype(np.float32, copy=False) if want == "float32" else a
    if any(isinstance(d, str) for s in specs.values() for d in s):
        from ..profile import select_profile

        try:
            select_profile(net.profiles(), specs, {n: a.shape for n, a in out.items()})
        except ProfileError as e:
            raise CalibrationError(f"{where}: {e}; use a batch size inside the profile") from e
    return out
