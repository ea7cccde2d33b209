"""Finding, reading and rewiring the layers and tensors of a ``Network``.

These are the methods of :class:`trtdsl.Network` that walk its finished
``INetworkDefinition`` rather than build it: look-ups by name, the readers of a
tensor, moving those readers to another tensor (how calibration writes Q/DQ
into a finished network), and the listings (``layers``, ``summary``, ``repr``).
``Network`` inherits them from :class:`GraphMixin`; the functions of
:mod:`trtdsl.rewrite` build on them.

Example::

    readers = net.consumers("stem.conv.out")          # [(layer, input index), ...]
    net.insert_after(x, lambda t: ops.fake_quantize(t, amax=2.0))
    print(net.summary())
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import _trt, dtypes
from .errors import ShapeError, TrtdslError, did_you_mean
from .layerinfo import layer_type
from .tensor import Tensor


class GraphMixin:
    """The look-up, rewiring and listing methods of :class:`trtdsl.Network` (see the module)."""

    # Set by Network.__init__.
    name: str
    dtype: str
    trt: Any
    generation: int
    input_specs: dict[str, tuple[int | str, ...]]
    input_dtypes: dict[str, str]
    outputs: dict[str, Tensor]
    _producers: dict[str, Any]
    _regions: dict[str, str]

    # ---------------------------------------------------------------- lookups
    def producer(self, tensor: Tensor | str) -> Any:
        """The ``ILayer`` that produced a tensor (None for network inputs)."""
        key = tensor if isinstance(tensor, str) else tensor.name
        return self._producers.get(key)

    def tensor(self, name: str) -> Tensor:
        """Find a tensor by name among inputs and layer outputs."""
        for i in range(self.trt.num_inputs):
            if self.trt.get_input(i).name == name:
                return Tensor(self.trt.get_input(i), self)
        layer = self._producers.get(name)
        if layer is not None:
            for i in range(layer.num_outputs):
                if layer.get_output(i).name == name:
                    return Tensor(layer.get_output(i), self)
        names = list(self.input_specs) + list(self._producers)
        raise TrtdslError(f"no tensor {name!r} in network {self.name!r}.{did_you_mean(name, names)}")

    # -------------------------------------------------------------- rewriting
    def consumers(self, tensor: Tensor | str) -> list[tuple[Any, int]]:
        """Every ``(layer, input_index)`` that reads ``tensor``, in network order."""
        name = tensor if isinstance(tensor, str) else tensor.name
        found = []
        for i in range(self.trt.num_layers):
            layer = self.trt.get_layer(i)
            for j in range(layer.num_inputs):
                t = layer.get_input(j)
                if t is not None and t.name == name:
                    found.append((layer, j))
        return found

    def replace_uses(self, old: Tensor, new: Tensor, *, keep: Sequence[Any] = ()) -> int:
        """Make every layer that reads ``old`` read ``new`` instead; returns how many inputs moved.

        Layers in ``keep`` still read ``old`` (the layers that compute ``new`` from
        ``old``; :meth:`insert_after` fills it in for the common case). A network
        output that is ``old`` stays ``old``; mark ``new`` as an output yourself if
        you want it. Prepared reference interpreters notice the change.
        """
        if old.dtype != new.dtype:
            raise ShapeError(f"cannot replace {old.name!r} ({old.dtype}) by {new.name!r} ({new.dtype}): dtypes differ")
        skip = {layer.name for layer in keep}
        moved = 0
        for layer, j in self.consumers(old):
            if layer.name not in skip:
                layer.set_input(j, new.trt)
                moved += 1
        if moved:
            self.generation += 1
        return moved

    def insert_after(self, tensor: Tensor, make: Any) -> Tensor:
        """Insert ``make(tensor)`` between ``tensor`` and every layer that read it.

        ``make`` adds layers with the DSL (e.g. ``lambda t: ops.fake_quantize(t, amax=2.0)``);
        the layers it adds keep reading ``tensor``. This is how calibration
        writes Q/DQ into a finished network.
        """
        before = self.trt.num_layers
        new = make(tensor)
        added = [self.trt.get_layer(i) for i in range(before, self.trt.num_layers)]
        self.replace_uses(tensor, new, keep=added)
        return new

    # ------------------------------------------------------------------ views
    def layers(self) -> list[Any]:
        """All layers, downcast to their concrete ``I*Layer`` classes; see ``trtdsl.layer_type`` for the kind."""
        from .layerinfo import downcast

        return [downcast(self.trt.get_layer(i)) for i in range(self.trt.num_layers)]

    def layer(self, name: str) -> Any:
        """The layer named ``name``, downcast; the error suggests near names."""
        from .layerinfo import downcast

        names = []
        for i in range(self.trt.num_layers):
            layer = self.trt.get_layer(i)
            if layer.name == name:
                return downcast(layer)
            names.append(layer.name)
        raise TrtdslError(
            f"no layer {name!r} in network {self.name!r} ({len(names)} layers).{did_you_mean(name, names)}"
        )

    def index_ranges(self) -> dict[str, int]:
        """For each integer input read as indices by a gather (an embedding), the size of the axis it indexes.

        Casts, reshapes and identities between the input and the gather are followed;
        ``trtdsl run`` draws random ids below it, and plans keep it in their options.

        Example::

            net.index_ranges()   # {'ids': 30522}
        """
        trt = _trt.load()
        passthrough = {trt.LayerType.SHUFFLE, trt.LayerType.IDENTITY, trt.LayerType.CAST}
        readers: dict[str, list[tuple[Any, int]]] = {}
        for layer in self.layers():
            for j in range(layer.num_inputs):
                t = layer.get_input(j)
                if t is not None:
                    readers.setdefault(t.name, []).append((layer, j))
        highs: dict[str, int] = {}
        for name, dt in self.input_dtypes.items():
            if dt not in ("int32", "int64", "int8", "uint8"):
                continue
            frontier, seen, limits = [name], set(), []
            while frontier:
                t = frontier.pop()
                seen.add(t)
                for layer, j in readers.get(t, ()):
                    kind = layer_type(layer)
                    if kind == trt.LayerType.GATHER and j == 1:
                        data = layer.get_input(0).shape
                        n = data[layer.axis] if layer.axis < len(data) else -1
                        if n > 0:
                            limits.append(int(n))
                    elif kind in passthrough and layer.get_output(0).name not in seen:
                        frontier.append(layer.get_output(0).name)
            if limits:
                highs[name] = min(limits)
        return highs

    def summary(self) -> str:
        """A table of the layers: name, type, output shape, dtype and precision region.

        The region is the float dtype a ``net.precision(...)`` block asked for, shown
        where it differs from the network's dtype (a float32 softmax in an fp16 net).

        Example::

            print(net.summary())
        """
        rows = [("layer", "type", "output shape", "dtype", "region")]
        for layer in self.layers():
            out = layer.get_output(0) if layer.num_outputs else None
            shape = "" if out is None else "(" + ", ".join(str(d) for d in _shape(out.shape)) + ")"
            dt = "" if out is None else dtypes.from_trt(out.dtype)
            region = self._regions.get(layer.name, "")
            extra = f" +{layer.num_outputs - 1} outputs" if layer.num_outputs > 1 else ""
            rows.append((layer.name, layer_type(layer).name.lower(), shape + extra, dt, region))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [f"network {self.name!r} ({self.dtype}): {self.trt.num_layers} layers"]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        def spec(name: str) -> str:
            dims = ", ".join(str(d) for d in self.input_specs[name])
            return f"{name}: {self.input_dtypes[name]}[{dims}]"

        ins = ", ".join(spec(n) for n in self.input_specs)
        return (
            f"Network({self.name!r}, dtype={self.dtype!r}, inputs=({ins}), "
            f"outputs={list(self.outputs)}, layers={self.trt.num_layers})"
        )


def _shape(dims: Any) -> tuple[int | str, ...]:
    """A layer output's shape, '?' for an axis TensorRT only knows at run time."""
    return tuple("?" if dims[i] == -1 else dims[i] for i in range(len(dims)))
