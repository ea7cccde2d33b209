"""Keras reshaping layers: Reshape, Flatten, Permute, RepeatVector, padding, cropping, up-sampling, resizing,
CenterCrop and RandomCrop."""

from __future__ import annotations

from typing import Any

from .. import ops
from .core import floating
from .graph import Call, KTensor, to_cl_perm
from .registry import converts


@converts("Reshape")
def reshape(layer: Call, x: KTensor) -> KTensor:
    target = [int(v) for v in layer.config["target_shape"]]
    return KTensor(ops.reshape(layer.logical(x), (-1 if x.t.shape[0] < 0 else x.t.shape[0], *target)))


@converts("Flatten")
def flatten(layer: Call, x: KTensor) -> KTensor:
    fmt = layer.config.get("data_format") or "channels_last"
    if x.rank <= 2:
        return x
    if fmt == "channels_first":
        # Keras moves the channels last before flattening (to keep weight order across formats):
        # the Keras tensor (N, C, *spatial) is flattened in (*spatial, C) order.
        held = layer.logical(x)
        if min(held.shape[1:]) > 0:
            return KTensor(ops.flatten(held, 1), flat=(*held.shape[2:], held.shape[1]))
        return KTensor(ops.flatten(ops.permute(held, to_cl_perm(held.ndim)), 1))
    if x.cl and min(x.shape[1:]) > 0:
        # Held (N, C, *spatial): flatten as held; a Dense after it permutes its rows (see graph.KTensor.flat).
        return KTensor(ops.flatten(x.t, 1), flat=tuple(x.shape[1:]))
    return KTensor(ops.flatten(layer.logical(x), 1))


@converts("Permute")
def permute(layer: Call, x: KTensor) -> KTensor:
    dims = [int(d) for d in layer.config["dims"]]
    return KTensor(ops.permute(layer.logical(x), (0, *dims)))


@converts("RepeatVector")
def repeat_vector(layer: Call, x: KTensor) -> KTensor:
    n = int(layer.config["n"])
    t = layer.logical(x)
    return KTensor(ops.repeat(ops.unsqueeze(t, 1), 1, n, 1))


def _pairs(value: Any, nd: int) -> list[tuple[int, int]]:
    if isinstance(value, int):
        return [(value, value)] * nd
    if nd == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
        return [(int(value[0]), int(value[1]))]  # ZeroPadding1D((before, after))
    out = []
    for v in value:
        out.append((int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1])))
    if len(out) != nd:
        raise ValueError(f"expected {nd} per-axis values, got {value!r}")
    return out


def _spatial_pad(layer: Call, x: KTensor, nd: int, key: str) -> tuple[Any, list[tuple[int, int]]]:
    try:
        pairs = _pairs(layer.config[key], nd)
    except (ValueError, TypeError, KeyError) as e:
        raise layer.error(f"bad {key} {layer.config.get(key)!r}: {e}") from e
    return layer.channels_first(x), pairs


def _zero_pad(layer: Call, x: KTensor, nd: int) -> KTensor:
    t, pairs = _spatial_pad(layer, x, nd, "padding")
    flat = [v for pair in reversed(pairs) for v in pair]  # torch F.pad order: last dim first
    return layer.spatial_out(ops.pad(t, flat))


def _crop(layer: Call, x: KTensor, nd: int) -> KTensor:
    t, pairs = _spatial_pad(layer, x, nd, "cropping")
    index = [slice(None), slice(None)] + [slice(a, t.shape[2 + i] - b) for i, (a, b) in enumerate(pairs)]
    return layer.spatial_out(t[tuple(index)])


def _upsample(layer: Call, x: KTensor, nd: int) -> KTensor:
    c = layer.config
    size = c.get("size", 2)
    sizes = [int(size)] * nd if isinstance(size, int) else [int(s) for s in size]
    interp = str(c.get("interpolation", "nearest"))
    t = layer.channels_first(x)
    if interp == "nearest":
        return layer.spatial_out(ops.interpolate(t, scale_factor=sizes, mode="nearest"))
    if interp == "bilinear" and nd == 2:
        # Keras resizes with half-pixel centres (no align_corners), like torch's default bilinear.
        return layer.spatial_out(ops.interpolate(t, scale_factor=sizes, mode="bilinear", align_corners=False))
    raise layer.error(f"interpolation {interp!r} is not supported for {nd}-D up-sampling (nearest; bilinear in 2-D)")


for _nd in (1, 2, 3):

    def _reg(nd: int = _nd) -> None:
        converts(f"ZeroPadding{nd}D")(lambda layer, x: _zero_pad(layer, x, nd))
        converts(f"Cropping{nd}D")(lambda layer, x: _crop(layer, x, nd))
        converts(f"UpSampling{nd}D")(lambda layer, x: _upsample(layer, x, nd))

    _reg()


@converts("Resizing")
def resizing(layer: Call, x: KTensor) -> KTensor:
    c = layer.config
    if c.get("crop_to_aspect_ratio") or c.get("pad_to_aspect_ratio"):
        raise layer.error("crop_to_aspect_ratio / pad_to_aspect_ratio are not supported")
    interp = str(c.get("interpolation", "bilinear"))
    # bicubic is left out: TensorFlow's kernel (a = -0.5) and torch's (a = -0.75) differ
    modes = {"nearest": "nearest", "bilinear": "bilinear"}
    if interp not in modes:
        raise layer.error(f"interpolation {interp!r} is not supported ({', '.join(modes)})")
    if interp == "nearest":
        # Keras (backend image.resize) rounds nearest pixel centres half-pixel style
        mode = "nearest-exact"
    else:
        mode = modes[interp]
    size = (int(c["height"]), int(c["width"]))
    integer = x.t.dtype in ("int32", "int8", "uint8")
    if integer and interp != "nearest":
        # Keras resizes in float and saturate-casts back to the input's integer dtype (uint8, int32...)
        raise layer.error(f"interpolation {interp!r} of an integer ({x.t.dtype}) input is not supported; "
                          "only 'nearest', or cast the input to float first")  # fmt: skip
    t = layer.channels_first(floating(x))
    if c.get("antialias") and (size[0] < t.shape[2] or size[1] < t.shape[3]):
        raise layer.error(f"antialias=True when downsizing {tuple(t.shape[2:])} to {size} is not supported")
    kw: dict[str, Any] = {} if mode.startswith("nearest") else {"align_corners": False}
    y = ops.interpolate(t, size=size, mode=mode, **kw)
    return layer.spatial_out(ops.cast(y, x.t.dtype) if integer else y)


@converts("CenterCrop")
def center_crop(layer: Call, x: KTensor) -> KTensor:
    c = layer.config
    t = layer.channels_first(floating(x))  # Keras casts the images to its compute dtype
    h, w = t.shape[2], t.shape[3]
    th, tw = int(c["height"]), int(c["width"])
    if h < th or w < tw:
        raise layer.error(f"input {h}x{w} is smaller than the crop {th}x{tw} (Keras would resize; not supported)")
    top, left = (h - th) // 2, (w - tw) // 2
    return layer.spatial_out(t[:, :, top : top + th, left : left + tw])


@converts("RandomCrop")
def random_crop(layer: Call, x: KTensor) -> KTensor:
    """The identity, for images of the crop's size: the one case where every Keras agrees on inference.

    For other sizes Keras disagrees with itself. Keras 2 and the first Keras 3 releases center-crop to the
    crop's aspect ratio and resize (``smart_resize``), as documented; Keras 3.15 returns the images unchanged
    while declaring the cropped shape (its ``transform_images`` crops only when training; keras-team/keras#21868,
    open). A file does not say which Keras will run it, so those sizes are refused rather than guessed.
    """
    c = layer.config
    if x.rank != 4:
        raise layer.error(f"expected a batch of images (rank 4), got rank {x.rank}")
    first = (c.get("data_format") or "channels_last") == "channels_first"
    size = x.shape[2:4] if first else x.shape[1:3]
    crop = (int(c["height"]), int(c["width"]))
    if tuple(size) != crop:
        if layer.keras_major < 3:
            known = (
                "Keras 2 center-crops it to the crop's aspect ratio and resizes it bilinearly at inference "
                "(smart_resize), which trtdsl does not convert (it is not checked against Keras 2 here)"
            )
        else:
            known = (
                "Keras 3.15 returns it unchanged at inference although it declares the cropped shape "
                "(keras-team/keras#21868), while Keras 2 and early Keras 3 center-crop and resize it, so trtdsl "
                "will not pick one"
            )
        raise layer.error(
            f"input of {size[0]}x{size[1]} but a crop of {crop[0]}x{crop[1]}: {known}. Feed it images of "
            f"{crop[0]}x{crop[1]} (load_model(..., input_shapes=...) when it follows the input), or put a "
            "CenterCrop or Resizing layer in its place"
        )
    if x.t.dtype in ("int32", "int64", "int8", "uint8", "bool"):
        # Keras 3.15 passes integer images through as they are, while Keras 2 and its docs give floats
        raise layer.error(f"an integer ({x.t.dtype}) input: Keras versions disagree on its output dtype; "
                          "cast the images to float first")  # fmt: skip
    return x
