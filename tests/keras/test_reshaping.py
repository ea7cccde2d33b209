"""Keras reshaping layers with channels_first and per-axis options, and preprocessing layers of uint8
images, against Keras' own prediction (keras_sweep.py); RandomCrop against Keras' prediction of files written here."""

from __future__ import annotations

import shutil
import textwrap

import h5py
import numpy as np
import pytest

from trtdsl import keras as tk
from trtdsl.errors import KerasError

from ..conftest import requires_trt
from .keras_util import check_sweep, compare, config_layer, edit_h5_config, keras_writer, recorded, sweep_cases

pytestmark = requires_trt


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", sweep_cases("reshaping"))
def test_matches_keras(sweep_dir, name, fmt):
    check_sweep(sweep_dir, name, fmt)


def _edit_resizing(src, dst, **config) -> None:
    edit_h5_config(src, dst, lambda cfg: config_layer(cfg, "Resizing")["config"].update(config))


@pytest.mark.parametrize(
    ("name", "config", "message"),
    [
        # Keras' antialiased downsizing widens the kernel; a plain bilinear resize would be a wrong answer
        ("center_crop_resizing_conv", {"height": 3, "width": 3, "antialias": True},
         r"antialias=True when downsizing \(5, 4\) to \(3, 3\) is not supported"),
        # Keras saturate-casts a resized integer image back to its dtype
        ("uint8_resizing_center_crop", {"interpolation": "bilinear"},
         r"interpolation 'bilinear' of an integer \(int32\) input is not supported"),
    ],
)  # fmt: skip
def test_resizing_that_would_differ_from_keras_is_refused(sweep_dir, tmp_path, name, config, message):
    path = tmp_path / "edited.h5"
    _edit_resizing(sweep_dir / f"{name}.h5", path, **config)
    with pytest.raises(KerasError, match=rf"Resizing layer 'resizing\w*': {message}"):
        tk.load_model(path)


# RandomCrop at inference, written and predicted by Keras 3 itself: images of the crop's size (channels last and
# first, a dynamic input given that size, the crop as the model's output), and the sizes Keras disagrees on.
_CROP_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    from keras import layers as L

    out = sys.argv[1]
    rng = np.random.default_rng(5)

    def save(name, shape, head=None, data_format=None, dtype="float32", feed_shape=None):
        x = L.Input(shape, name="image", dtype=dtype)
        y = L.RandomCrop(6, 8, seed=7, data_format=data_format, name="crop")(x)
        m = keras.Model(x, head(y) if head else y, name=name)
        feed = (rng.standard_normal((2, *(feed_shape or shape))) * 4).astype(dtype)
        np.savez(f"{out}/{name}.npz", **{"in:0": feed, "out:0": m.predict(feed, verbose=0)},
                 declared=np.array(m.output_shape[1:]))
        m.save(f"{out}/{name}.keras")
        m.save(f"{out}/{name}.h5")

    conv = lambda fmt: L.Conv2D(2, 3, data_format=fmt, name="conv")
    save("crop_equal_cl", (6, 8, 3), conv("channels_last"))
    save("crop_equal_cf", (3, 6, 8), conv("channels_first"), data_format="channels_first")
    save("crop_equal_out", (6, 8, 3))
    save("crop_dynamic", (None, None, 3), conv("channels_last"), feed_shape=(6, 8, 3))
    save("crop_larger_cl", (10, 12, 3))
    save("crop_smaller_cl", (4, 5, 3))
    save("crop_larger_cf", (3, 10, 12), data_format="channels_first")
    save("crop_smaller_cf", (3, 4, 5), data_format="channels_first")
    save("crop_int", (6, 8, 3), dtype="int32")
    """
)


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    return keras_writer(tmp_path_factory.mktemp("random_crop"), _CROP_WRITER)


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", ["crop_equal_cl", "crop_equal_cf", "crop_equal_out", "crop_dynamic"])
def test_random_crop_of_images_of_its_size_matches_keras(crops, name, fmt):
    path = crops / f"{name}.{fmt}"
    shapes = {"image": (6, 8, 3)} if name == "crop_dynamic" else None
    net = tk.load_model(path, batch=2, input_shapes=shapes)
    compare(net, recorded(path), tol=1e-6)


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize(
    ("name", "size"),
    [("crop_larger_cl", "10x12"), ("crop_smaller_cl", "4x5"), ("crop_larger_cf", "10x12"), ("crop_smaller_cf", "4x5")],
)
def test_random_crop_of_other_sizes_is_refused_with_what_keras_does(crops, name, size, fmt):
    data = recorded(crops / f"{name}.{fmt}")
    # What the refusal says, checked against Keras 3 itself: it declared the crop, then predicted the input unchanged.
    first = name.endswith("_cf")
    assert tuple(data["declared"]) == ((3, 6, 8) if first else (6, 8, 3))
    np.testing.assert_array_equal(data["out:0"], data["in:0"])
    with pytest.raises(KerasError, match=rf"RandomCrop layer 'crop': input of {size} but a crop of 6x8: Keras 3.15 "
                                         r"returns it unchanged .*\(keras-team/keras#21868\).* so trtdsl will not pick one\. "
                                         r"Feed it images of 6x8"):  # fmt: skip
        tk.load_model(crops / f"{name}.{fmt}", batch=2)


def test_random_crop_of_integer_images_is_refused(crops):
    data = recorded(crops / "crop_int.keras")
    assert data["out:0"].dtype == np.int32  # Keras 3 passes them through uncast, though the layer documents floats
    with pytest.raises(
        KerasError, match=r"RandomCrop layer 'crop': an integer \(int32\) input: Keras versions disagree"
    ):
        tk.load_model(crops / "crop_int.keras", batch=2)


def _as_keras2(src, dst):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        f.attrs["keras_version"] = "2.15.0"
    return dst


def test_random_crop_in_a_keras2_file_follows_keras2(crops, tmp_path):
    # A Keras 2 file is told by its keras_version: of the crop's size, its documented center crop keeps every pixel.
    path = _as_keras2(crops / "crop_equal_cl.h5", tmp_path / "crop_equal_cl.h5")
    compare(tk.load_model(path, batch=2), recorded(crops / "crop_equal_cl.h5"), tol=1e-6)
    path = _as_keras2(crops / "crop_larger_cl.h5", tmp_path / "crop_larger_cl.h5")
    with pytest.raises(
        KerasError, match=r"input of 10x12 but a crop of 6x8: Keras 2 center-crops it .*\(smart_resize\)"
    ):
        tk.load_model(path, batch=2)
