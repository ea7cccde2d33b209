"""Checks of an ONNX file that TensorRT's parser does not make, before it sees the file.

TensorRT's ONNX parser (C++) trusts the protobuf it reads. Measured on
tensorrt_rtx 1.7 (tests/test_onnxcheck.py), these inputs crash it with
SIGSEGV, hang it, make it read a file outside the model's folder, or make it
build a network other than the file's:

- a node with no outputs (any op: ``Add``, ``Conv``, ``If``, ``Loop``);
- a ``Loop`` or ``Scan`` whose body graph is unset, or has fewer inputs or
  outputs than the node passes it; a ``Scan`` with ``num_scan_inputs`` 0;
- an op input the parser reads without checking its shape (``SHAPED_INPUTS``): a ``Loop``
  trip count or ``TopK`` K with more than one element, ``GatherND`` indices or a
  ``ConstantOfShape`` shape of rank 0; a ``Clip`` with a 4th input (``ARITY``);
- an external-data location that is a link leaving the model's folder (read),
  or a FIFO (the parser blocks in ``open`` forever);
- an external-data ``offset``/``length`` that is not a number (read as 0);
- an input dim or an int attribute past int32 (``2**32 + 1`` pads become 1,
  a ``2**40`` batch becomes 0: the parser narrows them silently);
- a name that is not UTF-8 (the bindings raise ``UnicodeDecodeError`` later);
- a binary op given one or three inputs (parsed without a word);
- a graph output listed twice: the parser logs "already set as network-level
  output" and returns success with one output fewer than the model declares;
- a ``GroupNormalization`` with ``num_groups`` 1 over more than one channel: the parser
  builds the same normalization layer as for ``InstanceNormalization`` (statistics per
  channel, where ONNX takes them over all channels together; torch's exporter writes
  this node for ``nn.GroupNorm(1, C)`` from opset 21);
- attributes or inputs the parser reads otherwise than ONNX (``misread``): a ``Trilu``
  without ``upper`` (the importer's default is 0, ONNX's 1: tril for triu), ``SpaceToDepth``
  with ``mode="CRD"`` (always built as DCR), an RNN/GRU/LSTM with ``layout=1`` (read as
  ``[seq, batch, ...]``); each ran off ONNX's own node tests
  (tests/reference/test_onnx_conformance.py);
- a singular message written twice (two graphs, a value's two shapes, two ``t``/``g`` of
  an attribute) or two attributes of one name: protobuf merges the copies, so the first
  graph of two joined models reached the parser unchecked (and crashed it);
- a node of another domain named like an ONNX op (``STANDARD_OPS``): the parser
  picks importers by op type alone, so ``custom::Relu`` and a call of a local
  function ``local::Relu`` became ONNX Relu (the function's body unread). Op types
  of their own (plugins: ``trt.plugins::MyPlugin_TRT``; ``ai.onnx.ml`` ops; local
  functions) pass, and so do the few that mean the ONNX op (``SAME_AS_ONNX``:
  ONNX Runtime's ``com.microsoft`` QuantizeLinear, DequantizeLinear and Gelu).

This module walks the protobuf wire format in pure Python (``trtdsl.onnxwire``;
protobuf and the ``onnx`` package are not dependencies), reading only the fields those checks
need: weight bytes are skipped by their length, never read, so the walk costs
about 15 ms for a 100 MB ResNet-50. :func:`check` raises :class:`OnnxParseError`
naming the graph, node or tensor, what was expected and what the file holds,
and returns what only a parse can tell (one of those inputs computed by the graph,
of unknown shape), for ``trtdsl.onnx.parse`` to parse in a child process first.
"""

from __future__ import annotations

import mmap
import os
import stat
from pathlib import Path

from .dtypes import info
from .errors import OnnxParseError
from .onnxops import SAME_AS_ONNX, STANDARD_OPS
from .onnxwire import Malformed, Reader, read_ints, spans

INT32 = info("int32").range  # TensorRT's parser narrows int64 dims and attributes to int32
MAX_GRAPH_DEPTH = 32  # subgraphs (If in Loop in If ...); TensorRT's protobuf stops near 30 levels anyway
# (op, attribute) pairs whose int64 values TensorRT reads as int64: "to the end" is INT64_MAX there.
INT64_ATTRIBUTES = {("Slice", "starts"), ("Slice", "ends"), ("Shape", "start"), ("Shape", "end"),
                    ("Constant", "value_int"), ("Constant", "value_ints")}  # fmt: skip
SUBGRAPHS = {"If": ("then_branch", "else_branch"), "Loop": ("body",), "Scan": ("body",)}
# Ops with an attribute or input that TensorRT's parser reads otherwise than ONNX (_Walk.misread).
_MISREAD = frozenset(("Trilu", "SpaceToDepth", "RNN", "GRU", "LSTM"))
# (op, input index) -> (what it is, a test of its (rank, elements; None when symbolic), what the test
# expects). TensorRT's parser reads these inputs without checking their shape and crashed (SIGSEGV)
# where the test fails; where the graph computes the input, the file is parsed in a child first.
SHAPED_INPUTS = {
    ("Loop", 0): ("the trip count M", lambda rank, n: None if n is None else n == 1, "a scalar"),
    ("TopK", 1): ("K", lambda rank, n: None if n is None else n == 1, "one value"),
    ("GatherND", 1): ("the indices", lambda rank, n: rank >= 1, "rank 1 or more"),
    ("ConstantOfShape", 0): ("the shape", lambda rank, n: rank >= 1, "rank 1"),
}
# (min, max) inputs of ops where TensorRT's parser does not count them: Clip with a 4th input crashed
# it (SIGSEGV); a binary op given one input (or three) was parsed without a word.
ARITY = {"Clip": (1, 3), **dict.fromkeys(("Add", "Sub", "Mul", "Div", "Pow", "Mod", "PRelu", "BitShift", "Equal",
         "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Xor"), (2, 2))}  # fmt: skip
# Lower bounds on the rank of an op's output, so that "rank 1 or more" above needs no child parse
# for the usual producers of shapes (Shape -> Concat -> Cast -> ConstantOfShape).
_RANK_ONE = {"Shape": 1, "Range": 1, "NonZero": 2, "Flatten": 2, "Concat": 1, "Unsqueeze": 1, "Split": 1, "Slice": 1,
             "TopK": 1, "Compress": 1, "Tile": 1}  # fmt: skip
_RANK_OF_INPUTS = {"Cast", "Identity", "Abs", "Neg", "Relu", "Floor", "Ceil", "Sqrt", "Exp", "Log", "Sigmoid", "Tanh",
                   "Not", "Sign", "Clip", "Transpose", "Add", "Sub", "Mul", "Div", "Max", "Min", "Where", "Equal",
                   "Greater", "Less", "And", "Or", "Mod", "Pow", "Expand"}  # fmt: skip
_GRAPH, _GRAPHS = 5, 10  # AttributeProto.AttributeType
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
# The field numbers read of each message (onnx.proto3); the others are skipped, not stored.
_MODEL, _OPSET, _FUNCTION = frozenset({7, 8, 25}), frozenset({1, 2}), frozenset({1, 7, 10})
_GRAPH_FIELDS, _PAIR = frozenset({1, 2, 5, 11, 12, 13, 15}), frozenset({1, 2})
_ONE, _TWO = frozenset({1}), frozenset({2})
_NODE, _ATTRIBUTE = frozenset({1, 2, 3, 4, 5, 7}), frozenset({1, 3, 4, 5, 6, 8, 10, 11, 20})
_TENSOR = frozenset({1, 8, 13, 14})


class _Walk(Reader):
    def __init__(self, buf, path: Path):
        super().__init__(buf, path)
        self.external: list[tuple[str, dict[str, str]]] = []  # (what, external_data entries)
        self.shapes: dict[str, tuple[int, int | None]] = {}  # (rank, elements) where the file states them
        self.ranks: dict[str, int] = {}  # lower bounds on the rank of tensors that nodes compute
        self.unchecked: list[str] = []  # what only a parse in a child process can check
        self.opset = 1  # of the default domain: Scan changed its inputs in opset 9
        self.functions: set[tuple[str, str]] = set()  # the model's local functions: (domain, name)

    def model(self) -> None:
        fields = self.message((0, len(self.buf)), _MODEL)
        for ident in spans(fields, 8):  # OperatorSetIdProto: domain (1), version (2)
            f = self.message(ident, _OPSET)
            if (self.texts(f, 1, "an opset domain") or [""])[-1] in ("", "ai.onnx"):
                self.opset = max([*read_ints(self.buf, f, 2), 1])
        functions = []
        for fn in spans(fields, 25):  # FunctionProto: name (1), node (7), domain (10)
            f = self.message(fn, _FUNCTION)
            name = (self.texts(f, 1, "a function's name") or ["?"])[-1]
            self.functions.add(((self.texts(f, 10, "the domain of function {!r}", name) or [""])[-1], name))
            functions.append((name, f))
        for g in self.single(fields, 7, "the model's graph"):
            self.graph(g, "the main graph", 0)
        for name, f in functions:
            for i, node in enumerate(spans(f, 7)):
                self.node(node, f"function {name!r}", i, 1)

    def graph(self, span: tuple[int, int], where: str, depth: int) -> tuple[int, int]:
        """Check one graph; its (input count, output count)."""
        if depth > MAX_GRAPH_DEPTH:
            raise self.fail(f"subgraphs nest more than {MAX_GRAPH_DEPTH} levels deep ({where})")
        f = self.message(span, _GRAPH_FIELDS)
        name = (self.texts(f, 2, "the name of {}", where) or [""])[-1]
        where = f"graph {name!r}" if name else where
        for t in spans(f, 5):
            self.tensor(t, "initializer", known=True)
        for sparse in spans(f, 15):  # SparseTensorProto: values (1) and indices (2)
            pair = self.message(sparse, _PAIR)
            for t in (t for n in (1, 2) for t in self.single(pair, n, f"a sparse initializer of {where}")):
                self.tensor(t, "sparse initializer")
        outputs: dict[str, int] = {}
        for n in (11, 12, 13):
            for i, v in enumerate(spans(f, n)):
                value = self.value_info(v, where, check_dims=n == 11)
                if n == 12 and depth == 0:  # a subgraph's outputs are its node's: parsed as listed
                    if value in outputs:
                        raise self.fail(
                            f"{where} lists output {value!r} twice (outputs {outputs[value]} and {i}); "
                            f"TensorRT's parser would mark it once and give one output fewer than the "
                            f"{len(spans(f, 12))} the model declares. Add an Identity for the second use"
                        )
                    outputs[value] = i
        for i, node in enumerate(spans(f, 1)):
            self.node(node, where, i, depth)
        return len(spans(f, 11)), len(spans(f, 12))

    def value_info(self, span: tuple[int, int], where: str, *, check_dims: bool) -> str:
        """Check one ValueInfoProto; its name."""
        f = self.message(span, _PAIR)
        name = (self.texts(f, 1, "a value name in {}", where) or [""])[-1]
        # TypeProto.tensor_type (1) -> TypeProto.Tensor.shape (2) -> TensorShapeProto.dim (1)
        label = f"the type of {name!r} in {where}"
        for t in (t for ty in self.single(f, 2, label) for t in self.single(self.message(ty, _ONE), 1, label)):
            for shape in self.single(self.message(t, _TWO), 2, f"the shape of {name!r} in {where}"):
                volume: int | None = 1
                dims = spans(self.message(shape, _ONE), 1)
                for axis, dim in enumerate(dims):
                    d = self.message(dim, _PAIR)
                    self.texts(d, 2, "the name of dim {} of {!r} in {}", axis, name, where)
                    sizes = read_ints(self.buf, d, 1)
                    for size in sizes if check_dims else ():
                        if not -1 <= size <= INT32[1]:
                            raise self.fail(
                                f"input {name!r} of {where}: dim {axis} is {size}; expected a size 0..{INT32[1]} "
                                "(or a dim_param name for a dynamic axis): TensorRT's parser would wrap it to int32"
                            )
                    volume = volume * sizes[-1] if volume is not None and sizes and sizes[-1] >= 0 else None
                if check_dims:
                    self.shapes[name] = (len(dims), volume)
        return name

    def node(self, span: tuple[int, int], where: str, index: int, depth: int) -> None:
        f = self.message(span, _NODE)
        inputs = self.texts(f, 1, "an input name of node {} in {}", index, where)
        n_in = len(inputs)
        outputs = self.texts(f, 2, "an output name of node {} in {}", index, where)
        n_out = len(outputs)
        name = (self.texts(f, 3, "the name of node {} in {}", index, where) or [""])[-1]
        op = (self.texts(f, 4, "the op type of node {} in {}", index, where) or [""])[-1]
        domain = (self.texts(f, 7, "the domain of node {} in {}", index, where) or [""])[-1]
        label = f"node {index} ({name!r}, {op})" if name else f"node {index} ({op})"
        if n_out == 0:
            raise self.fail(f"{label} in {where} has no outputs; every ONNX node has at least one")
        standard = domain in ("", "ai.onnx")
        if not standard and op in STANDARD_OPS and (domain, op) not in SAME_AS_ONNX:
            self.foreign(f"{label} in {where}", op, domain)
        lo, hi = ARITY.get(op, (0, n_in)) if standard else (0, n_in)
        if not lo <= n_in <= hi:
            takes = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise self.fail(f"{label} in {where} has {n_in} inputs; {op} takes {takes}")
        graphs: dict[str, tuple[int, int]] = {}
        ints: dict[str, list[int]] = {}
        mode = b""  # SpaceToDepth's string attribute, the one string the checks read
        for attr in spans(f, 5):
            a = self.message(attr, _ATTRIBUTE)
            aname = (self.texts(a, 1, "an attribute name of {} in {}", label, where) or [""])[-1]
            if aname in ints:
                raise self.fail(f"{label} in {where} has two attributes named {aname!r}")
            ints[aname] = read_ints(self.buf, a, 3) + read_ints(self.buf, a, 8)
            self.single(a, 5, f"attribute {aname!r} of {label} in {where}")
            self.single(a, 6, f"attribute {aname!r} of {label} in {where}")
            if aname == "mode" and op == "SpaceToDepth":
                mode = b"".join(bytes(self.buf[s:e]) for s, e in spans(a, 4))
            for t in spans(a, 5) + spans(a, 10):
                shape = self.tensor(t, f"tensor of {label} in {where}")
                if op == "Constant" and aname == "value" and standard:
                    self.shapes[outputs[0]] = shape
            held = spans(a, 6) + spans(a, 11)
            for g in held:
                graphs[aname] = self.graph(g, f"attribute {aname!r} of {label}", depth + 1)
            if set(read_ints(self.buf, a, 20)) & {_GRAPH, _GRAPHS} and not held:
                raise self.fail(f"{label} in {where}: attribute {aname!r} is typed as a graph but holds none")
            if standard and (op, aname) not in INT64_ATTRIBUTES:
                bad = next((i for i in ints[aname] if not INT32[0] <= i <= INT32[1]), None)
                if bad is not None:
                    raise self.fail(
                        f"{label} in {where}: attribute {aname!r} holds {bad}, outside int32 "
                        f"({INT32[0]}..{INT32[1]}); TensorRT's parser would wrap it silently"
                    )
        if standard and op == "GroupNormalization" and (ints.get("num_groups") or [0])[-1] == 1:
            self.one_group(f"{label} in {where}", inputs)
        if standard and op in _MISREAD:
            self.misread(f"{label} in {where}", op, inputs, ints, mode)
        if standard and op in SUBGRAPHS:
            self.control_flow(f"{label} in {where}", op, graphs, ints, n_in, n_out)
        for (rule_op, i), rule in SHAPED_INPUTS.items():
            if standard and op == rule_op and i < n_in and inputs[i]:
                self.shaped_input(f"{label} in {where}", inputs[i], *rule)
        if standard and (op in _RANK_ONE or op in _RANK_OF_INPUTS):
            bound = _RANK_ONE.get(op) or max((self.min_rank(x) for x in inputs if x), default=0)
            self.ranks.update(dict.fromkeys(outputs, bound))

    def foreign(self, label: str, op: str, domain: str) -> None:
        """Refuse a node of domain ``domain`` named like the standard op ``op``: TensorRT would build that."""
        if (domain, op) in self.functions:
            raise self.fail(
                f"{label} calls the model's local function {domain}::{op}, but TensorRT's parser would build "
                f"ONNX {op}: rename the function (and its calls) to a name that is not an ONNX op's, e.g. {op}_fn"
            )
        raise self.fail(
            f"{label} is {op} of domain {domain!r}, but TensorRT's parser ignores the domain and would build "
            f"ONNX {op}: set its domain to '' if it means ONNX {op}; a plugin needs an op type of its own "
            "(TensorRT finds plugins by op type)"
        )

    def single(self, fields: dict[int, list], n: int, what: str) -> list[tuple[int, int]]:
        """The spans of a singular sub-message field: one at most. Protobuf merges repeated copies of one
        (a second graph's nodes join the first's), which the checks would not see: exporters write it once."""
        found = spans(fields, n)
        if len(found) > 1:
            raise self.fail(
                f"{what} is written {len(found)} times; protobuf merges the copies into one, which trtdsl does "
                "not check (no exporter writes a message twice)"
            )
        return found

    def one_group(self, label: str, inputs: list[str]) -> None:
        """Refuse GroupNormalization(num_groups=1) unless its scale shows one channel (opset 21: one per channel)."""
        scale = self.shapes.get(inputs[1]) if len(inputs) > 1 else None
        if self.opset >= 21 and scale is not None and scale[1] == 1:
            return  # one channel: group and instance normalization agree
        # torch writes this node from opset 21 only; below, the node came from elsewhere: say what to write instead.
        export = (
            "Export with opset 20 or lower (torch then writes Reshape + InstanceNormalization, which parses right), or"
        )
        raise self.fail(
            f"{label} has num_groups=1, which TensorRT's parser builds as InstanceNormalization (mean and "
            "variance per channel) where ONNX takes them over all channels together: the network would "
            f"compute something else. {export if self.opset >= 21 else 'Rewrite it as Reshape + InstanceNormalization, or'} "
            "write it as LayerNormalization over axes 1.. followed by the per-channel Mul and Add "
            "(trtdsl.ops.group_norm(x, 1, ...) in a hand-written network)"
        )

    def misread(self, label: str, op: str, inputs: list[str], ints: dict, mode: bytes) -> None:
        """Refuse what TensorRT's parser reads otherwise than ONNX (``_MISREAD``), saying how to write it."""
        if op == "Trilu" and "upper" not in ints:
            raise self.fail(
                f"{label} has no 'upper' attribute: ONNX's default is 1 (the upper triangle), TensorRT's parser "
                "defaults to 0 and would build the lower one. Set upper=1 on the node"
            )
        if op == "SpaceToDepth" and mode.upper() == b"CRD":
            raise self.fail(
                f"{label} has mode='CRD', which TensorRT's parser ignores (it always builds the DCR order): "
                "write it as Reshape + Transpose + Reshape, or use DCR"
            )
        if op in ("RNN", "GRU", "LSTM") and (ints.get("layout") or [0])[-1] == 1:
            raise self.fail(
                f"{label} has layout=1 (batch first), which TensorRT's parser ignores: it would read X as "
                "[seq, batch, input] and write Y as [seq, dirs, batch, hidden]. Export with layout=0 "
                "(torch: batch_first=False) and Transpose around the node"
            )

    def min_rank(self, name: str) -> int:
        """A lower bound on the rank of ``name``: stated by the file, or from the op that made it."""
        return self.shapes[name][0] if name in self.shapes else self.ranks.get(name, 0)

    def shaped_input(self, label: str, name: str, what: str, ok, expected: str) -> None:
        """Refuse an input of SHAPED_INPUTS whose stated shape fails its test; note one the graph computes."""
        rank, volume = self.shapes.get(name, (None, None))
        verdict = ok(rank, volume) if rank is not None else None
        if verdict is None and ok(self.min_rank(name), None):  # a rank test, passed by the lower bound
            return
        if verdict is None:  # computed by the graph: only the parser knows its shape
            self.unchecked.append(f"{label}: {what} {name!r} is computed")
        elif not verdict:
            held = f"rank {rank}" + (f" ({volume} values)" if volume is not None else "")
            raise self.fail(f"{label}: {what} {name!r} has {held}; expected {expected}")

    def control_flow(self, label: str, op: str, graphs: dict, ints: dict, n_in: int, n_out: int) -> None:
        for attr in SUBGRAPHS[op]:
            if attr not in graphs:
                raise self.fail(f"{label} has no {attr!r} graph")
        if op == "If":
            return
        body_in, body_out = graphs["body"]
        # ONNX: Loop(M, cond, v...) -> body(iter, cond, v...) -> (cond, v..., scan outputs...);
        # Scan(state..., scanned...) -> body(state..., scanned...) -> (state..., scan outputs...);
        # Scan-8 takes sequence_lens (maybe '') first, which the body does not get.
        if op == "Scan" and self.opset < 9:
            n_in -= 1
        want_in, want_out = n_in, n_out + (op == "Loop")
        if op == "Loop" and n_in < 2:
            raise self.fail(f"{label} has {n_in} inputs; a Loop takes at least 2 (M, cond)")
        if body_in != want_in or body_out != want_out:
            raise self.fail(
                f"{label}: its body graph has {body_in} inputs and {body_out} outputs; "
                f"the node's {n_in} inputs and {n_out} outputs need {want_in} and {want_out}"
            )
        if op == "Scan":
            self.scan(label, ints, n_in, n_out)

    def scan(self, label: str, ints: dict, n_in: int, n_out: int) -> None:
        """num_scan_inputs M of the n_in inputs are scanned; the axes and directions lists fit M and K."""
        m = (ints.get("num_scan_inputs") or [0])[-1]  # 0 (unset) crashed TensorRT's parser
        if not 1 <= m <= n_in:
            raise self.fail(f"{label}: num_scan_inputs is {m}; expected 1..{n_in} (its number of inputs)")
        k = n_out - (n_in - m)  # scan outputs: the outputs after the N = n_in - M states
        if k < 0:
            raise self.fail(f"{label} has {n_out} outputs, fewer than its {n_in - m} state inputs")
        for attr, want in (("scan_input_axes", m), ("scan_input_directions", m), ("directions", m),
                           ("scan_output_axes", k), ("scan_output_directions", k)):  # fmt: skip
            if attr in ints and len(ints[attr]) != want:
                raise self.fail(f"{label}: {attr} has {len(ints[attr])} values; expected {want}")
            if attr.endswith("directions") and not set(ints.get(attr, ())) <= {0, 1}:
                raise self.fail(f"{label}: {attr} are {ints[attr]}; expected 0 (forward) or 1 (reverse)")

    def tensor(self, span: tuple[int, int], what: str, *, known: bool = False) -> tuple[int, int]:
        """Check one TensorProto; its (rank, element count) (``known``: record them under its name)."""
        f = self.message(span, _TENSOR)
        name = (self.texts(f, 8, "the name of a {}", what) or [""])[-1]
        dims = read_ints(self.buf, f, 1)
        volume = 1
        for d in dims:
            volume *= max(d, 0)
        if known:
            self.shapes[name] = (len(dims), volume)
        entries = {}
        for e in spans(f, 13):  # StringStringEntryProto: key (1), value (2)
            kv = self.message(e, _PAIR)
            key = (self.texts(kv, 1, "an external_data key of {} {!r}", what, name) or [""])[-1]
            entries[key] = (self.texts(kv, 2, "an external_data value of {} {!r}", what, name) or [""])[-1]
        if _EXTERNAL in read_ints(self.buf, f, 14) or entries:
            self.external.append((f"{what} {name!r}", entries))
        return len(dims), volume


def check(path: Path) -> list[str]:
    """Refuse ``path`` with OnnxParseError when it would crash, hang or mislead TensorRT's parser.

    Returns what the file holds that only a parse can check (see ``trtdsl.onnx.parse(isolate=)``).
    """
    size = path.stat().st_size
    if size == 0:
        raise OnnxParseError(f"ONNX file {str(path)!r} is empty")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        walk = _Walk(buf, path)
        try:
            walk.model()
        except Malformed as e:
            raise OnnxParseError(f"{str(path)!r} is not an ONNX model (a malformed protobuf): {e}") from None
    checked: dict[str, int] = {}
    for what, entries in walk.external:
        _check_external(walk, path, what, entries, checked)
    return walk.unchecked


def _check_external(walk: _Walk, path: Path, what: str, entries: dict[str, str], sizes: dict[str, int]) -> None:
    """The external-data file must be a regular file inside the model's folder, and the span inside it."""
    loc = entries.get("location", "")
    where = f"{what}: external data location {loc!r}"
    if not loc or "\0" in loc:
        raise walk.fail(f"{where}: expected a file name relative to the model's folder")
    if os.path.isabs(loc) or loc.startswith(("/", "\\")) or ".." in Path(loc).parts:
        raise walk.fail(f"{where} leaves the model's folder (absolute, or a parent '..' component)")
    folder = path.parent
    target = os.path.realpath(folder / loc)
    # The model's folder as named, or the folder its file really lives in (a Hugging Face cache
    # links model.onnx and model.onnx_data from snapshots/ to blobs/ side by side).
    roots = {os.path.realpath(folder), os.path.dirname(os.path.realpath(path))}
    if not any(os.path.commonpath([target, r]) == r for r in roots):
        raise walk.fail(f"{where} is a link to {target!r}, outside the model's folder")
    if target not in sizes:
        try:
            st = os.stat(target)
        except OSError as e:
            raise walk.fail(f"{where}: cannot read it ({e.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise walk.fail(f"{where} is not a regular file (a directory, FIFO or device)")
        sizes[target] = st.st_size
    size = sizes[target]
    span = {}
    for key in ("offset", "length"):
        if key in entries:
            v = entries[key]
            if not (v.isascii() and v.isdigit()) or len(v) > 19:
                raise walk.fail(f"{what}: external data {key} {v[:40]!r} is not a non-negative integer")
            span[key] = int(v)
    offset = span.get("offset", 0)
    end = offset + span.get("length", 0)
    if offset > size or end > size:
        raise walk.fail(f"{what}: external data [{offset}, {end}) lies past the end of {loc!r} ({size} bytes)")
