"""The node walk: a parsed Keras model becomes layers of a ``Network``, one converter call per node.

Inside TensorRT the model runs channels-first. A :class:`KTensor` is a DSL
tensor plus how it is held: ``cl`` means the Keras tensor is channels-last
``(N, *spatial, C)`` but held as ``(N, C, *spatial)``, so a channels_last model
transposes once per image input and convolutions, pooling and normalization
work on it directly. Layers that need Keras' own axis order (Reshape, Dense on
a sequence, attention) ask for :meth:`Call.logical`, which transposes back once
per tensor. ``flat`` marks a Flatten of a held-channels-first tensor: a Dense
after it permutes its kernel rows instead of moving data. Only converters marked
``keeps_flat`` (Dense, the identity layers) see such a tensor; every other one
gets it in Keras' order, transposed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import ops
from ..errors import KerasError, WeightError
from ..network import Network
from ..tensor import Tensor
from ..weights import WeightStore
from ..weights.keras_config import Layer, Model, Node, Ref
from .registry import lookup


class KTensor:
    """A Keras tensor held in the network: ``t`` and its layout (see the module doc)."""

    __slots__ = ("cl", "flat", "mask", "t")

    def __init__(self, t: Tensor, cl: bool = False, *, flat: tuple[int, ...] | None = None, mask: Tensor | None = None):
        self.t, self.cl, self.flat, self.mask = t, cl, flat, mask

    @property
    def rank(self) -> int:
        return self.t.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        """The Keras (logical) shape; -1 for dynamic dims."""
        s = self.t.shape
        return (s[0], *s[2:], s[1]) if self.cl else s

    def __repr__(self) -> str:
        return f"KTensor({self.t.name!r}, keras shape {self.shape}{', held NC..' if self.cl else ''})"


def to_cf_perm(rank: int) -> tuple[int, ...]:
    return (0, rank - 1, *range(1, rank - 1))


def to_cl_perm(rank: int) -> tuple[int, ...]:
    return (0, *range(2, rank), 1)


@dataclass
class Context:
    """What every converter call of one model shares."""

    net: Network
    store: WeightStore
    keras_major: int
    path: str
    backend: str = "tensorflow"  # the Keras backend whose numerics to follow where backends differ
    records: list[Record] = field(default_factory=list)


@dataclass
class Record:
    """What one Keras call became, for ``trtdsl keras --summary``."""

    where: str
    class_name: str
    shapes: list[tuple[int, ...]]
    params: int
    trt_layers: list[str]


class Call:
    """One call of one Keras layer, as its converter sees it: config, weights and layout helpers."""

    def __init__(self, ctx: Context, layer: Layer, wprefix: str, where: str):
        self.ctx, self.layer, self.wprefix, self.where = ctx, layer, wprefix, where
        self.net = ctx.net
        self.config: dict = layer.config
        self.name = layer.name
        self.params = 0  # elements of the weights this call took

    @property
    def keras_major(self) -> int:
        return self.ctx.keras_major

    @property
    def backend(self) -> str:
        return self.ctx.backend

    # ------------------------------------------------------------ weights
    def _key(self, name: str) -> str:
        return f"{self.wprefix}{self.name}/{name}"

    def has(self, name: str) -> bool:
        return self._key(name) in self.ctx.store

    def take(self, name: str, shape: Sequence[int | None] | None = None) -> np.ndarray:
        """The layer's weight ``name`` (``kernel``, ``moving_mean``...), recorded as used."""
        key = self._key(name)
        if key not in self.ctx.store:
            mine = [k.rsplit("/", 1)[-1] for k in self.ctx.store if k.startswith(f"{self.wprefix}{self.name}/")]
            hint = " Does the config disagree with the weights?"
            if any(k.startswith("layers/") and "/vars/" in k for k in self.ctx.store):
                hint = (
                    " The weights look like a Keras 3 weights-only file read on its own (layers/<group>/vars/0):"
                    " pass its path instead, load_model(model_file, weights='x.weights.h5'), to name them"
                    " through the model's config."
                )
            raise WeightError(
                f"{self.layer.class_name} layer {self.where!r}: the file has no weight {key!r}; "
                f"the layer has {mine or 'no weights'}.{hint}"
            )
        arr = self.take_key(key, shape)
        lora_a, lora_b = self._key(f"lora_{name}_a"), self._key(f"lora_{name}_b")
        if self.config.get("lora_rank") and lora_a in self.ctx.store and lora_b in self.ctx.store:
            # A legacy .h5 stores LoRA's factors beside the frozen weight (.keras files store the sum):
            # Keras uses weight + lora_alpha / lora_rank * (a @ b) (keras/src/layers/core/dense.py).
            rank = float(self.config["lora_rank"])
            scale = float(self.config.get("lora_alpha") or rank) / rank
            # The factors' shapes follow the weight's (out, in split at LoRA's rank): checked before the product,
            # which a file could otherwise make any size.
            r = None if not rank.is_integer() or rank < 1 else int(rank)
            a = self.take_key(lora_a, (*arr.shape[:-1], r))
            b = self.take_key(lora_b, (r, arr.shape[-1]))
            arr = (arr.astype(np.float64) + scale * np.matmul(a.astype(np.float64), b)).astype(arr.dtype)
        return arr

    def take_key(self, key: str, shape: Sequence[int | None] | None = None) -> np.ndarray:
        """A weight by its full name in the file (wrappers' inner layers: see :func:`find_weight`)."""
        arr = self.ctx.store.take(key, shape, layer=self.where)
        self.params += int(arr.size)
        return arr

    def optional(self, name: str, shape: Sequence[int | None] | None = None) -> np.ndarray | None:
        return self.take(name, shape) if self.has(name) else None

    def bias(self, n: int, name: str = "bias") -> np.ndarray | None:
        """The bias when the config says ``use_bias`` (then the file must hold it), else None."""
        return self.take(name, (n,)) if self.config.get("use_bias", True) else None

    # ------------------------------------------------------------- layout
    def logical(self, x: KTensor) -> Tensor:
        """``x`` in Keras' own axis order."""
        if x.flat is not None:  # a Flatten of (N, C, *spatial): flatten in Keras' (*spatial, C) order
            c = x.flat[-1]
            spatial = x.flat[:-1]

            def make() -> Tensor:
                held = ops.reshape(x.t, (-1, c, *spatial), name="unflatten")
                return ops.flatten(ops.permute(held, to_cl_perm(len(spatial) + 2), name="to_keras_order"), 1)

            return self.net.derived(x.t, "keras:flat", make)
        if not x.cl:
            return x.t
        return self.net.derived(x.t, "keras:cl", lambda: ops.permute(x.t, to_cl_perm(x.rank), name="to_nhwc"))

    def channels_first(self, x: KTensor, data_format: str | None = None) -> Tensor:
        """``x`` as (N, C, *spatial) for a layer with ``data_format`` (default: the layer's config)."""
        fmt = data_format or self.config.get("data_format") or "channels_last"
        if fmt == "channels_first":
            return self.logical(x)
        if x.cl:
            return x.t
        t = self.logical(x)
        return self.net.derived(t, "keras:cf", lambda: ops.permute(t, to_cf_perm(t.ndim), name="to_nchw"))

    def spatial_out(self, t: Tensor, data_format: str | None = None) -> KTensor:
        """Wrap the (N, C, *spatial) result of a layer with ``data_format``."""
        fmt = data_format or self.config.get("data_format") or "channels_last"
        return KTensor(t, cl=fmt != "channels_first")

    def axis(self, x: KTensor, axis: int) -> int:
        """Where Keras axis ``axis`` of ``x`` lives in the held tensor."""
        r = x.rank
        a = axis % r
        if not x.cl:
            return a
        return 0 if a == 0 else (1 if a == r - 1 else a + 1)

    def like(self, x: KTensor, t: Tensor) -> KTensor:
        """A result held like ``x`` (elementwise layers); the Keras mask passes through."""
        return KTensor(t, x.cl, mask=x.mask)

    def same_layout(self, xs: Sequence[KTensor]) -> tuple[list[Tensor], bool]:
        """Tensors for a merge: all held channels-first when every one can be, else Keras order."""
        if all(x.flat is None for x in xs) and any(x.cl for x in xs) and len({x.rank for x in xs}) == 1:
            return [x.t if x.cl else self.channels_first(x, "channels_last") for x in xs], True
        return [self.logical(x) for x in xs], False

    def error(self, message: str) -> KerasError:
        return KerasError(f"{self.layer.class_name} layer {self.where!r}: {message}")


def _refs(value: Any) -> list[Ref]:
    if isinstance(value, Ref):
        return [value]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in _refs(v)]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _refs(v)]
    return []


def _bind(value: Any, values: dict[tuple[str, int], list[KTensor]], where: str) -> Any:
    if isinstance(value, Ref):
        outs = values[(value.layer, value.node)]
        if not 0 <= value.index < len(outs):
            raise KerasError(f"layer {where!r} reads output {value.index} of {value.layer!r}, which has {len(outs)}")
        return outs[value.index]
    if isinstance(value, list):
        return [_bind(v, values, where) for v in value]
    if isinstance(value, dict):
        return {k: _bind(v, values, where) for k, v in value.items()}
    return value


def _outputs(result: Any, where: str) -> list[KTensor]:
    items = result if isinstance(result, (list, tuple)) else [result]
    outs = []
    for item in items:
        r = KTensor(item) if isinstance(item, Tensor) else item
        if not isinstance(r, KTensor):
            raise KerasError(f"the converter of layer {where!r} returned {type(r).__name__}, expected a KTensor")
        outs.append(r)
    return outs


def run_model(
    ctx: Context, model: Model, inputs: Sequence[KTensor], wprefix: str = "", where: str = ""
) -> list[KTensor]:
    """Convert every node that the outputs of ``model`` depend on; return the outputs."""
    by_name = {layer.name: layer for layer in model.layers}
    if len(inputs) != len(model.inputs):
        raise KerasError(f"model {model.name!r} takes {len(model.inputs)} inputs, got {len(inputs)}")
    values: dict[tuple[str, int], list[KTensor]] = {}
    for ref, x in zip(model.inputs, inputs):
        values[(ref.layer, ref.node)] = [x]
    for ref in model.outputs:
        stack: list[tuple[str, int]] = [(ref.layer, ref.node)]
        active: set[tuple[str, int]] = set()
        while stack:
            key = stack[-1]
            if key in values:
                stack.pop()
                continue
            layer = by_name.get(key[0])
            if layer is None:
                raise KerasError(f"model {model.name!r}: a node reads layer {key[0]!r}, which the config lacks")
            if not 0 <= key[1] < len(layer.nodes):
                if layer.class_name == "InputLayer":
                    raise KerasError(f"model {model.name!r}: input layer {layer.name!r} is not among its inputs")
                raise KerasError(f"model {model.name!r}: layer {layer.name!r} has no call {key[1]}")
            node = layer.nodes[key[1]]
            deps = [(r.layer, r.node) for r in _refs([node.args, node.kwargs]) if (r.layer, r.node) not in values]
            if deps:
                if key in active:
                    raise KerasError(f"model {model.name!r}: layer {layer.name!r} depends on itself (a cycle)")
                active.add(key)
                stack.extend(deps)
                continue
            stack.pop()
            values[key] = _call(ctx, layer, node, values, wprefix, f"{where}{layer.name}")
    return [_bind(ref, values, model.name) for ref in model.outputs]


def _call(ctx: Context, layer: Layer, node: Node, values: dict, wprefix: str, where: str) -> list[KTensor]:
    args = _bind(node.args, values, where)
    kwargs = _bind(node.kwargs, values, where)
    kwargs.pop("name", None)  # Keras 2 op lambdas record name=None
    kwargs.pop("training", None)  # always inference
    if layer.model is not None:
        flat = [a for a in _flatten(args) if isinstance(a, KTensor)]
        with ctx.net.scope(layer.name):
            return run_model(ctx, layer.model, flat, f"{wprefix}{layer.name}/", f"{where}/")
    fn = lookup(layer, where)
    call = Call(ctx, layer, wprefix, where)
    if not getattr(fn, "keeps_flat", False):
        # Only converters marked keeps_flat (Dense, identities) read a held-order Flatten: any other
        # (a per-feature scale, a Concatenate, glu's halves) needs the features in Keras' order.
        args, kwargs = _keras_order(call, args), _keras_order(call, kwargs)
    before = ctx.net.trt.num_layers
    with ctx.net.scope(layer.name):
        try:
            outs = _outputs(fn(call, *args, **kwargs), where)
            shapes = [o.shape for o in outs]  # TensorRT reports a layer it refused only when asked for shapes
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, MemoryError) as e:
            # A config with missing or mistyped entries (hand-edited, or from another Keras), or sizes past any
            # machine's (OverflowError: an int past C's; MemoryError: NumPy refused an allocation)
            raise KerasError(
                f"{layer.class_name} layer {where!r}: cannot convert its config/call "
                f"({type(e).__name__}: {e}); config keys: {sorted(layer.config)[:20]}"
            ) from e
        except RuntimeError as e:  # TensorRT refused a layer (its Python binding raises RuntimeError)
            given = [f"{x.t.dtype} {x.shape}" for x in _flatten([args, kwargs]) if isinstance(x, KTensor)]
            raise KerasError(
                f"{layer.class_name} layer {where!r}: TensorRT refused the layers it converts to ({e}); "
                f"its inputs: {given}"
            ) from e
    added = [ctx.net.trt.get_layer(i) for i in range(before, ctx.net.trt.num_layers)]
    kinds = [str(lyr.type).rsplit(".", 1)[-1] for lyr in added]
    ctx.records.append(Record(where, layer.class_name, shapes, call.params, kinds))
    return outs


def _keras_order(call: Call, value: Any) -> Any:
    if isinstance(value, KTensor) and value.flat is not None:
        return KTensor(call.logical(value), mask=value.mask)
    if isinstance(value, list):
        return [_keras_order(call, v) for v in value]
    if isinstance(value, dict):
        return {k: _keras_order(call, v) for k, v in value.items()}
    return value


def _flatten(value: Any) -> list:
    """A nested model's call arguments in the order of its inputs: keras.tree's, dicts by sorted key."""
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in _flatten(v)]
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in _flatten(value[k])]
    return [value]


def held_constant(x: KTensor, value: Any) -> np.ndarray:
    """A NumPy operand that broadcasts against Keras' shape of ``x``, laid out as ``x`` is held."""
    a = np.asarray(value, np.float32)
    if a.ndim == 0 or not x.cl:
        return a
    a = a.reshape((1,) * (x.rank - a.ndim) + a.shape)
    return np.ascontiguousarray(a.transpose(to_cf_perm(x.rank)))


def find_weight(layer: Call, part: str, leaf: str) -> str:
    """The key of weight ``leaf`` of sublayer ``part`` (``query``, ``forward``) of a wrapper layer.

    Legacy ``.h5`` files name them ``<layer>/<layer>/query/kernel`` or
    ``<layer>/<layer>/forward_lstm/lstm_cell/kernel``, ``.keras`` files
    ``<layer>/query/kernel``; a path component equal to ``part`` or starting
    with ``part_`` selects the sublayer.
    """
    base = f"{layer.wprefix}{layer.name}/"
    hits = []
    for key in layer.ctx.store:
        if key.startswith(base) and key.endswith("/" + leaf):
            comps = key[len(base) :].split("/")[:-1]
            if any(c == part or c.startswith(part + "_") for c in comps):
                hits.append(key)
    if len(hits) != 1:
        mine = [k[len(base) :] for k in layer.ctx.store if k.startswith(base)]
        raise WeightError(
            f"{layer.layer.class_name} layer {layer.where!r}: expected one weight {part}/{leaf}, found "
            f"{len(hits)} among {mine or 'no weights'}"
        )
    return hits[0]
