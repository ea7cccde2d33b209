"""ONNX's own node test cases, parsed by TensorRT's ONNX parser and run by the reference interpreter.

``onnx.backend.test.case.node.collect_testcases()`` builds about 1,900 one-node
models with inputs and expected outputs that the ONNX authors computed in NumPy:
golden data independent of TensorRT and of trtdsl. ``load`` serializes a case,
parses it with ``trtdsl.onnx.parse`` (TensorRT's ``OnnxParser``) and says why a
case is not applicable; ``run`` and ``mismatches`` run it and compare.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

import trtdsl.onnx
import trtdsl.reference
from trtdsl import _trt

# ONNX element types (TensorProto numbering) with no TensorRT tensor type and no conversion in
# the parser: the reason given when the parser refuses a case with an input or output of one.
_NO_TRT_TYPE = {
    4: "uint16",
    5: "int16",
    8: "string",
    12: "uint32",
    13: "uint64",
    14: "complex64",
    15: "complex128",
    18: "float8e4m3fnuz",
    19: "float8e5m2",
    20: "float8e5m2fnuz",
    21: "uint4",
    24: "float8e8m0",
    25: "uint2",
    26: "int2",
}
_DOUBLE = 11

# The only dtype change the comparison accepts, (ONNX's expected dtype, the network output's
# dtype), compared by value: the parser casts DOUBLE down to FLOAT (onnx-tensorrt
# docs/operators.md: "TensorRT will attempt to ... cast DOUBLE down to FLOAT"), inputs included.
# (It keeps INT64 as INT64 in these cases, so no integer narrowing is accepted.)
CONVERTIBLE = {(np.dtype(np.float64), np.dtype(np.float32))}

# How the cases of this run came out ("frozen" also counts the applicable cases that _freeze made
# parseable): "passed", "expected failure", "failed", "refused" (by trtdsl, for a misread of the
# parser's that its unchecked network shows), and the kinds of
# cases that are not applicable: "not a tensor" (a sequence or optional input or output),
# "type" and "parser" (TensorRT's parser refuses the model; "type" when an input or output has
# a type TensorRT lacks) and "builder" (TensorRT's builder refuses the network the parser made).
TALLY: Counter = Counter()
NOT_APPLICABLE = {
    "not a tensor": "hold sequences or optionals",
    "type": "have types TensorRT lacks",
    "parser": "are refused by TensorRT's parser",
    "builder": "are refused by its builder",
}


def summary() -> str:
    """The tally in one line (empty when no case ran)."""
    if not TALLY:
        return ""
    t = TALLY
    applicable = t["passed"] + t["expected failure"] + t["refused"] + t["failed"]
    na = ", ".join(f"{t[k]} {words}" for k, words in NOT_APPLICABLE.items())
    return (
        f"ONNX node conformance: {applicable + sum(t[k] for k in NOT_APPLICABLE)} cases; {applicable} applicable "
        f"({t['frozen']} with small inputs given as initializers): {t['passed']} passed, "
        f"{t['expected failure']} expected failures, {t['refused']} refused by trtdsl (misread by the parser), "
        f"{t['failed']} failed; "
        f"{sum(t[k] for k in NOT_APPLICABLE)} not applicable ({na})"
    )


class NotApplicable(Exception):
    """The case cannot be a TensorRT network; the message says why, in words shared by like cases."""

    def __init__(self, reason: str, kind: str):
        super().__init__(reason)
        self.kind = kind  # a key of NOT_APPLICABLE


class RefusedByTrtdsl(Exception):
    """``trtdsl.onnx.parse`` refused the model before TensorRT's parser saw it (not TensorRT's verdict)."""


@dataclass
class Loaded:
    """A parsed case: the network, the feeds it takes, and the expected outputs by output name."""

    network: Any
    feeds: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    frozen: tuple[str, ...] = ()  # inputs given as initializers for the parser (see _freeze)


def collect() -> dict[str, Any]:
    """name -> TestCase for every ONNX node test case (about 10 s: ONNX computes them in NumPy)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return {c.name: c for c in collect_testcases()}


def load(case: Any, *, checked: bool = True) -> Loaded:
    """Parse ``case`` with TensorRT's parser; raise ``NotApplicable`` when TensorRT cannot hold it.

    ``checked=False``: without trtdsl's own checks (``trtdsl.onnxcheck``), to show what the parser
    alone builds of a case they refuse.
    """
    (inputs, outputs), *more = case.data_sets
    if more:
        raise AssertionError(f"{case.name}: {1 + len(more)} data sets; the harness runs one")
    graph = case.model.graph
    for v in [*graph.input, *graph.output]:
        which = v.type.WhichOneof("value")
        if which != "tensor_type":  # a sequence, optional or map: TensorRT has tensors only
            raise NotApplicable(
                f"an input or output is not a tensor but a {which.removesuffix('_type')}", "not a tensor"
            )
    given = dict(zip([v.name for v in graph.input], map(_array, inputs), strict=True))
    frozen: tuple[str, ...] = ()
    try:
        net = _parse(case.model, given, case.name, checked)
    except trtdsl.onnx.OnnxParseError as first:
        error = first
        model, frozen = _freeze(case.model, given)
        net = None
        if frozen:
            try:
                net = _parse(model, given, case.name, checked)
            except trtdsl.onnx.OnnxParseError as again:
                error = again  # what stops it once the small inputs are constants
        if net is None:
            lacking = _type_problem(graph)
            if lacking:
                raise NotApplicable(lacking, "type") from None
            ops = "/".join(sorted({n.op_type for n in graph.node}))
            raise NotApplicable(f"TensorRT's parser refuses {ops}: {gist(str(error))}", "parser") from None
        graph = model.graph
        given = {n: a for n, a in given.items() if n not in frozen}
    d = net.trt
    names = [d.get_input(i).name for i in range(d.num_inputs)]
    if set(names) <= set(given):
        pairs = list(zip(names, names, strict=True))
    elif len(names) == len(given):
        # The parser renames a graph input that only feeds a loop to the body's name for it
        # (test_loop11: 'cond' becomes 'cond_in'); it keeps the inputs' order.
        pairs = list(zip(names, given, strict=True))
    else:
        raise AssertionError(f"{case.name}: network inputs {names}, ONNX inputs {list(given)}")
    doubles = {v.name for v in graph.input if v.type.tensor_type.elem_type == _DOUBLE}
    feeds = {}
    for i, (n, onnx_name) in enumerate(pairs):
        feeds[n] = given[onnx_name]
        if onnx_name in doubles and d.get_input(i).dtype == _trt.load().float32:
            feeds[n] = feeds[n].astype(np.float32)  # the parser's DOUBLE -> FLOAT input (see CONVERTIBLE)
    outs = [d.get_output(i).name for i in range(d.num_outputs)]
    expected = dict(zip([v.name for v in graph.output], map(_array, outputs), strict=True))
    if sorted(outs) != sorted(expected):
        raise AssertionError(f"{case.name}: network outputs {outs}, ONNX outputs {list(expected)}")
    return Loaded(net, feeds, expected, frozen)


def _parse(model: Any, given: dict[str, np.ndarray], name: str, checked: bool = True) -> Any:
    """``trtdsl.onnx.parse`` of ``model``; ``RefusedByTrtdsl`` when trtdsl's own checks refuse it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(model.SerializeToString())
        try:
            if not checked:
                with mock.patch.object(trtdsl.onnx.onnxcheck, "check", lambda path: []):
                    return trtdsl.onnx.parse(path, dims=_dims(model.graph, given), name=name, isolate=False)
            return trtdsl.onnx.parse(path, dims=_dims(model.graph, given), name=name)
        except trtdsl.onnx.OnnxParseError as e:
            if not str(e).startswith("TensorRT's ONNX parser"):
                raise RefusedByTrtdsl(str(e)) from None  # trtdsl refused it before the parser
            raise


def _freeze(model: Any, given: dict[str, np.ndarray]) -> tuple[Any, tuple[str, ...]]:
    """``model`` with every input but the first that is a scalar or a vector (axes, pads, sizes,
    scales, K, bounds) given as an initializer of the case's own value, and the names frozen.

    Why: TensorRT's parser needs many such inputs as build-time constants ("Axis input must
    resolve to a build-time constant"); an initializer of the same value means the same, so the
    case still tests the interpreter. ml_dtypes values stay inputs: TensorRT's Python API cannot
    read back a bfloat16 or fp8 constant.
    """
    from onnx import numpy_helper

    frozen = model.__class__()
    frozen.CopyFrom(model)
    graph = frozen.graph
    names = tuple(v.name for v in graph.input[1:] if given[v.name].ndim <= 1 and given[v.name].dtype.kind in "biuf")
    keep = [v for v in graph.input if v.name not in names]
    del graph.input[:]
    graph.input.extend(keep)
    graph.initializer.extend(numpy_helper.from_array(given[n], n) for n in names)
    return frozen, names


def _type_problem(graph: Any) -> str | None:
    """Why no TensorRT network can have the graph's tensor types, if that is so."""
    for kind, values in (("input", graph.input), ("output", graph.output)):
        for v in values:
            elem = v.type.tensor_type.elem_type
            if elem in _NO_TRT_TYPE:
                return f"an {kind} has ONNX type {_NO_TRT_TYPE[elem]}, which TensorRT lacks"
    return None


def gist(message: str) -> str:
    """A TensorRT complaint without file paths, names or numbers, so that like cases share it."""
    text = message.split("': ", 1)[-1]
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\S*/\S*|\d+", "_", text.splitlines()[0] if text else text)
    return text[:120].strip() or "no message"


def _array(value: Any) -> np.ndarray:
    """A case's value as NumPy: cases of the narrow types hold TensorProtos (ml_dtypes arrays here)."""
    if isinstance(value, (np.ndarray, np.generic)):
        return np.asarray(value)
    from onnx import numpy_helper

    return numpy_helper.to_array(value)


def _dims(graph: Any, given: dict[str, np.ndarray]) -> dict[str, tuple[int, int, int]]:
    """A fixed range for every named dynamic dim, taken from the case's own inputs."""
    dims: dict[str, tuple[int, int, int]] = {}
    for v in graph.input:
        for axis, d in enumerate(v.type.tensor_type.shape.dim):
            if d.HasField("dim_param") and v.name in given:
                n = int(given[v.name].shape[axis])
                dims[d.dim_param] = (n, n, n)
    return dims


def run(loaded: Loaded, fast: bool) -> dict[str, np.ndarray]:
    with np.errstate(all="ignore"):  # the cases include inf and NaN inputs on purpose
        return trtdsl.reference.Interpreter(loaded.network, fast=fast).run(loaded.feeds)


def builder_refusal(loaded: Loaded) -> str | None:
    """What TensorRT's builder says when it refuses the network, or None when it builds it."""
    d = loaded.network.trt
    logger = _trt.logger()
    first = len(logger.errors)
    plan = d.builder.build_serialized_network(d, d.builder.create_builder_config())
    if plan is not None:
        return None
    return (logger.errors[first:] or ["no message"])[-1]


def mismatches(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray], rtol: float, atol: float) -> list[str]:
    """Each output that differs from ONNX's expected value, in words (empty when all agree)."""
    problems = []
    for name, want in expected.items():
        got = np.asarray(actual[name])
        if got.shape != want.shape:
            problems.append(f"{name}: shape {got.shape}, expected {want.shape}")
            continue
        if got.dtype != want.dtype and (want.dtype, got.dtype) not in CONVERTIBLE:
            problems.append(f"{name}: dtype {got.dtype}, expected {want.dtype}")
            continue
        try:
            if want.dtype.kind in "iub":
                np.testing.assert_array_equal(got.astype(want.dtype), want)
            else:  # float, float16 and the ml_dtypes narrow floats (kind 'V'), compared in float64
                np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)
        except AssertionError as e:
            problems.append(f"{name}: {str(e).strip()}")
    return problems
