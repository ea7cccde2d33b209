"""Build a ``Network`` into a serialized engine: ``trtdsl.build(net) -> Plan``.

A ``Plan`` is the serialized engine plus what a runtime needs to know without
deserializing it: the I/O names, dtypes, shapes with their dim names, and the
optimization profiles. ``Plan.save`` writes the engine bytes as they are (so
``trtexec --loadEngine`` still reads them) and the metadata beside it as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _trt
from .errors import BuildError, TrtdslError
from .layerinfo import layer_records
from .profile import Profile, select_profile

if TYPE_CHECKING:
    from .network import Network
    from .weights.store import WeightStore

log = logging.getLogger("trtdsl.build")
METADATA_SUFFIX = ".json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class IOSpec:
    """One engine input or output: its shape mixes ints and dim names (-1: dynamic, unnamed)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]


@dataclass
class Plan:
    """A serialized TensorRT engine and its I/O metadata."""

    engine: bytes
    inputs: dict[str, IOSpec]
    outputs: dict[str, IOSpec]
    profiles: list[Profile]
    backend: str = ""
    network: str = ""
    build_seconds: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)  # the network's layers, see trtdsl.layerinfo

    def select_profile(self, shapes: Mapping[str, Sequence[int]]) -> int:
        """Index of the first profile admitting ``shapes``; ProfileError naming input, dim and range otherwise."""
        return select_profile(self.profiles, {n: s.shape for n, s in self.inputs.items()}, shapes)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the engine to ``path`` and its metadata to ``path + '.json'``."""
        path = Path(path)
        path.write_bytes(self.engine)
        meta = {
            "format": FORMAT_VERSION,
            "backend": self.backend,
            "network": self.network,
            "build_seconds": self.build_seconds,
            "options": self.options,
            "inputs": [asdict(s) for s in self.inputs.values()],
            "outputs": [asdict(s) for s in self.outputs.values()],
            "profiles": [{k: list(v) for k, v in p.ranges.items()} for p in self.profiles],
            "layers": self.layers,
        }
        Path(str(path) + METADATA_SUFFIX).write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Plan:
        """Read a plan written by ``save``."""
        path = Path(path)
        meta_path = Path(str(path) + METADATA_SUFFIX)
        if not path.is_file():
            raise TrtdslError(f"no plan file {str(path)!r}")
        if not meta_path.is_file():
            raise TrtdslError(
                f"plan {str(path)!r} has no metadata file {meta_path.name!r} beside it; "
                "trtdsl writes one with Plan.save (engines from other tools carry no dim names or profiles)"
            )
        try:
            meta = json.loads(meta_path.read_text())
            spec = lambda d: IOSpec(d["name"], d["dtype"], tuple(d["shape"]))  # noqa: E731
            return cls(
                engine=path.read_bytes(),
                inputs={d["name"]: spec(d) for d in meta["inputs"]},
                outputs={d["name"]: spec(d) for d in meta["outputs"]},
                profiles=[Profile({k: tuple(v) for k, v in p.items()}) for p in meta["profiles"]],
                backend=meta.get("backend", ""),
                network=meta.get("network", ""),
                build_seconds=meta.get("build_seconds", 0.0),
                options=meta.get("options", {}),
                layers=_layers(meta.get("layers", [])),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise TrtdslError(f"plan metadata {str(meta_path)!r} is malformed: {e}") from e

    def export_triton(self, repository: str | os.PathLike, **options: Any) -> Any:
        """Write a Triton model repository entry for this plan; see :func:`trtdsl.triton.export_triton`."""
        from .triton import export_triton

        return export_triton(self, repository, **options)

    def summary(self) -> str:
        """Human-readable I/O and profile listing (what ``trtdsl info`` prints)."""
        lines = [f"plan {self.network!r}: {len(self.engine):,} bytes, built with {self.backend}"]
        for title, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            lines.append(f"{title}:")
            for s in specs.values():
                lines.append(f"  {s.name}: {s.dtype} ({', '.join(str(d) for d in s.shape)})")
        for i, p in enumerate(self.profiles):
            ranges = ", ".join(f"{d} {lo}..{opt}..{hi}" for d, (lo, opt, hi) in p.ranges.items())
            lines.append(f"profile {i}: {ranges or 'static shapes'}")
        return "\n".join(lines)


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
    weights: WeightStore | None = None,
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
        weights: a ``WeightStore``; after the build, raise if any of its weights went unused.

    Example::

        plan = trtdsl.build(net, optimization_level=3, timing_cache="cache.bin")
        plan.save("model.plan")
    """
    trt = _trt.load()
    if net.trt.num_outputs == 0:
        raise BuildError(f"network {net.name!r} has no outputs; mark one with net.output(tensor, name)")
    profiles = net.profiles()
    builder = net.builder
    config = builder.create_builder_config()
    options: dict[str, Any] = {"tf32": tf32, "refit": refit, "strip_plan": strip_plan}
    if optimization_level is not None:
        if not 0 <= optimization_level <= 5:
            raise BuildError(f"optimization_level must be 0..5, got {optimization_level}")
        config.builder_optimization_level = optimization_level
        options["optimization_level"] = optimization_level
    pools = dict(memory_pools or {})
    if workspace is not None:
        pools["WORKSPACE"] = workspace
    for pool, limit in pools.items():
        if not hasattr(trt.MemoryPoolType, pool):
            raise BuildError(f"unknown memory pool {pool!r}; expected one of {list(trt.MemoryPoolType.__members__)}")
        config.set_memory_pool_limit(getattr(trt.MemoryPoolType, pool), int(limit))
    if pools:
        options["memory_pools"] = pools
    _set_flag(config, trt, "TF32", tf32)
    _set_flag(config, trt, "REFIT", refit)
    _set_flag(config, trt, "STRIP_PLAN", strip_plan)

    dynamic = {n: s for n, s in net.input_specs.items() if any(isinstance(d, str) for d in s)}
    for profile in profiles if dynamic else []:
        p = builder.create_optimization_profile()
        for name, spec in dynamic.items():
            p.set_shape(name, *profile.shapes(spec))
        config.add_optimization_profile(p)

    cache = _load_timing_cache(config, timing_cache)
    monitor = _progress_monitor(trt, progress)
    if monitor is not None:
        config.progress_monitor = monitor
    logger = _trt.logger()
    first_error = len(logger.errors)
    start = time.perf_counter()
    try:
        engine = builder.build_serialized_network(net.trt, config)
    finally:
        if monitor is not None:
            monitor.close()
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
    if cache is not None and timing_cache is not None:
        with warnings.catch_warnings():
            # tensorrt_rtx keeps the API but its timing cache is a no-op (deprecated in RTX 1.2).
            warnings.simplefilter("ignore", DeprecationWarning)
            Path(timing_cache).write_bytes(memoryview(cache.serialize()))
    log.info("built %s in %.2fs (%d bytes)", net.name, seconds, engine.nbytes)
    if weights is not None:
        weights.check_all_used()
    return Plan(
        engine=bytes(engine),
        inputs={n: IOSpec(n, net.input_dtypes[n], spec) for n, spec in net.input_specs.items()},
        outputs={n: IOSpec(n, t.dtype, t.shape) for n, t in net.outputs.items()},
        profiles=profiles,
        backend=f"{_trt.name()} {trt.__version__}",
        network=net.name,
        build_seconds=seconds,
        options=options,
        layers=layer_records(net),
    )


def _layers(value: Any) -> list[dict[str, Any]]:
    """The metadata's layer records (absent in plans saved before they were recorded)."""
    if not isinstance(value, list) or not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in value):
        raise TypeError("'layers' must be a list of records with a 'name'")
    return value


def _set_flag(config: Any, trt: Any, flag: str, on: bool) -> None:
    member = getattr(trt.BuilderFlag, flag, None)
    if member is None:
        if on and flag != "TF32":
            raise BuildError(f"{_trt.name()} has no BuilderFlag.{flag}")
        return
    (config.set_flag if on else config.clear_flag)(member)


def _load_timing_cache(config: Any, path: str | os.PathLike | None) -> Any:
    if path is None:
        return None
    data = Path(path).read_bytes() if Path(path).is_file() else b""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cache = config.create_timing_cache(data)
        if cache is None:
            raise BuildError(f"timing cache {str(path)!r} is not a valid TensorRT timing cache")
        config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


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
