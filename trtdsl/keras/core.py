"""Core Keras layers: inputs, Dense/EinsumDense, activations, identity layers, preprocessing, Embedding."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..tensor import Tensor
from ..weights import layout
from ..weights.keras_config import quantization_mode
from .graph import Call, KTensor, held_constant
from .registry import converts

# Identity at inference: noise, dropout and regularizers only act while training.
IDENTITY = [
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise", "GaussianDropout",
    "AlphaDropout", "ActivityRegularization", "Identity", "StochasticDepth",
]  # fmt: skip


# Image augmentation (keras.layers.Random*, RandAugment, AugMix, Solarization; Keras 3 class names, which Keras 2's share):
# each transforms images only when training (its transform_images returns them otherwise; the sweep case
# augmentation_is_identity_at_inference checks Keras' prediction). Not here: RandomCrop (reshaping.py: an identity
# only for images of the crop's size, where Keras 2 and 3 agree), AutoContrast and Equalization (they
# are not random), CutMix/MixUp, which mix the samples of a batch, and Keras 2's RandomHeight/RandomWidth (not
# checked: Keras 3 has no such layers, and Keras 2 cannot be installed here).
AUGMENTATION = [
    "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomContrast", "RandomBrightness",
    "RandomGrayscale", "RandomHue", "RandomSaturation", "RandomSharpness", "RandomShear", "RandomColorJitter",
    "RandomErasing", "RandomGaussianBlur", "RandomPerspective", "RandomInvert", "RandomPosterization",
    "RandomColorDegeneration", "RandomElasticTransform", "Solarization", "RandAugment", "AugMix",
]  # fmt: skip


@converts(*IDENTITY, *AUGMENTATION)
def identity(layer: Call, x: KTensor, **_: Any) -> KTensor:
    return x


identity.keeps_flat = True  # type: ignore[attr-defined]  # passes a held-order Flatten on (graph._call)


def _softmax(t: Tensor, axis: int) -> Tensor:
    return ops.softmax(t, axis)


def _hard_sigmoid(layer: Call, t: Tensor) -> Tensor:
    # Keras 2 used 0.2 * x + 0.5; Keras 3 uses relu6(x + 3) / 6 (keras-team/keras, keras/src/activations/activations.py).
    return ops.hard_sigmoid(t, alpha=0.2 if layer.keras_major < 3 else 1 / 6, beta=0.5)


def _gelu(t: Tensor, approximate: bool = False) -> Tensor:
    return ops.gelu(t, "tanh" if approximate else "none")


# name -> fn(layer, t, axis): axis is where Keras' last axis is held (softmax-like ones need it)
ACTIVATIONS: dict[str, Any] = {
    "linear": lambda layer, t, axis: t,
    "relu": lambda layer, t, axis: ops.relu(t),
    "relu6": lambda layer, t, axis: ops.relu6(t),
    "sigmoid": lambda layer, t, axis: ops.sigmoid(t),
    "tanh": lambda layer, t, axis: ops.tanh(t),
    "softmax": lambda layer, t, axis: _softmax(t, axis),
    "log_softmax": lambda layer, t, axis: ops.log_softmax(t, axis),
    "softplus": lambda layer, t, axis: ops.softplus(t),
    "softsign": lambda layer, t, axis: ops.softsign(t),
    "selu": lambda layer, t, axis: ops.selu(t),
    "elu": lambda layer, t, axis: ops.elu(t),
    "celu": lambda layer, t, axis: ops.add(ops.relu(t), ops.minimum(ops.elu(t), 0.0)),
    "exponential": lambda layer, t, axis: ops.exp(t),
    "hard_sigmoid": lambda layer, t, axis: _hard_sigmoid(layer, t),
    "hard_silu": lambda layer, t, axis: ops.hard_swish(t),
    "hard_swish": lambda layer, t, axis: ops.hard_swish(t),
    "silu": lambda layer, t, axis: ops.silu(t),
    "swish": lambda layer, t, axis: ops.silu(t),
    "gelu": lambda layer, t, axis: _gelu(t),
    "mish": lambda layer, t, axis: ops.mish(t),
    "leaky_relu": lambda layer, t, axis: ops.leaky_relu(t, 0.2),
    "log_sigmoid": lambda layer, t, axis: ops.neg(ops.softplus(ops.neg(t))),
    "hard_tanh": lambda layer, t, axis: ops.clip(t, -1.0, 1.0),
    "tanh_shrink": lambda layer, t, axis: ops.sub(t, ops.tanh(t)),
    "squareplus": lambda layer, t, axis: ops.mul(ops.add(t, ops.sqrt(ops.add(ops.mul(t, t), 4.0))), 0.5),
    "sparse_plus": lambda layer, t, axis: ops.where(
        ops.less_equal(t, -1.0),
        0.0,
        ops.where(ops.greater_equal(t, 1.0), t, ops.mul(ops.square(ops.add(t, 1.0)), 0.25)),
    ),
    "soft_shrink": lambda layer, t, axis: ops.where(
        ops.greater(t, 0.5), ops.sub(t, 0.5), ops.where(ops.less(t, -0.5), ops.add(t, 0.5), ops.mul(t, 0.0))
    ),
    "hard_shrink": lambda layer, t, axis: ops.where(ops.greater(ops.abs(t), 0.5), t, ops.mul(t, 0.0)),
    "sparse_sigmoid": lambda layer, t, axis: ops.clip(ops.mul(ops.add(t, 1.0), 0.5), 0.0, 1.0),
    "glu": lambda layer, t, axis: _glu(t, axis),
    "sparsemax": lambda layer, t, axis: _sparsemax(t, axis),
}


def _glu(t: Tensor, axis: int) -> Tensor:
    """``a * sigmoid(b)`` for the two halves of Keras' last axis (keras.activations.glu)."""
    a, b = ops.chunk(t, 2, axis)
    return ops.mul(a, ops.sigmoid(b))


def _sparsemax(t: Tensor, axis: int) -> Tensor:
    """Keras' ``sparsemax`` over ``axis``, as every Keras 3 backend computes it, without a sort.

    Element i is in the support when ``1 + z_i * r_i > sum(z_j >= z_i)``, with ``r_i`` its
    rank ``#{j: z_j >= z_i}``. Keras (``keras/src/backend/*/nn.py``) then takes
    ``tau = (sum of the support's cumulative sums - 1) / k``, not the published
    ``(cumsum_k - 1) / k``; the sum of cumulative sums is ``sum z_i (k - r_i + 1)``, so
    that is what is computed here, to match Keras' predictions (equal values share one
    rank, where Keras' sort orders them: ties may differ). The pairwise comparison costs
    n^2 per row, fine for the class counts sparsemax is used on.
    """
    zi = ops.unsqueeze(t, axis + 1)  # [..., n, 1, ...]: z_i along axis
    zj = ops.unsqueeze(t, axis)  # [..., 1, n, ...]: z_j along axis + 1
    ge = ops.cast(ops.greater_equal(zj, zi), t.dtype)
    count = ops.sum(ge, axis + 1)
    above = ops.sum(ops.mul(ge, zj), axis + 1)
    support = ops.cast(ops.greater(ops.add(ops.mul(t, count), 1.0), above), t.dtype)
    k = ops.sum(support, axis, keepdim=True)
    weight = ops.add(ops.sub(k, count), 1.0)  # k - r_i + 1: how many cumulative sums hold z_i
    tau = ops.div(ops.sub(ops.sum(ops.mul(ops.mul(support, t), weight), axis, keepdim=True), 1.0), k)
    return ops.relu(ops.sub(t, tau))


def activation_name(value: Any) -> str:
    """The activation of a config entry: a string, or Keras 3's serialized function object."""
    if value is None:
        return "linear"
    if isinstance(value, dict):
        value = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
    return str(value)


def activate(layer: Call, x: KTensor, t: Tensor | None = None, value: Any = None) -> KTensor:
    """Apply the activation named in the layer's config (or ``value``) to ``t`` (default ``x.t``) held like ``x``."""
    t = x.t if t is None else t
    name = activation_name(layer.config.get("activation") if value is None else value)
    fn = ACTIVATIONS.get(name)
    if fn is None:
        from ..errors import did_you_mean

        raise layer.error(
            f"activation {name!r} is not supported.{did_you_mean(name, ACTIVATIONS)} Supported: {', '.join(ACTIVATIONS)}"
        )
    if name == "linear":
        return KTensor(t, x.cl, mask=x.mask)
    with layer.net.scope(name):
        return KTensor(fn(layer, t, layer.axis(x, -1)), x.cl, mask=x.mask)


@converts("Activation")
def activation(layer: Call, x: KTensor) -> KTensor:
    return activate(layer, x)


@converts("ReLU")
def relu(layer: Call, x: KTensor) -> KTensor:
    c = layer.config
    max_value, slope, thr = c.get("max_value"), float(c.get("negative_slope") or 0.0), float(c.get("threshold") or 0.0)
    t = x.t
    if thr == 0.0 and slope == 0.0:
        y = ops.relu(t) if max_value is None else ops.clip(t, 0.0, float(max_value))
    else:  # Keras: x >= max -> max; thr <= x < max -> x; x < thr -> slope * (x - thr)
        y = ops.where(ops.greater_equal(t, thr), t, ops.mul(ops.sub(t, thr), slope))
        if max_value is not None:
            y = ops.minimum(y, float(max_value))
    return layer.like(x, y)


@converts("LeakyReLU")
def leaky_relu(layer: Call, x: KTensor) -> KTensor:
    c = layer.config
    # Keras 2 named the slope alpha (default 0.3); Keras 3 negative_slope (keras-team/keras, keras/src/layers/activations/leaky_relu.py).
    slope = c.get("negative_slope", c.get("alpha", 0.3))
    return layer.like(x, ops.leaky_relu(x.t, float(slope)))


@converts("ELU")
def elu(layer: Call, x: KTensor) -> KTensor:
    return layer.like(x, ops.elu(x.t, float(layer.config.get("alpha", 1.0))))


@converts("PReLU")
def prelu(layer: Call, x: KTensor) -> KTensor:
    alpha = layer.take("alpha")  # shaped like the Keras input without the batch (1 on shared axes)
    a = held_constant(x, alpha.reshape((1, *alpha.shape)))
    t = x.t
    return layer.like(x, ops.add(ops.relu(t), ops.mul(ops.minimum(t, 0.0), a)))


@converts("Softmax")
def softmax(layer: Call, x: KTensor, mask: KTensor | None = None, **_: Any) -> KTensor:
    axis = layer.config.get("axis", -1)
    axes = axis if isinstance(axis, list) else [axis]
    t = x.t
    if mask is not None:
        m = layer.logical(mask) if not x.cl else layer.channels_first(mask, "channels_last")
        keep = m if m.dtype == "bool" else ops.greater(m, 0.5)
        t = ops.where(keep, t, -3e4 if layer.net.compute_dtype == "float16" else -1e9)
    if len(axes) == 1:
        return layer.like(x, ops.softmax(t, layer.axis(x, axes[0])))
    held = [layer.axis(x, a) for a in axes]
    shifted = ops.sub(t, ops.amax(t, held, keepdim=True))
    e = ops.exp(shifted)
    return layer.like(x, ops.div(e, ops.sum(e, held, keepdim=True)))


def _quantized(layer: Call) -> bool:
    mode = quantization_mode(layer.config)
    if mode not in (None, "int8"):
        raise layer.error(f"quantization mode {mode!r} is not supported (int8 only)")
    return mode == "int8"


def floating(x: KTensor) -> KTensor:
    """``x`` cast to float32 when it holds integers or booleans: Keras leaves integer inputs as they
    are (DTypePolicy.convert_input) and the backend's matmul promotes them; TensorRT's refuses them."""
    if x.t.dtype not in ("int32", "int64", "int8", "uint8", "bool"):
        return x
    return KTensor(ops.cast(x.t, "float32"), x.cl, flat=x.flat, mask=x.mask)


@converts("Dense")
def dense(layer: Call, x: KTensor) -> KTensor:
    from .quantized import int8_dense

    c = layer.config
    x = floating(x)
    units = int(c["units"])
    if _quantized(layer):
        return activate(layer, x, int8_dense(layer, layer.logical(x), units))
    if x.flat is not None:
        # Flatten of a tensor held (N, C, *spatial): permute the kernel rows instead of the data.
        kernel = layer.take("kernel", (int(np.prod(x.flat)), units))
        w = layout.nhwc_flatten_rows(layout.keras_dense(kernel), x.flat, axis=1)
        return activate(layer, KTensor(ops.linear(x.t, w, layer.bias(units))))
    kernel = layer.take("kernel", (None, units))
    bias = layer.bias(units)
    if x.cl:  # Dense on the channels of an image (ConvNeXt's pointwise layers) is a 1x1 convolution
        nd = x.rank - 2
        k = layout.keras_dense(kernel).reshape(units, -1, *([1] * nd))
        conv = {1: ops.conv1d, 2: ops.conv2d, 3: ops.conv3d}[nd]
        return activate(layer, KTensor(conv(x.t, k, bias), cl=True))
    return activate(layer, KTensor(ops.linear(layer.logical(x), layout.keras_dense(kernel), bias), mask=x.mask))


dense.keeps_flat = True  # type: ignore[attr-defined]  # permutes its kernel rows for a held-order Flatten


@converts("EinsumDense")
def einsum_dense(layer: Call, x: KTensor) -> KTensor:
    c = layer.config
    x = floating(x)
    if _quantized(layer):
        from .quantized import int8_einsum

        return activate(layer, KTensor(int8_einsum(layer, layer.logical(x))))
    equation = str(c["equation"])
    kernel = layer.take("kernel")
    y = ops.einsum(equation, layer.logical(x), np.asarray(kernel, np.float32))
    bias = layer.take("bias") if c.get("bias_axes") else None
    if bias is not None:
        y = ops.add(y, np.asarray(bias, np.float32))
    return activate(layer, KTensor(y))


@converts("Rescaling")
def rescaling(layer: Call, x: KTensor) -> KTensor:
    x = floating(x)  # Keras: ops.cast(inputs, compute_dtype) * scale + offset, so uint8 images scale as floats
    scale, offset = layer.config.get("scale", 1.0), layer.config.get("offset", 0.0)
    scale = scale.get("config", {}).get("value", scale) if isinstance(scale, dict) else scale
    offset = offset.get("config", {}).get("value", offset) if isinstance(offset, dict) else offset
    t = ops.mul(x.t, held_constant(x, scale))
    if np.any(np.asarray(offset) != 0):
        t = ops.add(t, held_constant(x, offset))
    return layer.like(x, t)


def _keep_shape(rank: int, axis: Any) -> list[int]:
    axes = axis if isinstance(axis, list) else ([] if axis is None else [axis])
    return sorted(a % rank for a in axes)


@converts("Normalization")
def normalization(layer: Call, x: KTensor) -> KTensor:
    c = layer.config
    x = floating(x)  # Keras converts the input to its compute dtype first
    rank = x.rank
    keep = _keep_shape(rank, c.get("axis", -1))
    if c.get("mean") is not None:
        mean, var = np.asarray(c["mean"], np.float64), np.asarray(c["variance"], np.float64)
    else:
        mean, var = layer.take("mean").astype(np.float64), layer.take("variance").astype(np.float64)
        layer.optional("count")
    shape = [1] * rank
    if mean.ndim:
        for i in range(1, mean.ndim + 1):
            shape[keep[-i]] = mean.shape[-i]
    mean, var = mean.reshape(shape), var.reshape(shape)
    # Keras: (x - mean) / max(sqrt(var), epsilon); invert=True maps back.
    std = np.maximum(np.sqrt(var), 1e-7)
    if c.get("invert"):
        return layer.like(x, ops.add(ops.mul(x.t, held_constant(x, std)), held_constant(x, mean)))
    return layer.like(x, ops.div(ops.sub(x.t, held_constant(x, mean)), held_constant(x, std)))


@converts("LayerScale")
def layer_scale(layer: Call, x: KTensor) -> KTensor:
    gamma = layer.take("gamma")
    return layer.like(x, ops.mul(x.t, held_constant(x, gamma)))


@converts("Embedding")
def embedding(layer: Call, x: KTensor) -> KTensor:
    c = layer.config
    ids = layer.logical(x)
    if ids.dtype not in ("int32", "int64"):
        ids = ops.cast(ids, "int32")
    if _quantized(layer):
        table = layer.take("embeddings").astype(np.float32) / layer.take("embeddings_scale")[:, None]
    else:
        table = layer.take("embeddings")
    out = KTensor(ops.embedding(ids, np.asarray(table, np.float32)))
    if c.get("mask_zero"):
        out.mask = ops.not_equal(ids, 0)
    return out


@converts("Masking")
def masking(layer: Call, x: KTensor) -> KTensor:
    value = float(layer.config.get("mask_value", 0.0))
    t = layer.logical(x)
    keep = ops.amax(ops.not_equal(t, value).cast("float32"), -1, keepdim=True)  # (B, T, 1): any feature differs
    out = ops.mul(t, keep)
    return KTensor(out, mask=ops.greater(ops.squeeze(keep, -1), 0.5))


@converts("UnitNormalization")
def unit_normalization(layer: Call, x: KTensor) -> KTensor:
    axes = [layer.axis(x, a) for a in _keep_shape(x.rank, layer.config.get("axis", -1))]
    t = x.t
    # keras.ops.normalize(order=2, epsilon=1e-12): x * min(rsqrt(sum(x^2)), 1 / epsilon)
    ss = ops.sum(ops.mul(t, t), axes, keepdim=True)
    limit = 1e12 if layer.net.compute_dtype == "float32" else 6e4  # 1/epsilon, within float16's range
    return layer.like(x, ops.mul(t, ops.minimum(ops.rsqrt(ss), limit)))
