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
    if not path.is_file():
        raise OnnxParseError(f"no ONNX file {str(path)!r}")
    builder = trt.Builder(_trt.logger())
    definition = builder.create_network(0)
    parser = trt.OnnxParser(definition, _trt.logger())
    # parse_from_file resolves external-data files next to the model, as ONNX
    # defines; parse(bytes) would need a base path for them.
    if not parser.parse_from_file(str(path)):
        errors = [_describe(parser.get_error(i)) for i in range(parser.num_errors)]
        raise OnnxParseError(
            f"TensorRT's ONNX parser ({_trt.name()}) refused {str(path)!r}: " + " | ".join(errors or ["no message"])
        )
    # The parser owns the weights it converted: keep it (and the builder) with the network.
    return Network.adopt(definition, name=name or path.stem, dtype=dtype, dims=dims, keep=[parser, builder])


def _describe(error: Any) -> str:
    node = getattr(error, "node_name", lambda: "")()
    op = getattr(error, "node_operator", lambda: "")()
    where = f" (node {node!r}, {op})" if node else ""
    return f"{error.desc()}{where}" if hasattr(error, "desc") else str(error)


__all__ = ["OnnxParseError", "parse"]
