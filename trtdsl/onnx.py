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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import _trt
from .errors import TrtdslError
from .network import Network

MAX_BYTES = 2**31  # protobuf's limit for one message; larger models keep weights as external data


class OnnxParseError(TrtdslError):
    """TensorRT's ONNX parser refused the file; the message carries the parser's own errors."""


def parse(
    path: str | os.PathLike,
    *,
    dims: Mapping[str, Sequence[int]] | None = None,
    name: str | None = None,
    dtype: str = "float32",
) -> Network:
    """Parse ``path`` with ``trt.OnnxParser`` and return it as a ``Network``.

    Dynamic ONNX dims (``dim_param`` such as ``"batch"``) become named dims of
    the network; give their (min, opt, max) ranges as ``dims`` or later with
    ``net.dim(name, min, opt, max)`` (until then the interpreter and ``build``
    raise ``ProfileError`` naming the dim). ``dtype`` is the compute dtype for
    DSL ops added afterwards. Layer names are the ONNX node names.
    """
    trt = _trt.load()
    path = Path(path)
    if path.is_dir():
        raise OnnxParseError(f"ONNX file {str(path)!r} is a directory")
    if not path.is_file():
        raise OnnxParseError(f"no ONNX file {str(path)!r}")
    if path.stat().st_size > MAX_BYTES:
        raise OnnxParseError(f"{str(path)!r} is {path.stat().st_size} bytes; an ONNX protobuf is at most 2 GiB")
    logger = _trt.logger()
    builder = trt.Builder(logger)
    definition = builder.create_network(0)
    parser = trt.OnnxParser(definition, logger)
    first = len(logger.errors)
    # parse_from_file resolves external-data files in the model's own folder: TensorRT's
    # parser refuses '../' and reads absolute locations below that folder (checked in
    # tests/test_onnx.py), so a model file cannot make it read files elsewhere.
    # parse(bytes) would resolve them against the working directory instead.
    if not parser.parse_from_file(str(path)):
        errors = [_describe(parser.get_error(i)) for i in range(parser.num_errors)]
        logged = [m for m in logger.errors[first:] if not m.startswith("ModelImporter")]
        raise OnnxParseError(
            f"TensorRT's ONNX parser ({_trt.name()}) refused {str(path)!r}: "
            + " | ".join([*logged[:3], *errors] or ["no message"])
        )
    # The parser owns the weights it converted: keep it (and the builder) with the network.
    return Network.adopt(definition, name=name or path.stem, dtype=dtype, dims=dims, keep=[parser, builder])


def _describe(error: Any) -> str:
    node = getattr(error, "node_name", lambda: "")()
    op = getattr(error, "node_operator", lambda: "")()
    where = f" (node {node!r}, {op})" if node else ""
    return f"{error.desc()}{where}" if hasattr(error, "desc") else str(error)


__all__ = ["OnnxParseError", "parse"]
