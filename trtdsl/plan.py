"""A built engine and what a runtime needs to know about it: ``Plan`` and ``IOSpec``.

A ``Plan`` is the serialized engine plus what a runtime needs to know without
deserializing it: the I/O names, dtypes, shapes with their dim names, and the
optimization profiles. ``Plan.save`` writes the engine bytes as they are (so
``trtexec --loadEngine`` still reads them) and the metadata beside it as JSON,
with the engine's SHA-256; ``Plan.load`` checks both (:mod:`trtdsl.planfile`).
``trtdsl.build`` (:mod:`trtdsl.build`) makes one.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import planfile
from .argcheck import api
from .errors import TrtdslError
from .profile import Profile, select_profile

# The build's logger, as before Plan had its own module: filters on "trtdsl.build" keep working.
log = logging.getLogger("trtdsl.build")
METADATA_SUFFIX = ".json"
FORMAT_VERSION = planfile.FORMAT_VERSION


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
    layers: list[dict[str, Any]] = field(default_factory=list)  # the network's layers, see trtdsl.planinfo
    verified: bool = True  # False for a format-1 plan read from disk: its metadata holds no engine hash

    def __repr__(self) -> str:
        # Not the dataclass repr: that would print every byte of the engine.
        def io(specs: dict[str, IOSpec]) -> str:
            return ", ".join(f"{s.name}: {s.dtype}[{', '.join(str(d) for d in s.shape)}]" for s in specs.values())

        return (
            f"Plan({self.network!r}, {len(self.engine):,} bytes, inputs=({io(self.inputs)}), "
            f"outputs=({io(self.outputs)}), profiles={len(self.profiles)}, backend={self.backend!r})"
        )

    def select_profile(self, shapes: Mapping[str, Sequence[int]]) -> int:
        """Index of the first profile admitting ``shapes``; ProfileError naming input, dim and range otherwise."""
        return select_profile(self.profiles, {n: s.shape for n, s in self.inputs.items()}, shapes)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the engine to ``path`` and its metadata to ``path + '.json'``."""
        path = Path(path)
        path.write_bytes(self.engine)
        meta = {
            "format": FORMAT_VERSION,
            "engine_bytes": len(self.engine),
            "engine_sha256": planfile.engine_sha256(self.engine),
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
    @api("Plan")
    def load(cls, path: str | os.PathLike) -> Plan:
        """Read a plan written by ``save``, after checking its metadata and the engine's SHA-256.

        Every problem (a malformed or hostile sidecar, a swapped or truncated
        engine) is a :class:`TrtdslError` naming the field.

        Example::

            plan = Plan.load("model.plan")   # reads model.plan and model.plan.json
        """
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
            engine = path.read_bytes()
            meta = planfile.read_meta(meta_path, engine)
        except OSError as e:
            raise TrtdslError(f"cannot read plan {str(path)!r}: {e.strerror or e}") from e
        if not meta["verified"]:
            log.warning("plan %s has format-1 metadata without an engine hash: the engine is not verified", path)
        return cls(
            engine=engine,
            inputs={n: IOSpec(n, dt, shape) for n, dt, shape in meta["inputs"]},
            outputs={n: IOSpec(n, dt, shape) for n, dt, shape in meta["outputs"]},
            profiles=[Profile(r) for r in meta["profiles"]],
            backend=meta["backend"],
            network=meta["network"],
            build_seconds=meta["build_seconds"],
            options=meta["options"],
            verified=meta["verified"],
            layers=meta["layers"],
        )

    def export_triton(self, repository: str | os.PathLike, **options: Any) -> Any:
        """Write a Triton model repository entry for this plan; see :func:`trtdsl.triton.export_triton`."""
        from .triton import export_triton

        return export_triton(self, repository, **options)

    def summary(self) -> str:
        """Human-readable I/O and profile listing (what ``trtdsl info`` prints)."""
        lines = [f"plan {self.network!r}: {len(self.engine):,} bytes, built with {self.backend}"]
        if not self.verified:
            lines.append("engine NOT verified: format-1 metadata records no SHA-256; re-save the plan to add one")
        for title, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            lines.append(f"{title}:")
            for s in specs.values():
                lines.append(f"  {s.name}: {s.dtype} ({', '.join(str(d) for d in s.shape)})")
        for i, p in enumerate(self.profiles):
            ranges = ", ".join(f"{d} {lo}..{opt}..{hi}" for d, (lo, opt, hi) in p.ranges.items())
            lines.append(f"profile {i}: {ranges or 'static shapes'}")
        return "\n".join(lines)


__all__ = ["IOSpec", "Plan"]
