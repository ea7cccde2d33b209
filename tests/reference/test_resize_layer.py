"""The resize interpreter on raw IResizeLayer networks, against onnxruntime's Resize.

ONNX's Resize has the same knobs as IResizeLayer (coordinate transformation,
nearest rounding, cubic coefficient, exclude_outside); given output sizes its
coordinates use the in/out length ratio, as NvInfer.h documents for TensorRT.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import trtdsl
from trtdsl.reference import run

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
helper = onnx.helper

pytestmark = pytest.mark.usefixtures("trt", "reference_mode")  # fast and plain paths

ROUNDING = {"HALF_UP": "round_prefer_ceil", "HALF_DOWN": "round_prefer_floor", "FLOOR": "floor", "CEIL": "ceil"}
COORDS = {"ALIGN_CORNERS": "align_corners", "ASYMMETRIC": "asymmetric", "HALF_PIXEL": "half_pixel"}


def _onnx_resize(x, sizes, mode, coords, rounding="FLOOR", cubic=-0.75, exclude=False):
    t = onnx.TensorProto
    node = helper.make_node(
        "Resize", ["X", "", "", "sizes"], ["Y"], mode=mode.lower(), coordinate_transformation_mode=COORDS[coords],
        nearest_mode=ROUNDING[rounding], cubic_coeff_a=cubic, exclude_outside=int(exclude),
    )  # fmt: skip
    graph = helper.make_graph(
        [node], "resize",
        [helper.make_tensor_value_info("X", t.FLOAT, None), helper.make_tensor_value_info("sizes", t.INT64, [x.ndim])],
        [helper.make_tensor_value_info("Y", t.FLOAT, None)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x, "sizes": np.asarray(sizes, np.int64)})[0]


def _resize_net(trt, shape, configure):
    net = trtdsl.Network("resize")
    x = net.input("x", "float32", shape)
    layer = net.trt.add_resize(x.trt)
    configure(layer)
    net.output(net.register(layer, "resize"), "y")
    return net


NEAREST = list(itertools.product(COORDS, ROUNDING, [(9, 13), (3, 4), (5, 11)]))
SMOOTH = [(m, c, o, a, e) for m, c, o, a, e in itertools.product(["LINEAR", "CUBIC"], COORDS, [(9, 13), (3, 4)],
                                                                  [-0.75, -0.5], [False, True])
          if m == "CUBIC" or (a == -0.75 and not e)]  # fmt: skip


@pytest.mark.parametrize("coords,rounding,out", NEAREST)
def test_nearest_every_coordinate_and_rounding_mode(trt, coords, rounding, out, rng):
    x = rng.standard_normal((1, 2, 5, 6)).astype(np.float32)

    def configure(layer):
        layer.shape = (1, 2, *out)
        layer.resize_mode = trt.InterpolationMode.NEAREST
        layer.coordinate_transformation = getattr(trt.ResizeCoordinateTransformation, coords)
        layer.nearest_rounding = getattr(trt.ResizeRoundMode, rounding)

    got = run(_resize_net(trt, x.shape, configure), {"x": x})["y"]
    np.testing.assert_array_equal(got, _onnx_resize(x, (1, 2, *out), "NEAREST", coords, rounding))


@pytest.mark.parametrize("mode,coords,out,cubic,exclude", SMOOTH)
def test_linear_and_cubic_every_coordinate_mode(trt, mode, coords, out, cubic, exclude, rng):
    x = rng.standard_normal((1, 2, 5, 6)).astype(np.float32)

    def configure(layer):
        layer.shape = (1, 2, *out)
        layer.resize_mode = getattr(trt.InterpolationMode, mode)
        layer.coordinate_transformation = getattr(trt.ResizeCoordinateTransformation, coords)
        layer.cubic_coeff = cubic
        layer.exclude_outside = exclude

    got = run(_resize_net(trt, x.shape, configure), {"x": x})["y"]
    ref = _onnx_resize(x, (1, 2, *out), mode, coords, cubic=cubic, exclude=exclude)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_trilinear_and_nearest_on_more_dims(trt, rng):
    x = rng.standard_normal((2, 3, 4, 5, 3)).astype(np.float32)
    for mode, out in [("LINEAR", (2, 3, 7, 3, 6)), ("NEAREST", (4, 3, 2, 9, 5))]:

        def configure(layer, mode=mode, out=out):
            layer.shape = out
            layer.resize_mode = getattr(trt.InterpolationMode, mode)
            layer.coordinate_transformation = trt.ResizeCoordinateTransformation.HALF_PIXEL

        got = run(_resize_net(trt, x.shape, configure), {"x": x})["y"]
        np.testing.assert_allclose(got, _onnx_resize(x, out, mode, "HALF_PIXEL"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("selector", ["FORMULA", "UPPER"])
def test_single_pixel_selector(trt, selector, rng):
    x = rng.standard_normal((1, 1, 4, 6)).astype(np.float32)

    def configure(layer):
        layer.shape = (1, 1, 1, 1)
        layer.resize_mode = trt.InterpolationMode.LINEAR
        layer.coordinate_transformation = trt.ResizeCoordinateTransformation.HALF_PIXEL
        layer.selector_for_single_pixel = getattr(trt.ResizeSelector, selector)

    got = run(_resize_net(trt, x.shape, configure), {"x": x})["y"]
    # FORMULA: half-pixel centre of the whole image, (0.5 * 4 - 0.5, 0.5 * 6 - 0.5) = (1.5, 2.5);
    # UPPER: the upper-left pixel.
    want = x[0, 0, 1:3, 2:4].mean() if selector == "FORMULA" else x[0, 0, 0, 0]
    np.testing.assert_allclose(got.reshape(()), want, rtol=1e-6)


def test_scales_give_floor_of_input_times_scale(trt, rng):
    x = rng.standard_normal((1, 2, 5, 4)).astype(np.float32)

    def configure(layer):
        layer.scales = [1.0, 1.0, 1.7, 0.6]
        layer.resize_mode = trt.InterpolationMode.LINEAR
        layer.coordinate_transformation = trt.ResizeCoordinateTransformation.ALIGN_CORNERS

    net = _resize_net(trt, x.shape, configure)
    assert net.outputs["y"].shape == (1, 2, 8, 2)
    got = run(net, {"x": x})["y"]
    np.testing.assert_allclose(got, _onnx_resize(x, (1, 2, 8, 2), "LINEAR", "ALIGN_CORNERS"), rtol=1e-5, atol=1e-6)


def test_output_shape_from_second_input(trt, rng):
    """A dynamic resize: the output dims come from a shape tensor (here the shape of another input)."""
    net = trtdsl.Network("dynamic")
    x = net.input("x", "float32", (1, 2, 3, 4))
    like = net.input("like", "float32", (1, 2, net.dim("h", 1, 6, 9), net.dim("w", 1, 6, 9)))
    layer = net.trt.add_resize(x.trt)
    layer.set_input(1, net.trt.add_shape(like.trt).get_output(0))
    layer.resize_mode = trt.InterpolationMode.NEAREST
    net.output(net.register(layer, "resize"), "y")
    assert net.outputs["y"].shape == (1, 2, -1, -1)
    xv = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
    got = run(net, {"x": xv, "like": np.zeros((1, 2, 7, 5), np.float32)})["y"]
    np.testing.assert_array_equal(got, _onnx_resize(xv, (1, 2, 7, 5), "NEAREST", "ASYMMETRIC"))
