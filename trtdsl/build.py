"""Build a ``Network`` into a serialized engine: ``trtdsl.build(net) -> Plan``.

The builder config (optimization level, memory pools, flags, profiling
verbosity, aux streams), optimization profiles, the timing cache and the
progress bar live here; the ``Plan`` it returns is :mod:`trtdsl.plan`.
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _trt
from .argcheck import api
from .errors import BuildError, ProfileError, did_you_mean
from .plan import IOSpec, Plan
from .planinfo import layer_records
from .profile import Profile

if TYPE_CHECKING:
    from .network import Network
    from .weights.store import WeightStore

log = logging.getLogger("trtdsl.build")


@api("trtdsl")
def build(
    net: Network,
    *,
    optimization_level: int | None = None,
    workspace: int | None = None,
    memory_pools: Mapping[str, int] | None = None,
    timing_cache: str | os.PathLike | None = None,
    tf32: bool = True,
    refit: bool = False,
    strip_plan: bool = False,
    progress: bool | None = None,
    weights: WeightStore | Mapping[str, Any] | None = None,
    ignore_weights: Sequence[str] = (),
    profiling_verbosity: str | None = None,
    max_aux_streams: int | None = None,
    sparsity: bool = False,
    configure: Callable[[Any], None] | None = None,
) -> Plan:
    """Build ``net`` into a ``Plan``.

    Args:
        optimization_level: TensorRT builder optimization level 0-5 (default: TensorRT's, 3).
        workspace: workspace memory-pool limit in bytes.
        memory_pools: other pool limits by ``trt.MemoryPoolType`` name, e.g. ``{"TACTIC_SHARED_MEMORY": 48 << 10}``.
        timing_cache: file to read the timing cache from and write it back to.
        tf32: allow TF32 for float32 matmul/convolution (TensorRT's default). Clear it for
            bit-tight float32 golden comparisons on a GPU.
        refit: build a refittable engine; ``strip_plan``: leave refittable weights out of the plan.
        progress: show a progress bar (default: when stderr is a terminal).
        weights: a ``WeightStore`` (or a dict); raise before building if any of its weights
            went unused. ``ignore_weights``: fnmatch patterns of weights not meant to be used
            (``num_batches_tracked`` counters are always skipped).
        profiling_verbosity: what the engine inspector and profiles show per layer:
            ``"layer_names_only"`` (TensorRT's default), ``"detailed"`` or ``"none"``.
        max_aux_streams: how many auxiliary streams TensorRT may run layers on in parallel (0: none).
        sparsity: let TensorRT pick 2:4 structured-sparse kernels for weights that allow them.
        configure: called with the ``trt.IBuilderConfig`` after trtdsl set its options, to
            set anything else (``lambda c: setattr(c, "avg_timing_iterations", 4)``).

    Example::

        plan = trtdsl.build(net, optimization_level=3, timing_cache="cache.bin")
        plan.save("model.plan")
    """
    trt = _trt.load()
    if net.trt.num_outputs == 0:
        raise BuildError(f"network {net.name!r} has no outputs; mark one with net.output(tensor, name)")
    if weights is not None:
        # Before the build, which takes minutes on a real model.
        from .weights.store import as_store

        as_store(weights).check_all_used(f"network {net.name!r}", ignore=ignore_weights)
    profiles = net.profiles()
    builder = net.builder
    config = builder.create_builder_config()
    options: dict[str, Any] = {"tf32": tf32, "refit": refit, "strip_plan": strip_plan}
    if optimization_level is not None:
        if type(optimization_level) is not int or not 0 <= optimization_level <= 5:
            raise BuildError(f"optimization_level must be 0..5, got {optimization_level!r}")
        config.builder_optimization_level = optimization_level
        options["optimization_level"] = optimization_level
    pools = dict(memory_pools or {})
    if workspace is not None:
        pools["WORKSPACE"] = workspace
    for pool, limit in pools.items():
        if not hasattr(trt.MemoryPoolType, pool):
            raise BuildError(f"unknown memory pool {pool!r}; expected one of {list(trt.MemoryPoolType.__members__)}")
        config.set_memory_pool_limit(getattr(trt.MemoryPoolType, pool), _pool_bytes(pool, limit))
    if pools:
        options["memory_pools"] = pools
    _set_flag(config, trt, "TF32", tf32)
    _set_flag(config, trt, "REFIT", refit)
    _set_flag(config, trt, "STRIP_PLAN", strip_plan)
    _set_flag(config, trt, "SPARSE_WEIGHTS", sparsity)
    if sparsity:
        options["sparsity"] = True
    if profiling_verbosity is not None:
        levels = {k.lower(): v for k, v in trt.ProfilingVerbosity.__members__.items()}
        level = levels.get(str(profiling_verbosity).lower())
        if level is None:
            raise BuildError(
                f"profiling_verbosity must be one of {sorted(levels)}, got {profiling_verbosity!r}"
                f"{did_you_mean(str(profiling_verbosity).lower(), levels)}"
            )
        config.profiling_verbosity = level
        options["profiling_verbosity"] = str(profiling_verbosity).lower()
    if max_aux_streams is not None:
        if type(max_aux_streams) is not int or max_aux_streams < 0:
            raise BuildError(f"max_aux_streams must be a non-negative int, got {max_aux_streams!r}")
        config.max_aux_streams = max_aux_streams
        options["max_aux_streams"] = max_aux_streams
    _check_timing_cache_path(timing_cache)

    dynamic = {n: s for n, s in net.input_specs.items() if any(isinstance(d, str) for d in s)}
    for profile in profiles if dynamic else []:
        p = builder.create_optimization_profile()
        for name, spec in dynamic.items():
            p.set_shape(name, *profile.shapes(spec))
        config.add_optimization_profile(p)

    if configure is not None:
        configure(config)
        options["configure"] = getattr(configure, "__qualname__", type(configure).__name__)
    cache, cache_read = _load_timing_cache(config, timing_cache)
    monitor = _progress_monitor(trt, progress)
    if monitor is not None:
        config.progress_monitor = monitor
    logger = _trt.logger()
    first_error = len(logger.errors)
    inconsistent = _Collect("not self-consistent")
    trt_log = logging.getLogger("trtdsl.tensorrt")
    trt_log.addHandler(inconsistent)
    start = time.perf_counter()
    try:
        engine = builder.build_serialized_network(net.trt, config)
    finally:
        trt_log.removeHandler(inconsistent)
        if monitor is not None:
            monitor.close()
    if inconsistent.messages:
        # TensorRT only warns and builds an engine that fails at run time for those shapes.
        raise ProfileError(_inconsistent_profile(net, profiles, inconsistent.messages[0]))
    seconds = time.perf_counter() - start
    if engine is None:
        errors = logger.errors[first_error:] or ["(TensorRT gave no error message)"]
        hint = ""
        if (refit or strip_plan) and any("CUDA" in e or "Cuda" in e for e in errors):
            # Measured with tensorrt_rtx 1.7 on a CPU-only machine: plain builds work,
            # REFIT builds fail in Myelin's JIT, which needs a CUDA device.
            hint = (
                " Hint: refittable (refit/strip_plan) builds need a CUDA GPU; build without them on a CPU-only machine."
            )
        raise BuildError(f"TensorRT failed to build network {net.name!r}: " + " | ".join(errors) + hint)
    if cache is not None and timing_cache is not None and cache_read:
        with warnings.catch_warnings():
            # tensorrt_rtx keeps the API but its timing cache is a no-op (deprecated in RTX 1.2).
            warnings.simplefilter("ignore", DeprecationWarning)
            _write_atomically(Path(timing_cache), memoryview(cache.serialize()))
    elif cache is not None:
        log.warning("timing cache %s could not be read, so it was not used and is left as it was", timing_cache)
    log.info("built %s in %.2fs (%d bytes)", net.name, seconds, engine.nbytes)
    out_shapes = _output_dims(net, profiles)
    ranges = net.index_ranges()
    if ranges:
        options["index_ranges"] = ranges  # what `trtdsl run model.plan` draws random ids below
    return Plan(
        engine=bytes(engine),
        inputs={n: IOSpec(n, net.input_dtypes[n], spec) for n, spec in net.input_specs.items()},
        outputs={n: IOSpec(n, t.dtype, shape) for (n, t), shape in zip(net.outputs.items(), out_shapes, strict=True)},
        profiles=profiles,
        backend=f"{_trt.name()} {trt.__version__}",
        network=net.name,
        build_seconds=seconds,
        options=options,
        layers=layer_records(net),
    )


_PROBE_BYTES = 256 << 20  # larger networks keep -1 in their output shapes (no probe runs)


def _output_dims(net: Any, profiles: Sequence[Profile]) -> list[tuple[int | str, ...]]:
    """Output shapes with the named dim where a dynamic output axis is exactly one input dim.

    TensorRT reports -1 for those axes. Which dim an axis follows is found by
    running the reference interpreter on zeros at the first profile's minimum
    shapes, then with one dim at a time moved: an axis that equals that dim's value
    in both runs, and no other, carries its name. Anything else stays -1, as does
    every axis of a network too large to probe or that the interpreter cannot run.
    """
    shapes = [t.shape for t in net.outputs.values()]
    dims = sorted({d for spec in net.input_specs.values() for d in spec if isinstance(d, str)})
    if not dims or all(-1 not in s for s in shapes) or sum(a.nbytes for a in net.weights.values()) > _PROBE_BYTES:
        return shapes
    import numpy as np

    from . import dtypes
    from .reference import Interpreter

    first = profiles[0].ranges

    def probe(values: dict[str, int]) -> list[tuple[int, ...]]:
        feeds = {}
        for name, spec in net.input_specs.items():
            shape = tuple(values[d] if isinstance(d, str) else d for d in spec)
            feeds[name] = np.zeros(shape, dtypes.to_numpy(net.input_dtypes[name]))
        out = interp.run(feeds)
        return [out[n].shape for n in net.outputs]

    try:
        interp = Interpreter(net)
        base = {d: first[d][0] for d in dims}
        runs = {None: probe(base)}
        for d in dims:
            lo, _, hi = first[d]
            if hi > lo:
                runs[d] = probe({**base, d: lo + 1})
    except Exception as e:  # an op the interpreter lacks, or one that needs real data: keep -1
        log.debug("output dims not named (%s: %s)", type(e).__name__, e)
        return shapes
    named = []
    for i, shape in enumerate(shapes):
        axes: list[int | str] = []
        for a, n in enumerate(shape):
            follow = [d for d in dims if d in runs and runs[None][i][a] == base[d] and runs[d][i][a] == base[d] + 1]
            moved = [d for d in dims if d in runs and runs[d][i][a] != runs[None][i][a]]
            axes.append(follow[0] if n == -1 and len(follow) == 1 and moved == follow else n)
        named.append(tuple(axes))
    return named


class _Collect(logging.Handler):
    """Keeps the TensorRT log messages that contain ``needle``, whatever their level."""

    def __init__(self, needle: str):
        super().__init__(logging.DEBUG)
        self.needle, self.messages = needle, []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if self.needle in msg:
            self.messages.append(msg)


def _inconsistent_profile(net: Any, profiles: Sequence[Profile], msg: str) -> str:
    """TensorRT's "Profile kMAX values are not self-consistent" warning in terms of the named dims.

    TensorRT writes input axes as ``(# 2 (SHAPE x))``: axis 2 of input ``x``, which
    the network declared as a named dim.
    """
    import re

    def dim(m: re.Match) -> str:
        spec = net.input_specs.get(m.group(2), ())
        i = int(m.group(1))
        d = spec[i] if i < len(spec) else None
        return d if isinstance(d, str) else f"{m.group(2)}[{i}]"

    which = re.search(r"Profile k(MIN|OPT|MAX) values", msg)
    point = {"MIN": 0, "OPT": 1, "MAX": 2}[which.group(1)] if which else 2
    body = msg.split("not self-consistent.", 1)[-1].split(" In operator()", 1)[0].strip()
    body = re.sub(r"\(# (\d+) \(SHAPE ([^()\s]+)\)\)", dim, body)
    layer = body.split(":", 1)[0]
    used = [d for d in net.dims if re.search(rf"\b{re.escape(d)}\b", body)] or list(profiles[0].ranges)
    at = ", ".join(f"{d}={profiles[0].ranges[d][point]}" for d in used if d in profiles[0].ranges)
    ranges = ", ".join(
        f"{d} {lo}..{hi}" for d in used if d in profiles[0].ranges for lo, _, hi in [profiles[0].ranges[d]]
    )
    return (
        f"network {net.name!r}: the profile allows shapes the network cannot take: layer {layer!r} fails at the "
        f"profile's {('min', 'opt', 'max')[point]} ({at}): {body.split(':', 1)[-1].strip()} "
        f"Narrow the range ({ranges}) to sizes every layer accepts (e.g. multiples of the total pooling stride), "
        "or pad the input."
    )


def _pool_bytes(pool: str, limit: Any) -> int:
    """A memory-pool limit as the non-negative int64 TensorRT takes, or a BuildError naming the pool."""
    ok = isinstance(limit, (int, float)) and not isinstance(limit, bool) and math.isfinite(limit)
    if not ok or limit < 0 or limit >= 1 << 63 or limit != int(limit):
        raise BuildError(f"memory pool {pool} limit must be a whole number of bytes, 0 <= limit < 2**63, got {limit!r}")
    return int(limit)


def _check_timing_cache_path(path: str | os.PathLike | None) -> None:
    """Fail before the build (not after it) when the timing cache cannot be read or written back."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise BuildError(f"timing cache {str(p)!r} is a directory; give a file path")
    if not p.parent.is_dir():
        raise BuildError(f"timing cache {str(p)!r}: folder {str(p.parent)!r} does not exist")


def _set_flag(config: Any, trt: Any, flag: str, on: bool) -> None:
    member = getattr(trt.BuilderFlag, flag, None)
    if member is None:
        if on and flag != "TF32":
            raise BuildError(f"{_trt.name()} has no BuilderFlag.{flag}")
        return
    (config.set_flag if on else config.clear_flag)(member)


def _load_timing_cache(config: Any, path: str | os.PathLike | None) -> tuple[Any, bool]:
    """The cache to build with, and whether the file was read (only then may the build write it back).

    TensorRT answers bytes it cannot deserialize with an empty cache and a log
    line, so "read" means: the file is new or empty, or it did not come back as
    the empty cache (unless it is the empty cache's own bytes).
    """
    if path is None:
        return None, False
    try:
        data = Path(path).read_bytes() if Path(path).is_file() else b""
    except OSError as e:
        raise BuildError(f"cannot read timing cache {str(path)!r}: {e.strerror or e}") from e
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cache = config.create_timing_cache(data)
        if cache is None:
            raise BuildError(f"timing cache {str(path)!r} is not a valid TensorRT timing cache")
        read = not data
        if data:
            empty = bytes(memoryview(config.create_timing_cache(b"").serialize()))
            read = data == empty or bytes(memoryview(cache.serialize())) != empty
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache, read


def _write_atomically(path: Path, data: Any) -> None:
    """Write beside ``path`` and rename over it, so an interrupted write never leaves half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _progress_monitor(trt: Any, progress: bool | None) -> Any:
    """A trt.IProgressMonitor that draws one tqdm bar per active build phase."""
    import sys

    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.bars: dict[str, Any] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            depth = len(self.bars)
            self.bars[phase_name] = tqdm(total=num_steps, desc=phase_name, position=depth, leave=depth == 0)

        def step_complete(self, phase_name, step):
            bar = self.bars.get(phase_name)
            if bar is not None:
                bar.update(1)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            bar = self.bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

        def close(self) -> None:
            for bar in self.bars.values():
                bar.close()
            self.bars.clear()

    return Monitor()


__all__ = ["IOSpec", "Plan", "build"]
