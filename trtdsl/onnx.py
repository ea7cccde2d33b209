"""Parse an ONNX file with TensorRT's own ``trt.OnnxParser`` into a ``trtdsl.Network``.

NVIDIA's parser decides the ONNX-to-TensorRT mapping (the same one ``trtexec
--onnx`` uses); trtdsl adopts the definition it fills, so the result can be
run by the reference interpreter, rewritten (:mod:`trtdsl.rewrite`),
calibrated and built like a hand-written network. The ``onnx`` package is not
needed: the parser reads the file's bytes.

Example::

    net = trtdsl.onnx.parse("resnet18.onnx", dims={"batch": (1, 8, 32)})
    out = trtdsl.reference.run(net, {"input": x})
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _trt, onnxcheck
from .argcheck import api
from .errors import OnnxParseError
from .network import Network

MAX_BYTES = 2**31  # protobuf's limit for one message; larger models keep weights as external data
PROBE_SECONDS = 600.0  # a parse in the child process that takes longer is taken for a hang
# The child imports only TensorRT, never trtdsl: it parses and exits; only its exit status is read.
_PROBE = """
import importlib, sys
trt = importlib.import_module(sys.argv[1])
logger = trt.Logger(trt.Logger.ERROR)
builder = trt.Builder(logger)
network = builder.create_network(0)  # held: the parser fills it (freed early, the parse crashes)
parser = trt.OnnxParser(network, logger)
parser.parse_from_file(sys.argv[2])
"""


@api("trtdsl.onnx")
def parse(
    path: str | os.PathLike,
    *,
    dims: Mapping[str, Sequence[int]] | None = None,
    name: str | None = None,
    dtype: str = "float32",
    isolate: bool | None = None,
) -> Network:
    """Parse ``path`` with ``trt.OnnxParser`` and return it as a ``Network``.

    Dynamic ONNX dims (``dim_param`` such as ``"batch"``) become named dims of
    the network; give their (min, opt, max) ranges as ``dims`` or later with
    ``net.dim(name, min, opt, max)`` (until then the interpreter and ``build``
    raise ``ProfileError`` naming the dim). ``dtype`` is the compute dtype for
    DSL ops added afterwards. Layer names are the ONNX node names.

    TensorRT's parser is C++ and trusts the file: trtdsl refuses first what is
    known to crash, hang or mislead it (:mod:`trtdsl.onnxcheck`). What only a
    parse can tell (a Loop whose trip count is computed) is parsed once in a
    child process first, where a crash or hang becomes an ``OnnxParseError``;
    ``isolate=True`` does that for every file (about 0.5 s more, plus the parse
    time again), ``isolate=False`` never.
    """
    trt = _trt.load()
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise OnnxParseError(f"no ONNX file {str(path)!r} ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise OnnxParseError(f"ONNX file {str(path)!r} is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise OnnxParseError(f"ONNX file {str(path)!r} is not a regular file (a FIFO, device or socket)")
    if st.st_size > MAX_BYTES:
        raise OnnxParseError(f"{str(path)!r} is {st.st_size} bytes; an ONNX protobuf is at most 2 GiB")
    # TensorRT's parser crashes, hangs or reads outside the model's folder on some inputs it
    # trusts (listed in trtdsl/onnxcheck.py): refuse those first.
    unchecked = onnxcheck.check(path)
    if isolate or (isolate is None and unchecked):
        _probe(path, "; ".join(unchecked[:3]) or "isolate=True")
    logger = _trt.logger()
    builder = trt.Builder(logger)
    definition = builder.create_network(0)
    parser = trt.OnnxParser(definition, logger)
    first = len(logger.errors)
    # parse_from_file resolves external-data files in the model's own folder (onnxcheck has
    # checked each is a regular file there); parse(bytes) would use the working directory.
    if not parser.parse_from_file(str(path)):
        errors = [_describe(parser.get_error(i)) for i in range(parser.num_errors)]
        logged = [m for m in logger.errors[first:] if not m.startswith("ModelImporter")]
        raise OnnxParseError(
            f"TensorRT's ONNX parser ({_trt.name()}) refused {str(path)!r}: "
            + " | ".join([*logged[:3], *errors] or ["no message"])
        )
    # The parser owns the weights it converted: keep it (and the builder) with the network.
    try:
        return Network.adopt(definition, name=name or path.stem, dtype=dtype, dims=dims, keep=[parser, builder])
    except UnicodeDecodeError as e:  # a name onnxcheck does not read (the bindings decode every name)
        raise OnnxParseError(f"{str(path)!r}: a tensor, layer or dim name is not UTF-8 text ({e})") from None


def _probe(path: Path, why: str) -> None:
    """Parse ``path`` in a child process: a crash or a hang there is an OnnxParseError here."""
    cmd = [sys.executable, "-c", _PROBE, _trt.name(), str(path)]
    try:
        quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        code = subprocess.run(cmd, check=False, timeout=PROBE_SECONDS, **quiet).returncode
    except subprocess.TimeoutExpired:
        raise OnnxParseError(
            f"TensorRT's ONNX parser did not finish {str(path)!r} in {PROBE_SECONDS:.0f} s in a child process "
            f"(parsed there first because {why})"
        ) from None
    if code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:  # a signal the enum does not name
            sig = f"signal {-code}"
        raise OnnxParseError(
            f"TensorRT's ONNX parser crashed ({sig}) parsing {str(path)!r} in a child "
            f"process (parsed there first because {why}); the file is malformed"
        )
    # Any other exit (the child could not import TensorRT, say): the parse here reports what is wrong.


def _describe(error: Any) -> str:
    try:
        node = getattr(error, "node_name", lambda: "")()
        op = getattr(error, "node_operator", lambda: "")()
        desc = error.desc() if hasattr(error, "desc") else str(error)
    except UnicodeDecodeError:  # the parser quotes the file's own bytes
        return "(an error message with text that is not UTF-8)"
    where = f" (node {node!r}, {op})" if node else ""
    return f"{desc}{where}"


__all__ = ["OnnxParseError", "parse"]
