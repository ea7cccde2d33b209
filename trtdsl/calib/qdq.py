"""Where Q/DQ go (TensorRT developer guide, "Q/DQ layer-placement recommendations") and writing them into a network.

The rules, as ``plan`` applies them:

1. Every input of a convolution, deconvolution or matrix multiply is quantized:
   activations per tensor; weights (constants, or a convolution's ``trt.Weights``,
   which ``rewrite.weights_to_input`` turns into a constant input) per output channel:
   axis 0 of a KCRS kernel, axis 1 of a deconvolution's, the output-feature axis of a
   matmul constant.
2. Outputs of those layers are not quantized.
3. A residual add (an elementwise SUM of two activations, one of which comes straight
   from a convolution, through BatchNorm-style scale layers or constant bias adds) has
   its *other* input quantized, so TensorRT can fuse the add into that convolution. When
   both inputs come from convolutions, the first one that nothing else reads is the one
   fused and the other is quantized.
4. An activation to be quantized that a concatenation produces gets its Q/DQ on every
   input of that concatenation instead, all with the concatenation's one scale.
5. Nothing else: no Q/DQ on network outputs, around pooling, activations (ReLU ...),
   shuffles, reshapes or slices.

A tensor read by several quantized inputs gets one Q/DQ pair that all of them read;
readers that are not quantized inputs keep reading the float tensor.
"""

from __future__ import annotations

import fnmatch
import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import ops, rewrite
from ..errors import CalibrationError, CalibrationWarning, did_you_mean
from ..layerinfo import downcast
from ..network import Network
from ..tensor import Tensor

log = logging.getLogger("trtdsl.calib")

_WEIGHTED = ("CONVOLUTION", "DECONVOLUTION")
_FLOAT_TYPES = ("FLOAT", "HALF", "BF16")


@dataclass
class ActivationSite:
    """One per-tensor activation Q/DQ: ``tensor`` is calibrated; ``uses`` read its dequantized value."""

    tensor: str
    uses: list[tuple[Any, int]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    concat: Any = None  # the concatenation whose inputs carry the Q/DQ instead (rule 4)

    @property
    def readers(self) -> list[str]:
        return [layer.name for layer, _ in self.uses]


@dataclass
class WeightSite:
    """One weight Q/DQ: input ``index`` of ``layer``, per channel along ``axis`` (None: per tensor)."""

    layer: Any
    index: int
    axis: int | None
    held: bool  # the layer holds the kernel as trt.Weights (it moves to a constant input)


@dataclass
class Placement:
    """Where Q/DQ go in a network: activation sites (calibrated) and weight sites (ranges from the weights)."""

    activations: list[ActivationSite]
    weights: list[WeightSite]
    excluded: list[str]

    @property
    def tensors(self) -> list[str]:
        """The activation tensors that need a range, in network order."""
        return [s.tensor for s in self.activations]


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or name.startswith(p + ".") for p in patterns)


def _check_exclude(names: list[str], patterns: Sequence[str]) -> None:
    for p in patterns:
        if not isinstance(p, str) or not p:
            raise CalibrationError(f"exclude patterns must be non-empty strings, got {p!r}")
        if any(fnmatch.fnmatchcase(n, p) or n.startswith(p + ".") for n in names):
            continue
        scopes = {n.rsplit(".", k)[0] for n in names for k in range(1, n.count(".") + 1)}
        if any(c in p for c in "*?["):
            stem = p.split("*")[0].split("?")[0].split("[")[0].rstrip(".")  # 'classifer.*' -> 'classifer'
            hint = did_you_mean(stem, sorted(scopes) + names) if stem else ""
            warnings.warn(f"exclude pattern {p!r} matches no layer.{hint}", CalibrationWarning, stacklevel=3)
        else:
            raise CalibrationError(
                f"exclude names no layer {p!r} ({len(names)} layers; a name excludes that layer and "
                f"everything under its scope; globs like 'head.*' are allowed).{did_you_mean(p, sorted(scopes) + names)}"
            )


def plan(net: Network, exclude: str | Iterable[str] = ()) -> Placement:
    """Where the rules put Q/DQ in ``net``, leaving out layers matched by ``exclude`` (names or globs).

    Example::

        placement = plan(net, exclude=["classifier.*"])
        print(placement.tensors)
    """
    patterns = [exclude] if isinstance(exclude, str) else list(exclude)
    layers = [downcast(net.trt.get_layer(i)) for i in range(net.trt.num_layers)]
    _check_exclude([layer.name for layer in layers], patterns)
    producer = {layer.get_output(j).name: layer for layer in layers for j in range(layer.num_outputs)}
    readers: dict[str, int] = {}
    for layer in layers:
        for j in range(layer.num_inputs):
            t = layer.get_input(j)
            if t is not None:
                readers[t.name] = readers.get(t.name, 0) + 1
    sites: dict[str, ActivationSite] = {}
    weights: list[WeightSite] = []
    excluded: list[str] = []

    def dequantized(t: Any) -> bool:  # already read through a Dequantize (a second quantize(), or by hand)
        p = producer.get(t.name) if t is not None else None
        return p is not None and p.type.name == "DEQUANTIZE"

    def want(t: Any, layer: Any, j: int, reason: str) -> None:
        if t.dtype.name not in _FLOAT_TYPES or dequantized(t):
            return
        site = sites.setdefault(t.name, ActivationSite(t.name))
        site.uses.append((layer, j))
        site.reasons.append(reason)

    for layer in layers:
        kind = layer.type.name
        if kind not in (*_WEIGHTED, "MATRIX_MULTIPLY", "ELEMENTWISE"):
            continue
        if kind == "ELEMENTWISE" and not _is_residual_add(layer, producer):
            continue
        out = layer.get_output(0)
        if not readers.get(out.name) and not out.is_network_output:
            continue  # dead: nothing reads it (a convolution rewrite.weights_to_input replaced)
        if _matches(layer.name, patterns):
            excluded.append(layer.name)
            continue
        if kind in _WEIGHTED:
            want(layer.get_input(0), layer, 0, f"{kind.lower()} input")
            kt = layer.get_input(1) if layer.num_inputs > 1 else None
            axis = 0 if kind == "CONVOLUTION" else 1
            if kt is None:
                weights.append(WeightSite(layer, 1, axis, held=True))
            elif dequantized(kt):
                pass
            elif _constant_of(kt, producer) is not None:
                weights.append(WeightSite(layer, 1, axis, held=False))
            else:
                want(kt, layer, 1, f"{kind.lower()} kernel input")
        elif kind == "MATRIX_MULTIPLY":
            for j in (0, 1):
                t = layer.get_input(j)
                if dequantized(t):
                    continue
                if _constant_of(t, producer) is not None:
                    weights.append(WeightSite(layer, j, _matmul_axis(layer, j, len(t.shape)), held=False))
                else:
                    want(t, layer, j, "matmul input")
        else:
            fused = _fused_input(layer, producer, readers)
            for j in (0, 1):
                if j != fused:
                    want(layer.get_input(j), layer, j, "residual add input")
    for site in sites.values():
        p = producer.get(site.tensor)
        if p is not None and p.type.name == "CONCATENATION":
            ins = [p.get_input(j) for j in range(p.num_inputs)]
            if all(t is not None and t.dtype.name in _FLOAT_TYPES for t in ins):
                site.concat = p
    return Placement(list(sites.values()), weights, excluded)


def _constant_of(t: Any, producer: Mapping[str, Any]) -> Any:
    """The constant layer behind ``t`` (directly or through a cast), or None."""
    p = producer.get(t.name) if t is not None else None
    if p is not None and p.type.name == "CAST":
        p = producer.get(p.get_input(0).name)
    return p if p is not None and p.type.name == "CONSTANT" else None


def _matmul_axis(layer: Any, j: int, rank: int) -> int | None:
    """The output-channel axis of matmul operand ``j`` (rows of A, columns of B), None for a vector."""
    op = layer.op0 if j == 0 else layer.op1
    name = op.name
    if name == "VECTOR" or rank < 2:
        return None
    transposed = name == "TRANSPOSE"
    if j == 1:
        return rank - 2 if transposed else rank - 1  # B is (..., K, N), or (..., N, K) transposed
    return rank - 1 if transposed else rank - 2  # A is (..., M, K), or (..., K, M) transposed


def _is_residual_add(layer: Any, producer: Mapping[str, Any]) -> bool:
    if layer.op.name != "SUM" or layer.num_inputs != 2:
        return False
    a, b = layer.get_input(0), layer.get_input(1)
    if a.dtype.name not in _FLOAT_TYPES or tuple(a.shape) != tuple(b.shape):
        return False
    if _constant_of(a, producer) is not None or _constant_of(b, producer) is not None:
        return False  # a bias add
    return any(_conv_chain(t, producer) is not None for t in (a, b))


def _conv_chain(t: Any, producer: Mapping[str, Any]) -> list[str] | None:
    """The tensors from a convolution to ``t`` (through scale layers and constant bias/scale ops), or None."""
    chain = [t.name]
    p = producer.get(t.name)
    while p is not None:
        kind = p.type.name
        if kind in _WEIGHTED:
            return chain
        if kind == "SCALE":
            nxt = p.get_input(0)
        elif kind == "ELEMENTWISE" and p.op.name in ("SUM", "PROD"):
            const = [_constant_of(p.get_input(j), producer) is not None for j in (0, 1)]
            if const.count(True) != 1:
                return None
            nxt = p.get_input(const.index(False))
        else:
            return None
        chain.append(nxt.name)
        p = producer.get(nxt.name)
    return None


def _fused_input(layer: Any, producer: Mapping[str, Any], readers: Mapping[str, int]) -> int:
    """Which input of a residual add TensorRT fuses the add into (the other one is quantized)."""
    chains = [_conv_chain(layer.get_input(j), producer) for j in (0, 1)]
    for j, chain in enumerate(chains):
        if chain is not None and all(readers.get(n, 0) == 1 for n in chain):
            return j
    return next(j for j, chain in enumerate(chains) if chain is not None)


# ---------------------------------------------------------------- writing Q/DQ
@dataclass
class Row:
    """One line of the quantization report."""

    tensor: str
    kind: str  # "activation" or "weight"
    amax: float
    scale: float
    algorithm: str
    dtype: str
    readers: list[str]
    channels: int = 1  # >1: per channel; amax/scale are the largest
    status: str = "quantized"


def _qmax(dtype: str) -> float:
    from .algorithms import QMAX

    return QMAX[dtype]


def _base(name: str) -> str:
    return name.removesuffix(".out")


def apply(
    net: Network,
    placement: Placement,
    amax: Mapping[str, float],
    *,
    dtype: str = "int8",
    per_channel_weights: bool = True,
    algorithm: str = "",
    algorithms: Mapping[str, str] | None = None,
) -> list[Row]:
    """Write Q/DQ where ``placement`` says, with activation ranges ``amax``; returns the report rows.

    A tensor whose range is missing, zero or not finite stays in float (with a warning and
    a row saying why). Weight ranges are ``max |W|`` per output channel (or per tensor).
    """
    qmax = _qmax(dtype)
    rows: list[Row] = []
    algorithms = algorithms or {}
    for site in placement.activations:
        a = amax.get(site.tensor)
        algo = algorithms.get(site.tensor, algorithm)
        if a is None or not np.isfinite(a) or a <= 0:
            why = "no range" if a is None else f"range {a} is not positive and finite"
            log.warning("tensor %r stays in float: %s", site.tensor, why)
            rows.append(Row(site.tensor, "activation", float("nan") if a is None else float(a), float("nan"), algo,
                            dtype, site.readers, status=f"skipped: {why}"))  # fmt: skip
            continue
        a = float(a)
        if site.concat is not None:
            concat = site.concat
            for j in range(concat.num_inputs):
                t = Tensor(concat.get_input(j), net)
                fq = ops.fake_quantize(t, amax=a, dtype=dtype, name=f"{_base(t.name)}.quant")
                rewrite.reroute(net, [(concat, j)], fq)
            readers = [f"{concat.name} (inputs, shared scale)"]
        else:
            reader, j = site.uses[0]
            t = Tensor(reader.get_input(j), net)
            fq = ops.fake_quantize(t, amax=a, dtype=dtype, name=f"{_base(site.tensor)}.quant")
            rewrite.reroute(net, site.uses, fq)
            readers = site.readers
        rows.append(Row(site.tensor, "activation", a, float(np.float32(a / qmax)), algo, dtype, readers))
    for ws in placement.weights:
        rows.append(_quantize_weight(net, ws, dtype, per_channel_weights, qmax))
    return rows


def _quantize_weight(net: Network, ws: WeightSite, dtype: str, per_channel: bool, qmax: float) -> Row:
    layer = ws.layer
    if ws.held:
        layer, kt = rewrite.weights_to_input(net, layer)
    else:
        kt = Tensor(layer.get_input(ws.index), net)
    src = kt
    p = net.producer(kt)
    if p is not None and downcast(p).type.name == "CAST":
        p = net.producer(downcast(p).get_input(0).name)
    array = _constant_array(net, downcast(p))
    axis = ws.axis if per_channel else None
    if axis is not None:
        array = array.reshape(tuple(kt.shape)) if array.size == int(np.prod(kt.shape)) else array
        reduce = tuple(i for i in range(array.ndim) if i != axis)
        amax = np.abs(array).max(axis=reduce) if reduce else np.abs(array)
        # An all-zero channel quantizes to zero with any scale; 1.0 keeps the scale valid.
        amax = np.where(amax > 0, amax, 1.0)
    else:
        amax = float(np.abs(array).max()) or 1.0
    fq = ops.fake_quantize(src, amax=amax, axis=axis, dtype=dtype, name=f"{_base(kt.name)}.quant")
    rewrite.reroute(net, [(layer, ws.index)], fq)
    top = float(np.max(amax))
    return Row(_base(kt.name), "weight", top, float(np.float32(top / qmax)), "max", dtype, [layer.name],
               channels=int(np.size(amax)) if axis is not None else 1)  # fmt: skip


def _constant_array(net: Network, layer: Any) -> np.ndarray:
    """The values of a constant layer as float64, from the array the Network kept when it has one.

    TensorRT's Python API cannot read typed narrow weights (bfloat16 ...) back, so the
    Network's own copy (``narrow_constants``, ``weights``) comes first.
    """
    shape = tuple(layer.shape)
    for store in (getattr(net, "narrow_constants", None), net.weights):
        if store and layer.name in store:
            return np.asarray(store[layer.name]).astype(np.float64).reshape(shape)
    return np.asarray(layer.weights, dtype=np.float64).reshape(shape)
