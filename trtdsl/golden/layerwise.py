"""``layerwise_diff``: the first layer at which two runs of a network part."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import dtypes
from .compare import _compare_one
from .report import OutputReport
from .tolerance import Tolerance, TolerancePolicy


# --------------------------------------------------------------- layerwise
@dataclass
class Divergence:
    """The first tensor, producers before readers, whose value differs beyond tolerance between two runs."""

    tensor: str
    layer_index: int  # -1 for a network input
    layer_name: str
    layer_type: str
    report: OutputReport
    compared: list[str]  # tensors compared before it, all within tolerance

    def __repr__(self) -> str:
        return (
            f"Divergence(tensor={self.tensor!r}, layer={self.layer_name!r}, type={self.layer_type!r}, "
            f"status={self.report.status!r}, after {len(self.compared)} matching tensors)"
        )

    def __str__(self) -> str:
        where = (
            "network input"
            if self.layer_index < 0
            else f"layer {self.layer_index} {self.layer_name!r} ({self.layer_type})"
        )
        return f"first divergence at {where}, tensor {self.tensor!r} after {len(self.compared)} matching tensors: {self.report.describe()}"


def layerwise_diff(
    network: Any,
    feeds: Mapping[str, Any],
    reference: Any,
    *,
    tolerance: TolerancePolicy = None,
    overrides: Mapping[str, Tolerance] | None = None,
    reference_feeds: Mapping[str, Any] | None = None,
    captured: Mapping[str, Any] | None = None,
) -> Divergence | None:
    """Find the first layer of ``network`` whose output diverges from ``reference``; None if none does.

    ``network`` (a ``trtdsl.Network``, ``INetworkDefinition`` or prepared
    ``Interpreter``) gives the layer order: producers first, otherwise network
    order. ``reference`` is another network, run on ``reference_feeds``
    (default: ``feeds``), or a dict of tensors
    captured earlier with ``trtdsl.reference.run(..., capture="all")``.
    ``captured`` passes ``network``'s own captures to skip running it.

    Tensors are matched by name; tensors present in only one run (the casts a
    precision policy inserts) are skipped, and dtypes are not compared. The
    tolerance of a tensor defaults to the precision of its TensorRT dtype in
    ``network``: comparing an fp16 policy against fp32 uses fp16 tolerances on
    the half-precision tensors.

    Example::

        fp32 = build(dtype="float32"); fp16 = build(dtype="float16")
        d = golden.layerwise_diff(fp16, feeds, fp32)
        print(d or "no divergence")  # first divergence at layer 7 'block1.softmax' (softmax) ...
    """
    from .. import reference as ref
    from ..reference.control import toposort

    interp = ref.prepare(network)
    ours = dict(captured) if captured is not None else ref.run(interp, feeds, capture="all")
    if isinstance(reference, Mapping):
        theirs = dict(reference)
    else:
        theirs = ref.run(reference, reference_feeds if reference_feeds is not None else feeds, capture="all")
    overrides = dict(overrides or {})
    # A tensor's default tolerance is that of the loosest precision on its path
    # from the inputs, so the float32 output cast that ends an fp16 network is
    # judged at fp16 tolerance, not flagged as the first divergence.
    precision: dict[str, str] = {}
    order: list[tuple[str, int, str, str]] = []
    for n, (_, dt) in interp.inputs.items():
        precision[n] = dt
        order.append((n, -1, n, "input"))
    for node in toposort(interp.nodes, cycles="append"):
        upstream = [precision.get(i, "float32") for i in node.inputs if i is not None]
        for t, dt in zip(node.outputs, node.out_dtypes, strict=True):
            precision[t] = _loosest([dt, *upstream]) if dtypes.is_float(dt) else dt
            order.append((t, node.index, node.name, node.type))
    compared: list[str] = []
    for tensor, index, lname, ltype in order:
        if tensor not in ours or tensor not in theirs:
            continue
        if tensor in overrides:
            tol = overrides[tensor]
        elif isinstance(tolerance, Tolerance):
            tol = tolerance
        elif tolerance is not None and dtypes.is_float(precision[tensor]):
            tol = Tolerance.for_precision(tolerance)
        else:
            tol = Tolerance.for_precision(precision[tensor])
        r = _compare_one(tensor, np.asarray(ours[tensor]), np.asarray(theirs[tensor]), tol, check_dtype=False)
        if not r.ok:
            return Divergence(tensor, index, lname, ltype, r, compared)
        compared.append(tensor)
    return None


_LOOSENESS = ("float32", "float16", "bfloat16", "fp8", "int8")


def _loosest(precisions: list[str]) -> str:
    """The precision with the loosest default tolerance; non-float, non-int8 types do not count."""
    ranked = [p for p in precisions if p in _LOOSENESS]
    return max(ranked, key=_LOOSENESS.index) if ranked else "float32"
