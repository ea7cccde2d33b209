"""Keras pooling: Max/Average pooling 1-D to 3-D and the global pools.

Average pooling with 'same' divides by the real pixels only (Keras and
TensorFlow), which is ``count_include_pad=False``.
"""

from __future__ import annotations

from typing import Any

from .. import ops
from .graph import Call, KTensor
from .registry import converts

_MAX = {1: ops.max_pool1d, 2: ops.max_pool2d, 3: ops.max_pool3d}
_AVG = {1: ops.avg_pool1d, 2: ops.avg_pool2d, 3: ops.avg_pool3d}


def _ints(value: Any, nd: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),) * nd


def _pool(layer: Call, x: KTensor, nd: int, kind: str) -> KTensor:
    c = layer.config
    window = _ints(c.get("pool_size", 2), nd)
    strides = _ints(c["strides"], nd) if c.get("strides") is not None else window
    padding = str(c.get("padding", "valid")).lower()
    if len(window) != nd or len(strides) != nd or min(window + strides) < 1 or max(window + strides) > 1 << 14:
        raise layer.error(f"pool_size {window} and strides {strides} must be {nd} ints in 1..16384")
    t = layer.channels_first(x)
    if kind == "max":
        y = _MAX[nd](t, window, strides, padding)
    elif padding == "same" and layer.backend == "torch" and _asymmetric(t.shape[2:], window, strides):
        # Keras' torch backend pads an uneven 'same' average pool by replicating the edge, then
        # averages whole windows (keras/src/backend/torch/nn.py); TensorFlow and JAX count real pixels.
        pads = [_torch_same(i, k, s) for i, k, s in zip(t.shape[2:], window, strides)]
        t = ops.pad(t, [v for p in reversed(pads) for v in p], mode="replicate")
        y = _AVG[nd](t, window, strides, 0)
    else:
        y = _AVG[nd](t, window, strides, padding, count_include_pad=False)
    return layer.spatial_out(y)


def _torch_same(i: int, k: int, s: int) -> tuple[int, int]:
    total = k - 1 if s == 1 else max(0, ((i + s - 1) // s - 1) * s + k - i)
    return total // 2, total - total // 2


def _asymmetric(spatial: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    return any(a != b for a, b in (_torch_same(i, k, s) for i, k, s in zip(spatial, window, strides)))


for _nd in (1, 2, 3):
    for _kind, _cls in (("max", "MaxPooling"), ("avg", "AveragePooling")):

        def _make(nd: int = _nd, kind: str = _kind):
            def convert(layer: Call, x: KTensor) -> KTensor:
                return _pool(layer, x, nd, kind)

            return convert

        converts(f"{_cls}{_nd}D", f"{_cls.replace('Pooling', 'Pool')}{_nd}D")(_make())


def _global(layer: Call, x: KTensor, kind: str, mask: KTensor | None = None) -> KTensor:
    keep = bool(layer.config.get("keepdims", False))
    t = layer.channels_first(x)
    axes = list(range(2, t.ndim))
    m = mask.t if isinstance(mask, KTensor) else x.mask
    if kind == "avg" and m is not None and t.ndim == 3:
        # Keras' GlobalAveragePooling1D averages the unmasked steps only (a Masking layer, mask_zero).
        w = ops.unsqueeze(ops.cast(m, t.dtype), 1)  # (B, 1, T)
        y = ops.div(ops.sum(ops.mul(t, w), axes, keepdim=keep), ops.sum(w, axes, keepdim=keep))
    else:  # GlobalMaxPooling ignores the mask, as Keras does
        y = ops.mean(t, axes, keepdim=keep) if kind == "avg" else ops.amax(t, axes, keepdim=keep)
    return layer.spatial_out(y) if keep else KTensor(y)


for _nd in (1, 2, 3):
    converts(f"GlobalAveragePooling{_nd}D", f"GlobalAvgPool{_nd}D")(
        lambda layer, x, mask=None: _global(layer, x, "avg", mask)
    )
    converts(f"GlobalMaxPooling{_nd}D", f"GlobalMaxPool{_nd}D")(lambda layer, x, mask=None: _global(layer, x, "max"))
