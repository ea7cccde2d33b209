"""Export a plan as an NVIDIA Triton Inference Server model repository.

``export_triton(plan, "models")`` writes ``models/<name>/config.pbtxt`` and
``models/<name>/1/model.plan`` for Triton's TensorRT backend
(``platform: "tensorrt_plan"``). Everything in the config comes from the plan's
metadata: I/O names, Triton data types, dims (-1 where dynamic, the batch dim
left out when ``max_batch_size > 0``), one instance group whose
``profile`` entries are the plan's optimization-profile indices, and dynamic
batching when the batch dim is dynamic.

The config is written as protobuf text by the small writer below rather than
through ``google.protobuf.text_format``: that needs Triton's compiled
``ModelConfig`` schema, which only the ``tritonclient[grpc]`` package ships
(with grpc, tens of MB), and the config uses six message types with scalar,
enum, string and repeated fields only. The tests parse every config with
Triton's own schema through ``text_format``, so a syntax or field mistake fails
there.

Triton's limits, refused or flagged here instead of at server start:

* its TensorRT backend runs full TensorRT, which cannot load a TensorRT-RTX plan;
* its ``DataType`` enum has no FP8, FP4, INT4 or E8M0.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import dtypes
from .errors import TrtdslError

# TensorRT DataType -> Triton DataType (model_config.proto), as Triton's TensorRT backend
# converts them; TensorRT types missing here (FP8, FP4, INT4, E8M0) have no Triton type.
_FROM_TENSORRT = {
    "FLOAT": "TYPE_FP32", "HALF": "TYPE_FP16", "BF16": "TYPE_BF16", "INT8": "TYPE_INT8",
    "UINT8": "TYPE_UINT8", "INT32": "TYPE_INT32", "INT64": "TYPE_INT64", "BOOL": "TYPE_BOOL",
}  # fmt: skip


def triton_type(dtype: str) -> str | None:
    """Triton's ``TYPE_*`` name for a trtdsl dtype, or None when Triton has none (fp8, fp4, int4, e8m0)."""
    return _FROM_TENSORRT.get(dtypes.info(dtype).trt_name)


_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


class TritonExportError(TrtdslError):
    """The plan cannot be served by Triton as it is; the message says why and what to do."""


class TritonCompatibilityWarning(UserWarning):
    """The repository was written, but Triton's TensorRT backend will not load the plan as it is."""


@dataclass(frozen=True)
class TritonModel:
    """What ``export_triton`` wrote."""

    directory: Path
    config: Path
    plan: Path
    max_batch_size: int
    text: str


def _quote(s: str) -> str:
    """A protobuf text-format string literal (C escapes; UTF-8 passes through)."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _dims(shape: Sequence[int | str]) -> str:
    return "[ " + ", ".join(str(-1 if isinstance(d, str) or d < 0 else int(d)) for d in shape) + " ]"


def _batch_dim(plan: Any) -> str | None:
    """The dim name every input leads with (outputs lead with -1 or it), or None."""
    firsts = {s.shape[0] if s.shape else None for s in plan.inputs.values()}
    if len(firsts) != 1:
        return None
    first = next(iter(firsts))
    if not isinstance(first, str):
        return None
    for s in plan.outputs.values():
        if not s.shape or (s.shape[0] != first and s.shape[0] != -1):
            return None
    return first


def triton_config(
    plan: Any, name: str, *, max_batch: int | None = None, instances: int = 1, kind: str = "KIND_GPU"
) -> tuple[str, int]:
    """The ``config.pbtxt`` text for ``plan`` and its ``max_batch_size`` (what :func:`export_triton` writes).

    Example::

        text, max_batch_size = triton_config(trtdsl.Plan.load("model.plan"), "model")
    """
    for title, specs in (("input", plan.inputs), ("output", plan.outputs)):
        for s in specs.values():
            try:
                trt_name = dtypes.info(s.dtype).trt_name
            except TrtdslError as e:
                raise TritonExportError(f"{title} {s.name!r} has dtype {s.dtype!r}, which trtdsl does not know") from e
            if triton_type(s.dtype) is None:
                raise TritonExportError(
                    f"{title} {s.name!r} has dtype {s.dtype}: Triton's model configuration has no "
                    f"{trt_name} data type (its DataType enum ends at FP64/STRING/BF16), so the "
                    "server cannot feed or return it. Keep narrow types inside the network: dequantize the "
                    "output (or take a float input and quantize it in the network) and rebuild."
                )
    if instances < 1:
        raise TritonExportError(f"instances must be at least 1, got {instances}")
    batch = _batch_dim(plan)
    largest = max((p.ranges[batch][2] for p in plan.profiles if batch in p.ranges), default=0) if batch else 0
    if max_batch is None:
        max_batch = largest
    elif max_batch < 0:
        raise TritonExportError(f"max_batch must be >= 0, got {max_batch}")
    elif max_batch > 0 and batch is None:
        raise TritonExportError(
            f"max_batch {max_batch} needs a dynamic batch dim that every input and output leads with; this plan's "
            f"inputs are {[f'{s.name} {s.shape}' for s in plan.inputs.values()]}. Use max_batch=0 (no batching)."
        )
    elif max_batch > largest:
        raise TritonExportError(
            f"max_batch {max_batch} is larger than the plan allows: dim {batch!r} goes up to {largest} in its "
            "largest profile. Rebuild with a wider range or export with a smaller max_batch."
        )
    lines = [f"name: {_quote(name)}", 'platform: "tensorrt_plan"', f"max_batch_size: {max_batch}"]
    for title, specs in (("input", plan.inputs), ("output", plan.outputs)):
        entries = []
        for s in specs.values():
            shape = s.shape[1:] if max_batch > 0 else s.shape
            entries.append(
                f"  {{\n    name: {_quote(s.name)}\n    data_type: {triton_type(s.dtype)}\n    dims: {_dims(shape)}\n  }}"
            )
        lines.append(f"{title} [\n" + ",\n".join(entries) + "\n]")
    profiles = ", ".join(_quote(str(i)) for i in range(len(plan.profiles)))
    lines.append(
        f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n    profile: [ {profiles} ]\n  }}\n]"
    )
    if max_batch > 0:
        # The batch dim is dynamic (a named dim), so Triton may combine requests up to max_batch_size.
        lines.append("dynamic_batching { }")
    return "\n".join(lines) + "\n", max_batch


def export_triton(
    plan: Any,
    repository: str | os.PathLike,
    *,
    name: str | None = None,
    max_batch: int | None = None,
    instances: int = 1,
    strict: bool = False,
    overwrite: bool = False,
) -> TritonModel:
    """Write ``repository/<name>/config.pbtxt`` and ``repository/<name>/1/model.plan``.

    ``max_batch`` defaults to the largest batch the plan's profiles allow (0 when
    the plan has no dynamic batch dim shared by all I/O). A TensorRT-RTX plan is
    written with a :class:`TritonCompatibilityWarning` (Triton runs full
    TensorRT: rebuild the network with the server's TensorRT version); with
    ``strict`` it is refused. An existing model directory is kept unless
    ``overwrite``.

    Example::

        plan = trtdsl.build(net)
        plan.export_triton("model_repository", name="digits", instances=2)
    """
    name = name or plan.network or "model"
    if not _NAME.match(name):
        raise TritonExportError(f"model name {name!r}: use letters, digits, '_', '-' and '.' (it is a directory name)")
    if plan.backend.startswith("tensorrt_rtx"):
        message = (
            f"plan was built with {plan.backend}: Triton's TensorRT backend runs full TensorRT, which cannot load "
            "a TensorRT-RTX plan. Rebuild the network with the TensorRT version of your Triton server "
            "(pip install 'trtdsl[trt]', same major.minor as the server) before serving it."
        )
        if strict:
            raise TritonExportError(message + " (refused: strict)")
        warnings.warn(message, TritonCompatibilityWarning, stacklevel=2)
    text, mbs = triton_config(plan, name, max_batch=max_batch, instances=instances)
    if Path(repository).exists() and not Path(repository).is_dir():
        raise TritonExportError(f"repository {str(repository)!r} is a file, not a folder")
    directory = Path(repository) / name
    config = directory / "config.pbtxt"
    if config.exists() and not overwrite:
        raise TritonExportError(f"{str(config)!r} already exists; pass overwrite=True (--force) to replace it")
    plan_path = directory / "1" / "model.plan"
    try:
        (directory / "1").mkdir(parents=True, exist_ok=True)
        plan_path.write_bytes(plan.engine)
        config.write_text(text)  # last: a config only exists beside a complete plan
    except OSError as e:
        raise TritonExportError(f"cannot write the model repository entry {str(directory)!r}: {e}") from e
    return TritonModel(directory, config, plan_path, mbs, text)


def cmd_export_triton(args: Any) -> int:
    """``trtdsl export triton model.plan --repository DIR ...``"""
    from .plan import Plan

    plan = Plan.load(args.plan)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TritonCompatibilityWarning)
        model = export_triton(
            plan,
            args.repository,
            name=args.name or Path(args.plan).stem,
            max_batch=args.max_batch,
            instances=args.instances,
            strict=args.strict,
            overwrite=args.force,
        )
    for w in caught:
        print(f"warning: {w.message}")
    print(model.text, end="")
    print(f"wrote {model.config} and {model.plan} (max_batch_size {model.max_batch_size})")
    return 0


def _add_export(p: Any) -> None:
    from .cli import number

    _count = number(int, "an int", 0)
    targets = p.add_subparsers(dest="target", required=True)
    t = targets.add_parser("triton", help="write a Triton Inference Server model repository entry")
    t.add_argument("plan", help="model.plan written by trtdsl (with its .json metadata)")
    t.add_argument("--repository", required=True, help="model repository directory")
    t.add_argument("--name", help="model name (default: the plan's file name)")
    t.add_argument(
        "--max-batch", type=_count, default=None, help="max_batch_size (default: the profiles' largest batch)"
    )
    t.add_argument("--instances", type=_count, default=1, help="instances of the model per GPU")
    t.add_argument("--strict", action="store_true", help="refuse plans Triton's TensorRT backend cannot load")
    t.add_argument("--force", action="store_true", help="replace an existing config.pbtxt")


def _register() -> None:
    from .cli import register

    register("export", "export a plan for a serving engine (export triton PLAN --repository DIR)", _add_export,
             cmd_export_triton)  # fmt: skip


_register()


__all__ = [
    "TritonCompatibilityWarning",
    "TritonExportError",
    "TritonModel",
    "export_triton",
    "triton_config",
    "triton_type",
]
