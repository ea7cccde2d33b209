"""Normalization: batch norm folded into one Scale layer, layer/group/instance norm
through ``INormalizationLayer``, and RMS norm written out with elementwise layers.

Arguments follow ``torch.nn.functional``; ``weight``/``bias`` are NumPy arrays
(stored as named constants) or Tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _trt, dtypes
from ..errors import ShapeError
from ..network import Network
from ..tensor import Tensor
from ._util import TensorLike, bitmask, unsqueeze_to
from .elementwise import add, div, mul, sqrt
from .linear import _weight_constant
from .reduce import mean

__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm"]


def _vector(value: TensorLike, n: int, what: str, arg: str) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.shape != (n,):
        raise ShapeError(f"{what}: {arg} has shape {a.shape}; expected ({n},), one value per channel")
    return a


def batch_norm(
    x: Tensor,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    eps: float = 1e-5,
    *,
    name: str | None = None,
) -> Tensor:
    """Inference batch norm over channel axis 1, folded into one Scale layer.

    ``scale = weight / sqrt(var + eps)`` and ``shift = bias - mean * scale`` are
    computed in float64 at definition time and stored as ``<layer>.scale`` and
    ``<layer>.shift``, so TensorRT sees y = x * scale + shift and can fuse it into
    a preceding convolution.

    Example::

        y = ops.batch_norm(x, sd["bn.running_mean"], sd["bn.running_var"], sd["bn.weight"], sd["bn.bias"])
    """
    net = x.net
    trt = _trt.load()
    x = net.to_compute(x)
    base = name or "batch_norm"
    what = f"batch_norm {base!r}"
    for arg, v in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if isinstance(v, Tensor):
            raise ShapeError(
                f"{what}: {arg} is a Tensor; batch_norm folds constant statistics at definition time. "
                "Write (x - mean) / sqrt(var + eps) * weight + bias with elementwise ops for tensor statistics."
            )
    if x.ndim < 2 or x.shape[1] < 0:
        raise ShapeError(f"{what}: input {x.name!r} {x.shape} needs a static channel axis 1 (N, C, ...)")
    c = x.shape[1]
    var = _vector(running_var, c, what, "running_var")
    scale = (np.ones(c) if weight is None else _vector(weight, c, what, "weight")) / np.sqrt(var + eps)
    shift = (np.zeros(c) if bias is None else _vector(bias, c, what, "bias")) - _vector(
        running_mean, c, what, "running_mean"
    ) * scale
    # IScaleLayer weights must have the input's type; NumPy cannot hold bfloat16, so
    # a bfloat16 network runs this one layer in float32.
    dt = net.compute_dtype if net.compute_dtype != "bfloat16" else "float32"
    src = net.cast(x, dt)
    lname = net.unique_name(base)
    npdt = dtypes.to_numpy(dt)
    layer = net.trt.add_scale_nd(
        src.trt,
        trt.ScaleMode.CHANNEL,
        net.keep(shift.astype(npdt), lname + ".shift"),
        net.keep(scale.astype(npdt), lname + ".scale"),
        trt.Weights(dtypes.to_trt(dt)),
        1,
    )
    return net.cast(net.register(layer, "batch_norm", lname, resolved=True), x.dtype)


def _affine(
    net: Network, value: TensorLike | None, fill: float, shape: tuple[int, ...], *, rank: int, full: str, what: str
) -> Tensor:
    """A scale/bias operand of ``rank`` whose trailing axes are ``shape`` (ones/zeros when None)."""
    if isinstance(value, Tensor):
        t = net.to_compute(value)
        if t.ndim > rank or tuple(t.shape[t.ndim - len(shape) :]) != shape:
            raise ShapeError(f"{what}: {full.rsplit('.', 1)[-1]} tensor {t.name!r} {t.shape} does not fit {shape}")
        return unsqueeze_to(t, rank)
    arr = np.full(shape, fill, dtype=np.float32) if value is None else np.asarray(value, dtype=np.float32)
    if arr.size != int(np.prod(shape)):
        raise ShapeError(f"{what}: {full.rsplit('.', 1)[-1]} has shape {arr.shape}; expected {shape}")
    view = (1,) * (rank - len(shape)) + shape
    return _weight_constant(net, arr.reshape(shape), view, full)


def _normalize(
    x: Tensor, scale: Tensor, bias: Tensor, *, mask: int, eps: float, groups: int, lname: str, kind: str
) -> Tensor:
    net = x.net
    layer = net.trt.add_normalization_v2(x.trt, scale.trt, bias.trt, mask)
    layer.epsilon = float(eps)
    layer.num_groups = int(groups)
    return net.register(layer, kind, lname, resolved=True)


def layer_norm(
    x: Tensor,
    normalized_shape: int | Sequence[int],
    weight: TensorLike | None = None,
    bias: TensorLike | None = None,
    eps: float = 1e-5,
    *,
    name: str | None = None,
) -> Tensor:
    """Normalize over the trailing ``normalized_shape`` axes, then scale and shift (torch F.layer_norm).

    Example::

        h = ops.layer_norm(x, 768, sd["ln.weight"], sd["ln.bias"])
    """
    net = x.net
    x = net.to_compute(x)
    shape = (int(normalized_shape),) if np.ndim(normalized_shape) == 0 else tuple(int(s) for s in normalized_shape)
    lname = net.op_name(name, "layer_norm", x)
    n = len(shape)
    if n == 0 or n > x.ndim or tuple(x.shape[x.ndim - n :]) != shape:
        raise ShapeError(
            f"layer_norm {lname!r}: normalized_shape {shape} must match the trailing axes of {x.name!r} {x.shape}"
        )
    what = f"layer_norm {lname!r}"
    scale = _affine(net, weight, 1.0, shape, rank=x.ndim, full=lname + ".weight", what=what)
    shift = _affine(net, bias, 0.0, shape, rank=x.ndim, full=lname + ".bias", what=what)
    mask = bitmask(range(x.ndim - n, x.ndim))
    return _normalize(x, scale, shift, mask=mask, eps=eps, groups=1, lname=lname, kind="layer_norm")


def _channel_norm(
    x: Tensor,
    groups: int | None,
    weight: TensorLike | None,
    bias: TensorLike | None,
    *,
    eps: float,
    name: str | None,
    kind: str,
) -> Tensor:
    net = x.net
    x = net.to_compute(x)
    base = name or kind
    lname = net.unique_name(base)
    what = f"{kind} {lname!r}"
    if x.ndim < 2 or x.shape[1] < 0:
        raise ShapeError(f"{what}: input {x.name!r} {x.shape} needs a static channel axis 1 (N, C, ...)")
    c = x.shape[1]
    if groups is not None and (groups < 1 or c % groups):
        raise ShapeError(f"{what}: num_groups={groups} must divide the {c} channels of {x.name!r} {x.shape}")
    if groups is None and x.ndim < 3:
        raise ShapeError(f"{what}: input {x.name!r} {x.shape} has no spatial axis to normalize over")
    src = x
    if x.ndim == 2:
        # (N, C) group norm: the normalization layer needs an axis after the channels.
        axes_t = net.constant(np.asarray([2], dtype=np.int64), base + ".axes", dtype="int64")
        src = net.register(net.trt.add_unsqueeze(x.trt, axes_t.trt), "unsqueeze", base + ".unsqueeze")
    affine = (c,) + (1,) * (src.ndim - 2)
    scale = _affine(net, weight, 1.0, affine, rank=src.ndim, full=lname + ".weight", what=what)
    shift = _affine(net, bias, 0.0, affine, rank=src.ndim, full=lname + ".bias", what=what)
    # With one group, TensorRT's num_groups=1 is a plain reduction over the mask:
    # the channel axis joins it (group norm), or stays out of it (instance norm).
    mask = bitmask(range(1 if groups == 1 else 2, src.ndim))
    if src is x:
        return _normalize(x, scale, shift, mask=mask, eps=eps, groups=groups or 1, lname=lname, kind=kind)
    out = _normalize(
        src, scale, shift, mask=mask, eps=eps, groups=groups or 1, lname=net.unique_name(base + ".norm"), kind=kind
    )
    return net.register(net.trt.add_squeeze(out.trt, axes_t.trt), kind, lname, resolved=True)


def group_norm(
    x: Tensor,
    num_groups: int,
    weight: TensorLike | None = None,
    bias: TensorLike | None = None,
    eps: float = 1e-5,
    *,
    name: str | None = None,
) -> Tensor:
    """Group norm on (N, C, ...): statistics per sample and group of C/num_groups channels,
    then a per-channel ``weight``/``bias`` (torch F.group_norm).

    One ``INormalizationLayer`` (v2: scale/bias shaped (1, C, 1, ...)) with ``num_groups`` set.
    """
    return _channel_norm(x, int(num_groups), weight, bias, eps=eps, name=name, kind="group_norm")


def instance_norm(
    x: Tensor,
    weight: TensorLike | None = None,
    bias: TensorLike | None = None,
    eps: float = 1e-5,
    *,
    name: str | None = None,
) -> Tensor:
    """Instance norm on (N, C, *spatial): statistics per sample and channel (torch F.instance_norm
    with ``use_input_stats=True``)."""
    return _channel_norm(x, None, weight, bias, eps=eps, name=name, kind="instance_norm")


def rms_norm(
    x: Tensor,
    normalized_shape: int | Sequence[int],
    weight: TensorLike | None = None,
    eps: float | None = None,
    *,
    name: str | None = None,
) -> Tensor:
    """x / sqrt(mean(x^2) + eps) * weight over the trailing ``normalized_shape`` axes (torch F.rms_norm).

    ``eps=None`` uses the machine epsilon of the compute dtype, as torch does.
    TensorRT's normalization layer always subtracts the mean, so this is written
    out with elementwise and reduce layers; they run in float32 whatever the
    compute dtype, and only the weight multiply runs in the compute dtype.
    """
    net = x.net
    x = net.to_compute(x)
    shape = (int(normalized_shape),) if np.ndim(normalized_shape) == 0 else tuple(int(s) for s in normalized_shape)
    base = name or "rms_norm"
    n = len(shape)
    if n == 0 or n > x.ndim or tuple(x.shape[x.ndim - n :]) != shape:
        raise ShapeError(
            f"rms_norm {base!r}: normalized_shape {shape} must match the trailing axes of {x.name!r} {x.shape}"
        )
    if eps is None:
        eps = float(np.finfo(np.float16 if x.dtype == "float16" else np.float32).eps)
        if x.dtype == "bfloat16":
            eps = 2.0**-7
    dims = tuple(range(x.ndim - n, x.ndim))
    # mean(x^2) overflows half precision once |x| > 256; the statistic runs in float32.
    with net.precision("float32"):
        x32 = net.to_compute(x)
        ms = mean(mul(x32, x32, name=base + ".square"), dims, True, name=base + ".mean")
        y = div(x32, sqrt(add(ms, float(eps), name=base + ".eps"), name=base + ".sqrt"), name=base + ".normalize")
    y = net.to_compute(y)
    if weight is None:
        return y
    full = f"{net.current_scope}.{base}.weight" if net.current_scope else f"{base}.weight"
    w = _affine(net, weight, 1.0, shape, rank=x.ndim, full=full, what=f"rms_norm {base!r}")
    return mul(y, w, name=base)
