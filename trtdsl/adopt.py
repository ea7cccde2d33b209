"""Wrap an ``INetworkDefinition`` that something else filled into a ``trtdsl.Network``.

The definition may come from a user's raw-API code or from ``trt.OnnxParser``
(:func:`trtdsl.onnx.parse`). What ``Network`` keeps beside the definition is
read back from it: the inputs with their dims (a dynamic axis becomes a named
dim, named as TensorRT names it: the ONNX ``dim_param``, else
``<input>.<axis>``), the outputs, and which layer produced each tensor.
Layers TensorRT left unnamed (``(Unnamed Layer* 3) [Convolution]``) get a
readable name from their type, so every name a profile or inspector shows can
be found again with :meth:`Network.layer`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from . import dtypes
from .errors import TrtdslError
from .profile import Dim
from .tensor import Tensor

_UNNAMED = re.compile(r"^\(Unnamed Layer\* \d+\) \[[^\]]*\]")


def is_unnamed(name: str) -> bool:
    """Whether ``name`` is TensorRT's default for a layer or its output, e.g. ``(Unnamed Layer* 3) [Shuffle]``."""
    return bool(_UNNAMED.match(name or ""))


def adopt_into(
    net: Any,
    definition: Any,
    *,
    name: str | None,
    dims: Mapping[str, Sequence[int]] | None,
    keep: Sequence[Any],
) -> None:
    """Fill ``net`` (a fresh, empty ``Network``) from ``definition``; see :meth:`Network.adopt`."""
    trt_itype = type(definition).__name__
    if not hasattr(definition, "get_layer") or not hasattr(definition, "num_inputs"):
        raise TrtdslError(f"Network.adopt expects a TensorRT INetworkDefinition, got {trt_itype}")
    # ``net`` comes from Network.__init__, so every table it keeps exists (whatever later
    # versions add); only the builder and the definition are swapped for the adopted ones.
    net.builder = definition.builder
    net.trt = definition
    given = definition.name or ""
    net.name = name or ("network" if given.startswith("Unnamed Network") else given) or "network"
    net._adopted = list(keep)  # objects that own the definition's weights (an OnnxParser, user arrays)

    for i in range(definition.num_inputs):
        t = definition.get_input(i)
        spec: list[int | str] = []
        for axis, d in enumerate(t.shape):
            if d >= 0:
                spec.append(int(d))
                continue
            dim = t.get_dimension_name(axis) or f"{t.name}.{axis}"
            net.dims.setdefault(dim, Dim(dim))
            spec.append(dim)
        net.input_specs[t.name] = tuple(spec)
        net.input_dtypes[t.name] = dtypes.canonical(t.dtype)
        net._used_names.add(t.name)

    for i in range(definition.num_layers):
        layer = definition.get_layer(i)
        n = layer.num_outputs
        # Read before renaming the layer: TensorRT renames default-named outputs with it.
        unnamed_out = [is_unnamed(layer.get_output(j).name) for j in range(n)]
        if is_unnamed(layer.name):
            layer.name = net.unique_name(layer.type.name.lower(), scoped=False)
        net._used_names.add(layer.name)
        for j in range(n):
            t = layer.get_output(j)
            if unnamed_out[j]:
                t.name = net.unique_name(layer.name + (".out" if n == 1 else f".out{j}"), scoped=False)
            net._producers[t.name] = layer
            net._used_names.add(t.name)

    for i in range(definition.num_outputs):
        t = definition.get_output(i)
        net.outputs[t.name] = Tensor(t, net)

    for dim, rng in (dims or {}).items():
        if dim not in net.dims:
            from .errors import ProfileError, did_you_mean

            raise ProfileError(
                f"Network.adopt: dims names {dim!r}, which no input uses; dynamic dims: {list(net.dims)}."
                + did_you_mean(dim, net.dims)
            )
        net.dim(dim, *rng)
