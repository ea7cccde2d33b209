"""What the ``trtdsl`` command reads from the user: scripts and their arguments, input files, shapes.

Every failure here is a :class:`TrtdslError` naming the option and the file, so
the command prints one line, never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import math
import os
import runpy
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ProfileError, TrtdslError

# A random integer input nothing tells the range of is drawn from [0, _INT_HIGH).
_INT_HIGH = 10


# -------------------------------------------------------------------- scripts
def parse_script_args(args: Sequence[str], pairs: Sequence[str]) -> tuple[list[Any], dict[str, Any]]:
    """``-- ARGS`` and ``--arg key=value`` as build_network's positional and keyword arguments.

    Values are Python literals where they parse as one (``4``, ``True``, ``'x'``,
    ``[1, 2]``; ``ast.literal_eval`` runs no code), else strings. ``--k=v`` and
    ``--k v`` after ``--`` are keywords too, so a script's own flags read naturally.
    """
    positional: list[Any] = []
    kwargs: dict[str, Any] = {}
    items = list(args)
    i = 0
    while i < len(items):
        a = items[i]
        if a.startswith("--") and len(a) > 2:
            key, sep, value = a[2:].partition("=")
            if not sep:
                if i + 1 < len(items) and not items[i + 1].startswith("--"):
                    value, i = items[i + 1], i + 1
                else:
                    value = "True"
            kwargs[key.replace("-", "_")] = _literal(value)
        else:
            positional.append(_literal(a))
        i += 1
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise TrtdslError(f"--arg {pair!r}: expected key=value with a Python identifier as key")
        kwargs[key] = _literal(value)
    return positional, kwargs


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def load_network(script: str | Path, *args: Any, **kwargs: Any) -> Any:
    """Run a network script and return what its ``build_network(*args, **kwargs)`` returns."""
    return load_script(script, args, kwargs)[0]


def load_script(
    script: str | Path, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """``(network, the script's namespace)``: run the script, then its ``build_network(*args, **kwargs)``.

    The script is the user's own code, run as ``python SCRIPT`` would run it (with
    ``sys.argv`` set to the script and its arguments); trtdsl never runs code found
    in model or weight files.
    """
    from .network import Network

    path = Path(script)
    if path.is_dir():
        raise TrtdslError(f"network script {str(path)!r} is a directory")
    if not path.is_file():
        raise TrtdslError(f"no network script {str(path)!r}")
    kwargs = dict(kwargs or {})
    argv = sys.argv
    sys.argv = [str(path), *map(str, args), *(f"--{k}={v}" for k, v in kwargs.items())]
    with open(path, "rb") as f:
        head = f.read(4096)
    if b"\0" in head:  # compile() would say "source code string cannot contain null bytes"
        raise TrtdslError(
            f"{path.name}: is a binary file, not a network script; expected SCRIPT.py (defining build_network()) "
            "or MODEL.onnx"
        )
    try:
        namespace = runpy.run_path(str(path), run_name="__trtdsl__")
    except SyntaxError as e:
        raise TrtdslError(f"{path.name}: syntax error at line {e.lineno}: {e.msg}") from e
    finally:
        sys.argv = argv
    fn = namespace.get("build_network")
    if not callable(fn):
        raise TrtdslError(f"{path.name} defines no build_network() function; it must return a trtdsl.Network")
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        raise TrtdslError(f"{path.name}: build_network{inspect.signature(fn)} cannot take these arguments: {e}") from e
    except ValueError:  # no signature (a builtin): let the call decide
        pass
    net = fn(*args, **kwargs)
    if not isinstance(net, Network):
        raise TrtdslError(f"{path.name}: build_network() returned {type(net).__name__}, expected trtdsl.Network")
    return net, namespace


# ---------------------------------------------------------------------- files
def writable_file(path: str | os.PathLike, option: str) -> Path:
    """Check that ``path`` can be written (its folder exists; it is not a folder) before any work is done."""
    p = Path(path)
    if p.is_dir():
        raise TrtdslError(f"{option} {str(p)!r} is a directory; give a file path")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise TrtdslError(f"{option} {str(p)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise TrtdslError(f"{option} {str(p)!r}: folder {str(parent)!r} is not writable")
    return p


def read_inputs(items: Sequence[str]) -> dict[str, np.ndarray]:
    """``--input name=file.npy``, ``--input name=file.npz`` (one array, or one named ``name``) or ``--input file.npz``.

    Files go through :func:`trtdsl.weights.load`, which reads ``.npy``/``.npz``
    without unpickling and refuses malformed files with a clear error.
    """
    feeds: dict[str, np.ndarray] = {}
    for item in items:
        name, sep, file = item.partition("=")
        if not sep:
            name, file = "", item
        if not file:
            raise TrtdslError(f"--input {item!r}: expected name=file.npy, name=file.npz or file.npz")
        arrays = _read_arrays(file, item)
        if not name:
            feeds.update(arrays)
        elif len(arrays) == 1:
            feeds[name] = next(iter(arrays.values()))
        elif name in arrays:
            feeds[name] = arrays[name]
        else:
            raise TrtdslError(
                f"--input {item!r}: {Path(file).name} holds {len(arrays)} arrays ({', '.join(sorted(arrays)[:8])}) "
                f"and none is named {name!r}; give --input {file} to feed them all by name"
            )
    return feeds


def _read_arrays(file: str, item: str) -> dict[str, np.ndarray]:
    from . import weights

    path = Path(file)
    if path.is_dir():
        raise TrtdslError(f"--input {item!r}: {file!r} is a directory")
    if not path.is_file():
        raise TrtdslError(f"--input {item!r}: no such file {file!r}")
    fmt = {".npy": "npy", ".npz": "npz"}.get(path.suffix.lower())
    if fmt is None:
        raise TrtdslError(f"--input {item!r}: {path.name} is not a .npy or .npz file")
    try:
        store = weights.load(path, format=fmt)
        # np.array: a copy the run may own (store arrays are read-only views of the file).
        return {k: np.array(store[k]) for k in store.keys()}
    except TrtdslError as e:
        raise TrtdslError(f"--input {item!r}: {e}") from e
    except Exception as e:  # a malformed file may fail in the reader in many ways; none is a crash
        raise TrtdslError(f"--input {item!r}: cannot read {path.name}: {type(e).__name__}: {e}") from e


# --------------------------------------------------------------------- shapes
def bind_dims(
    specs: Mapping[str, Sequence[int | str]], shapes: Mapping[str, Sequence[int]], where: str
) -> dict[str, int]:
    """The named dims that the given input shapes fix, e.g. {'batch': 2, 'seq': 128}."""
    bound: dict[str, tuple[int, str]] = {}
    for name, shape in shapes.items():
        spec = specs.get(name)
        if spec is None:
            from .errors import did_you_mean

            raise TrtdslError(
                f"{where}: {name!r} is not an input; inputs are {list(specs)}.{did_you_mean(name, specs)}"
            )
        if len(shape) != len(spec):
            raise ProfileError(f"{where}: input {name!r} has rank {len(spec)} {tuple(spec)}, got shape {tuple(shape)}")
        for axis, (d, n) in enumerate(zip(spec, shape, strict=True)):
            if isinstance(d, str):
                if d in bound and bound[d][0] != n:
                    other, _ = bound[d][1], bound[d][0]
                    raise ProfileError(
                        f"{where}: dim {d!r} is {bound[d][0]} in input {other!r} but {n} in input {name!r}"
                    )
                bound.setdefault(d, (int(n), name))
            elif d not in (-1, n):
                raise ProfileError(f"{where}: input {name!r} axis {axis} is fixed at {d}, got {n}")
    return {d: n for d, (n, _) in bound.items()}


def random_feeds(
    specs: Mapping[str, Sequence[int | str]],
    dtypes_: Mapping[str, str],
    profile: Any,
    bound: Mapping[str, int],
    highs: Mapping[str, int] | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Random inputs whose named dims agree with ``bound`` (the given inputs) and else sit at the profile's opt.

    Integer inputs are drawn from ``[0, highs[name])`` (an embedding table's size,
    when the network shows one) or ``[0, 10)``.
    """
    from . import dtypes

    rng = np.random.default_rng(seed)
    ranges = profile.ranges if profile is not None else {}
    feeds = {}
    for name, spec in specs.items():
        shape = []
        for d in spec:
            if isinstance(d, str):
                if d not in bound and d not in ranges:
                    raise ProfileError(f"input {name!r}: dim {d!r} has no value; give --shapes {name}:...")
                shape.append(bound[d] if d in bound else ranges[d][1])
            else:
                shape.append(int(d))
        kind = dtypes.info(dtypes_[name])
        dt = dtypes.holder(dtypes_[name])  # each input's own type: the feed rule converts nothing
        if kind.is_float:
            feeds[name] = rng.standard_normal(shape).astype(dt)
        elif kind.kind == "bool":
            feeds[name] = rng.random(shape) > 0.5
        else:  # below the embedding size, and within the type (int4 holds -8..7)
            high = min((highs or {}).get(name, _INT_HIGH), kind.range[1] + 1)
            feeds[name] = rng.integers(0, max(1, high), shape).astype(dt)
    return feeds


def dim_ranges(items: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """``--dim`` values (``batch=1,8,32`` or ``batch=4``) as {name: (min, opt, max)}."""
    ranges: dict[str, tuple[int, int, int]] = {}
    for item in items:
        name, sep, text = item.partition("=")
        parts = text.split(",")
        if not sep or not name.strip() or len(parts) not in (1, 3) or not all(p.strip().isdigit() for p in parts):
            raise TrtdslError(f"--dim {item!r}: expected NAME=MIN,OPT,MAX or NAME=N, e.g. batch=1,8,32")
        lo, opt, hi = (int(parts[0]),) * 3 if len(parts) == 1 else (int(p) for p in parts)
        if not 1 <= lo <= opt <= hi:
            raise ProfileError(f"--dim {item!r}: expected 1 <= min <= opt <= max")
        if name.strip() in ranges:
            raise TrtdslError(f"--dim {name.strip()!r} is given twice")
        ranges[name.strip()] = (lo, opt, hi)
    return ranges


def workspace_mib(text: str) -> float:
    """argparse type of ``--workspace``: a finite size in MiB, 0 < size < 2**43 (8 EiB in bytes)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of MiB") from None
    if not math.isfinite(value) or value <= 0 or value >= 2**43:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite size in MiB, 0 < size < 2**43")
    return value
