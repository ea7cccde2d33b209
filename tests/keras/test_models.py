"""Every committed Keras file converts, matches Keras' own prediction, and builds into a plan."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import keras as tk
from trtdsl.weights import keras_config

from ..conftest import requires_trt
from .keras_util import FIXTURES, compare, recorded

# refuse_* and custom_* files are for tests/keras/test_errors.py
FILES = sorted(
    p for p in FIXTURES.glob("k*/*") if p.suffix in (".h5", ".keras") and not p.name.startswith(("refuse_", "custom_"))
)
IDS = [f"{p.parent.name}/{p.name}" for p in FILES]


def _load(path, **kw):
    # Keras 3 files here were written with the torch backend; a .keras file does not record it.
    if path.parent.name == "k3":
        kw.setdefault("backend", "torch")
    return tk.load_model(path, **kw)


def test_fixtures_cover_both_keras_versions_and_formats():
    assert {p.suffix for p in FILES if p.parent.name == "k3"} == {".h5", ".keras"}
    assert any(p.parent.name == "k2" for p in FILES)
    for p in FILES:
        mf = keras_config.read(p)
        assert mf.keras_major == (2 if p.parent.name == "k2" else 3), p


@requires_trt
@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_matches_keras(path):
    net = _load(path)
    compare(net, recorded(path))
    # Inputs and outputs keep Keras' names and order (a layer with several outputs numbers the later ones).
    mf = keras_config.read(path)
    model = keras_config.parse_model(mf.config)
    assert list(net.input_specs) == [r.layer for r in model.inputs]
    assert [n if n in {r.layer for r in model.outputs} else n.rsplit("_", 1)[0] for n in net.outputs] == [
        r.layer for r in model.outputs
    ]


@requires_trt
@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_weight_used(path):
    net = _load(path)
    left = net.keras_weights.unused()
    assert not left, f"weights the conversion never used: {left}"
    net.keras_weights.check_all_used()


@requires_trt
@pytest.mark.parametrize("name", ["cnn", "multi_io", "norms", "conv1d"])
def test_layout_nchw(name):
    """layout='NCHW': feed channels-first images, read channels-first image outputs, no transposes at I/O."""
    path = FIXTURES / "k3" / f"{name}.keras"
    data = recorded(path)
    net = _load(path, layout="NCHW")
    feeds = {}
    for i, n in enumerate(net.input_specs):
        x = data[f"in:{i}"]
        feeds[n] = np.ascontiguousarray(np.moveaxis(x, -1, 1)) if x.ndim >= 3 else x
    outs = trtdsl.reference.run(net, feeds)
    for i, n in enumerate(net.outputs):
        want, got = data[f"out:{i}"], outs[n]
        if got.shape != want.shape:
            got = np.moveaxis(got, 1, -1)
        np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())

    def input_transposes(n):
        return [
            layer.name for layer in n.layers() if "to_nchw" in layer.name and layer.get_input(0).name in n.input_specs
        ]

    assert input_transposes(net) == [], "NCHW inputs need no transpose"
    assert len(input_transposes(_load(path))) == sum(len(s) >= 3 for s in net.input_specs.values())


@requires_trt
def test_one_transpose_per_image_input_and_flatten_dense_without_transpose():
    net = _load(FIXTURES / "k3" / "cnn.keras")
    names = [layer.name for layer in net.layers()]
    assert sum("to_nchw" in n for n in names) == 1  # the NHWC input, once
    assert not any("to_keras_order" in n or "to_nhwc" in n for n in names)  # Dense rows permuted instead


@requires_trt
def test_batch_is_a_named_dynamic_dim():
    net = _load(FIXTURES / "k3" / "cnn.keras", batch=(1, 4, 8))
    assert net.input_specs["image"][0] == "batch"
    assert net.dims["batch"].range == (1, 4, 8)
    fixed = _load(FIXTURES / "k3" / "cnn.keras", batch=2)
    assert fixed.input_specs["image"] == (2, 16, 16, 3)


@requires_trt
@pytest.mark.parametrize("path", [p for p in FILES if p.suffix == ".h5" or "cnn" in p.name], ids=lambda p: p.name)
def test_builds_a_plan(path):
    net = _load(path, batch=(1, 2, 4))
    plan = trtdsl.build(net, weights=net.keras_weights)
    assert len(plan.engine) > 0
    assert list(plan.inputs) == list(net.input_specs)


@requires_trt
@pytest.mark.parametrize(
    "path",
    [FIXTURES / "k3" / f"{n}.keras" for n in ("cnn", "transformer", "norms", "multi_io", "recurrent", "conv1d")]
    + [FIXTURES / "k2" / "app_mobilenet_v2.h5"],
    ids=lambda p: p.name,
)
def test_float16(path):
    """A float16 network against Keras' float32 prediction, to the project's float16 tolerance (observed <= 3e-3)."""
    tol = trtdsl.golden.Tolerance.for_precision("float16").rtol
    net = _load(path, dtype="float16")
    assert net.dtype == "float16"
    compare(net, recorded(path), tol=tol)


@requires_trt
@pytest.mark.parametrize("name", ["quantized", "quantized_seq"])
def test_quantized_int8_kernel_is_an_int8_constant_with_dequantize(name):
    """Dense and EinsumDense int8 kernels (and an int8 Embedding) against Keras' own quantized prediction."""
    path = FIXTURES / "k3" / f"{name}.keras"
    net = _load(path)
    compare(net, recorded(path), tol=1e-5)
    kinds = [type(layer).__name__ for layer in net.layers()]
    assert kinds.count("IDequantizeLayer") == 2
    int8 = [k for k, v in net.weights.items() if v.dtype == np.int8]
    assert len(int8) == 2
