"""Keras 3 operation layers (``keras.src.ops``: ``x + 3.0``) and Keras 2 ``TFOpLambda`` arithmetic.

Both record a function applied to tensors and Python numbers. The registry
keys them apart from layers of the same class name (the ``Add`` operation is
not the ``Add`` layer): kind ``'operation'`` for Keras 3, ``'tfop'`` for the
TensorFlow symbol a Keras 2 file names.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..tensor import Tensor
from .graph import Call, KTensor
from .registry import converts


def _binary(layer: Call, a: Any, b: Any, fn) -> KTensor:
    ka, kb = isinstance(a, KTensor), isinstance(b, KTensor)
    if ka and kb:
        (ta, tb), cl = layer.same_layout([a, b])
        return KTensor(fn(ta, tb), cl)
    x, other = (a, b) if ka else (b, a)
    if not isinstance(x, KTensor):
        raise layer.error("needs at least one tensor operand")
    if np.ndim(other) == 0:
        c = float(other)
        return layer.like(x, fn(x.t, c) if ka else fn(c, x.t))
    t, c = layer.logical(x), np.asarray(other, np.float32)
    return KTensor(fn(t, c) if ka else fn(c, t))


def _arg(layer: Call, args: tuple, kwargs: dict, i: int, names: tuple[str, ...]) -> Any:
    if len(args) > i:
        return args[i]
    for n in names:
        if n in kwargs:
            return kwargs[n]
    raise layer.error(f"missing operand {i} ({'/'.join(names)})")


_BINARY = {
    "Add": ops.add, "Subtract": ops.sub, "Multiply": ops.mul, "Divide": ops.div, "TrueDivide": ops.div,
    "Power": ops.pow, "Maximum": ops.maximum, "Minimum": ops.minimum,
}  # fmt: skip
_TF_BINARY = {
    "__operators__.add": ops.add, "math.add": ops.add, "math.subtract": ops.sub, "__operators__.sub": ops.sub,
    "math.multiply": ops.mul, "__operators__.mul": ops.mul, "math.truediv": ops.div, "math.divide": ops.div,
    "__operators__.truediv": ops.div, "math.pow": ops.pow, "math.maximum": ops.maximum, "math.minimum": ops.minimum,
}  # fmt: skip


def _make_binary(fn):
    def convert(layer: Call, *args: Any, **kwargs: Any) -> KTensor:
        a = _arg(layer, args, kwargs, 0, ("x", "x1", "a"))
        b = _arg(layer, args, kwargs, 1, ("y", "x2", "b"))
        return _binary(layer, a, b, fn)

    return convert


for _cls, _fn in _BINARY.items():
    converts(_cls, kind="operation")(_make_binary(_fn))
for _cls, _fn in _TF_BINARY.items():
    converts(_cls, kind="tfop")(_make_binary(_fn))

_UNARY = {
    "Negative": ops.neg, "Abs": ops.abs, "Absolute": ops.abs, "Sqrt": ops.sqrt, "Exp": ops.exp, "Log": ops.log,
    "Square": ops.square, "Tanh": ops.tanh, "Sigmoid": ops.sigmoid, "Relu": ops.relu, "Relu6": ops.relu6,
    "Silu": ops.silu, "Swish": ops.silu, "Erf": ops.erf, "Rsqrt": ops.rsqrt, "Floor": ops.floor,
    "Ceil": ops.ceil, "Round": ops.round, "Sign": ops.sign, "Sin": ops.sin, "Cos": ops.cos,
    "HardSigmoid": ops.hard_sigmoid, "Softplus": ops.softplus, "Softsign": ops.softsign,
}  # fmt: skip
_TF_UNARY = {
    "math.negative": ops.neg, "__operators__.neg": ops.neg, "math.abs": ops.abs, "math.sqrt": ops.sqrt,
    "math.exp": ops.exp, "math.log": ops.log, "math.square": ops.square, "math.tanh": ops.tanh,
    "math.sigmoid": ops.sigmoid, "nn.relu": ops.relu, "nn.relu6": ops.relu6, "nn.silu": ops.silu,
    "math.erf": ops.erf, "math.rsqrt": ops.rsqrt, "math.softplus": ops.softplus,
}  # fmt: skip


# Config keys every operation entry carries; any other option would change the math.
_PLAIN = frozenset({"name", "dtype", "trainable", "function", "module", "registered_name"})


def _make_unary(fn):
    def convert(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
        options = {k: v for k, v in {**layer.config, **kwargs}.items() if k not in _PLAIN and v not in (None, 0, False)}
        if args or options:
            raise layer.error(f"options {options or args} are not supported; only its plain form converts")
        return layer.like(x, fn(x.t))

    return convert


for _cls, _fn in _UNARY.items():
    converts(_cls, kind="operation")(_make_unary(_fn))
for _cls, _fn in _TF_UNARY.items():
    converts(_cls, kind="tfop")(_make_unary(_fn))


def _gelu(layer: Call, x: KTensor, kwargs: dict, default: bool) -> KTensor:
    approximate = bool(kwargs.get("approximate", layer.config.get("approximate", default)))
    return layer.like(x, ops.gelu(x.t, "tanh" if approximate else "none"))


@converts("Gelu", kind="operation")
def gelu_operation(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
    """``keras.ops.gelu``: its ``approximate`` defaults to True (the tanh form), unlike the activation."""
    return _gelu(layer, x, {"approximate": args[0]} if args else kwargs, True)


@converts("nn.gelu", kind="tfop")
def gelu_tfop(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
    """``tf.nn.gelu``: ``approximate`` defaults to False (the erf form)."""
    return _gelu(layer, x, {"approximate": args[0]} if args else kwargs, False)


def _axes(value: Any, rank: int) -> list[int] | None:
    if value is None:
        return None
    vals = value if isinstance(value, (list, tuple)) else [value]
    return sorted(int(v) % rank for v in vals)


def _reduce(fn):
    def convert(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
        axis = args[0] if args else kwargs.get("axis", layer.config.get("axis"))
        keep = bool(args[1] if len(args) > 1 else kwargs.get("keepdims", layer.config.get("keepdims", False)))
        axes = _axes(axis, x.rank)
        if axes is None:
            axes = list(range(x.rank))
        if keep:
            return layer.like(x, fn(x.t, [layer.axis(x, a) for a in axes], keepdim=True))
        return KTensor(fn(layer.logical(x), axes, keepdim=False))

    return convert


for _cls, _fn in {"Mean": ops.mean, "Sum": ops.sum, "Max": ops.amax, "Min": ops.amin}.items():
    converts(_cls, kind="operation")(_reduce(_fn))
for _cls, _fn in {"math.reduce_mean": ops.mean, "math.reduce_sum": ops.sum, "math.reduce_max": ops.amax}.items():
    converts(_cls, kind="tfop")(_reduce(_fn))


@converts("Reshape", kind="operation")
@converts("reshape", kind="tfop")
def reshape_op(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
    shape = args[0] if args else kwargs.get("newshape", kwargs.get("shape", layer.config.get("newshape")))
    shape = [(-1 if v is None else int(v)) for v in shape]
    return KTensor(ops.reshape(layer.logical(x), shape))


@converts("Transpose", kind="operation")
@converts("compat.v1.transpose", "transpose", "linalg.matrix_transpose", kind="tfop")
def transpose_op(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
    axes = args[0] if args else kwargs.get("axes", kwargs.get("perm", layer.config.get("axes")))
    t = layer.logical(x)
    perm = tuple(reversed(range(t.ndim))) if axes is None else tuple(int(a) for a in axes)
    return KTensor(ops.permute(t, perm))


@converts("Concatenate", kind="operation")
@converts("concat", kind="tfop")
def concat_op(layer: Call, xs: list, *args: Any, **kwargs: Any) -> KTensor:
    axis = int(args[0] if args else kwargs.get("axis", layer.config.get("axis", 0)))
    ts = [layer.logical(x) for x in xs]
    return KTensor(ops.concat(ts, axis % ts[0].ndim))


@converts("Matmul", kind="operation")
@converts("linalg.matmul", "__operators__.matmul", kind="tfop")
def matmul_op(layer: Call, a: Any, b: Any = None, **kwargs: Any) -> KTensor:
    b = kwargs.get("b", kwargs.get("x2", b))
    ta = layer.logical(a) if isinstance(a, KTensor) else np.asarray(a, np.float32)
    tb = layer.logical(b) if isinstance(b, KTensor) else np.asarray(b, np.float32)
    return KTensor(ops.matmul(ta, tb))


@converts("ExpandDims", kind="operation")
@converts("expand_dims", kind="tfop")
def expand_dims_op(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
    axis = int(args[0] if args else kwargs.get("axis", layer.config.get("axis")))
    t = layer.logical(x)
    return KTensor(ops.unsqueeze(t, axis % (t.ndim + 1)))


@converts("Squeeze", kind="operation")
@converts("squeeze", kind="tfop")
def squeeze_op(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
    axis = args[0] if args else kwargs.get("axis", layer.config.get("axis"))
    t = layer.logical(x)
    return KTensor(ops.squeeze(t, None if axis is None else _axes(axis, t.ndim)))


@converts("Softmax", kind="operation")
@converts("nn.softmax", kind="tfop")
def softmax_op(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
    axis = int(args[0] if args else kwargs.get("axis", layer.config.get("axis", -1)))
    return layer.like(x, ops.softmax(x.t, layer.axis(x, axis)))


@converts("Clip", kind="operation")
@converts("clip_by_value", kind="tfop")
def clip_op(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
    lo = args[0] if args else kwargs.get("x_min", kwargs.get("clip_value_min", layer.config.get("x_min")))
    hi = args[1] if len(args) > 1 else kwargs.get("x_max", kwargs.get("clip_value_max", layer.config.get("x_max")))
    return layer.like(x, ops.clip(x.t, float(lo), float(hi)))


def _key(value: Any) -> Any:
    """A serialized slicing key: Keras 3 ``{"class_name": "__slice__", ...}``, Keras 2 ``{"start":..}`` dicts."""
    if isinstance(value, dict):
        cfg = value.get("config", value)
        if value.get("class_name") in ("__slice__", "slice") or {"start", "stop", "step"} <= set(cfg):
            return slice(cfg.get("start"), cfg.get("stop"), cfg.get("step"))
        if value.get("class_name") == "__ellipsis__":
            return Ellipsis
    if isinstance(value, (list, tuple)):
        return tuple(_key(v) for v in value)
    if value == "...":
        return Ellipsis
    return value


@converts("GetItem", kind="operation")
@converts("__operators__.getitem", kind="tfop")
def getitem_op(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
    key = _key(args[0] if args else kwargs.get("slice_spec", kwargs.get("key")))
    t: Tensor = layer.logical(x)
    return KTensor(t[key])


_COMPARE = {
    "NotEqual": ops.not_equal, "Equal": ops.equal, "Greater": ops.greater, "Less": ops.less,
    "GreaterEqual": ops.greater_equal, "LessEqual": ops.less_equal,
}  # fmt: skip
_TF_COMPARE = {"math.not_equal": ops.not_equal, "math.equal": ops.equal, "math.greater": ops.greater,
               "math.less": ops.less}  # fmt: skip
for _cls, _fn in _COMPARE.items():
    converts(_cls, kind="operation")(_make_binary(_fn))
for _cls, _fn in _TF_COMPARE.items():
    converts(_cls, kind="tfop")(_make_binary(_fn))


def _bool_reduce(fn):
    def convert(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
        t = x.t if x.t.dtype != "bool" else ops.cast(x.t, "float32")
        t = ops.cast(ops.not_equal(t, 0.0), "float32")
        r = _reduce(fn)(layer, KTensor(t, x.cl), *args, **kwargs)
        return KTensor(ops.greater(r.t, 0.5), r.cl)

    return convert


converts("Any", kind="operation")(_bool_reduce(ops.amax))
converts("All", kind="operation")(_bool_reduce(ops.amin))
converts("math.reduce_any", kind="tfop")(_bool_reduce(ops.amax))


@converts("LogicalAnd", "LogicalOr", kind="operation")
def logical_op(layer: Call, a: KTensor, b: KTensor) -> KTensor:
    fn = ops.logical_and if layer.layer.class_name == "LogicalAnd" else ops.logical_or
    return _binary(layer, a, b, fn)


@converts("LogicalNot", kind="operation")
def logical_not_op(layer: Call, x: KTensor) -> KTensor:
    return layer.like(x, ops.logical_not(x.t))


@converts("Cast", kind="operation")
@converts("cast", kind="tfop")
def cast_op(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
    dtype = str(kwargs.get("dtype", layer.config.get("dtype", "float32")))
    dt = {"float64": "float32", "int64": "int32", "bool": "bool"}.get(dtype, dtype)
    return layer.like(x, ops.cast(x.t, dt))


@converts("Where", kind="operation")
def where_op(layer: Call, cond: KTensor, a: Any = None, b: Any = None) -> KTensor:
    ts = [v for v in (cond, a, b) if isinstance(v, KTensor)]
    held, cl = layer.same_layout(ts)
    it = iter(held)
    vals = [next(it) if isinstance(v, KTensor) else float(v) for v in (cond, a, b)]
    return KTensor(ops.where(*vals), cl)


def _filled_like(value: float):
    def convert(layer: Call, x: KTensor, *args: Any, **kwargs: Any) -> KTensor:
        dtype = str(kwargs.get("dtype") or layer.config.get("dtype") or "float32")
        dt = {"float64": "float32", "int64": "int32"}.get(dtype, dtype)
        # where(x == x, v, v) is v wherever x is, NaN and inf included (x * 0 is not)
        same = ops.equal(x.t, x.t)
        return layer.like(x, ops.cast(ops.where(same, value, value), dt))

    return convert


# Keras' masks of merged tensors (Concatenate.compute_mask) are built from these on KerasTensors.
converts("ZerosLike", kind="operation")(_filled_like(0.0))
converts("OnesLike", kind="operation")(_filled_like(1.0))


# Keras 3 operations whose options live in the config (Operation.get_config records the call's arguments).
@converts("LeakyRelu", kind="operation")
def leaky_relu_op(layer: Call, x: KTensor) -> KTensor:
    return layer.like(x, ops.leaky_relu(x.t, float(layer.config.get("negative_slope", 0.2))))


@converts("Elu", kind="operation")
def elu_op(layer: Call, x: KTensor) -> KTensor:
    return layer.like(x, ops.elu(x.t, float(layer.config.get("alpha", 1.0))))


@converts("LogSoftmax", kind="operation")
def log_softmax_op(layer: Call, x: KTensor) -> KTensor:
    return layer.like(x, ops.log_softmax(x.t, layer.axis(x, int(layer.config.get("axis", -1)))))


@converts("Swapaxes", kind="operation")
def swapaxes_op(layer: Call, x: KTensor) -> KTensor:
    t = layer.logical(x)
    return KTensor(ops.transpose(t, int(layer.config["axis1"]) % t.ndim, int(layer.config["axis2"]) % t.ndim))


@converts("Moveaxis", kind="operation")
def moveaxis_op(layer: Call, x: KTensor) -> KTensor:
    t = layer.logical(x)
    src, dst = (_axes_list(layer.config[k], t.ndim) for k in ("source", "destination"))
    if len(src) != len(dst):
        raise layer.error(f"source {src} and destination {dst} name different numbers of axes")
    perm = [a for a in range(t.ndim) if a not in src]  # numpy.moveaxis: the others keep their order
    for d, s in sorted(zip(dst, src)):
        perm.insert(d, s)
    return KTensor(ops.permute(t, tuple(perm)))


def _axes_list(value: Any, rank: int) -> list[int]:
    return [int(v) % rank for v in (value if isinstance(value, (list, tuple)) else [value])]


@converts("Stack", kind="operation")
def stack_op(layer: Call, xs: list) -> KTensor:
    ts = [layer.logical(x) for x in xs]
    return KTensor(ops.stack(ts, int(layer.config.get("axis", 0)) % (ts[0].ndim + 1)))


def _moments(layer: Call, x: KTensor, root: bool) -> KTensor:
    t = layer.logical(x)
    axes = _axes(layer.config.get("axis"), t.ndim) or list(range(t.ndim))
    keep = bool(layer.config.get("keepdims", False))
    fn = ops.std if root else ops.var
    return KTensor(fn(t, axes, correction=0, keepdim=keep))  # NumPy's (and Keras') population moments


converts("Var", kind="operation")(lambda layer, x: _moments(layer, x, root=False))
converts("Std", kind="operation")(lambda layer, x: _moments(layer, x, root=True))


@converts("Logsumexp", kind="operation")
def logsumexp_op(layer: Call, x: KTensor) -> KTensor:
    t = layer.logical(x)
    axes = _axes(layer.config.get("axis"), t.ndim) or list(range(t.ndim))
    top = ops.amax(t, axes, keepdim=True)  # subtracted first so exp cannot overflow
    y = ops.add(ops.log(ops.sum(ops.exp(ops.sub(t, top)), axes, keepdim=True)), top)
    return KTensor(y if layer.config.get("keepdims") else ops.squeeze(y, axes))


@converts("Einsum", kind="operation")
def einsum_op(layer: Call, *operands: Any) -> KTensor:
    ts = [layer.logical(v) if isinstance(v, KTensor) else np.asarray(v, np.float32) for v in operands]
    return KTensor(ops.einsum(str(layer.config["subscripts"]), *ts))
