"""Networks from TensorRT's own ONNX parser, run by the interpreter, against ONNX Runtime CPU.

torchvision architectures with random weights are exported to ONNX, parsed by
``trt.OnnxParser`` and run through ``trtdsl.reference.run``. NVIDIA's parser
decides the ONNX-to-TensorRT mapping, so a mismatch with ONNX Runtime means the
interpreter misreads a layer. fp32 throughout: rtol 1e-4, and atol 1e-5 times
the largest output magnitude (logits of random networks are not of unit scale).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import trtdsl
import trtdsl.reference
from bench.models import INPUT, MODELS, Parsed, example, export, onnxruntime_run, parse
from trtdsl import golden
from trtdsl.golden import Tolerance

pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("reference_mode")  # fast and plain paths

MODEL_NAMES = ["resnet18", "mobilenet_v3_small", "vit", "encoder_layer", "text_cnn"]
RTOL = 1e-4


def _tolerance(expected: dict[str, np.ndarray]) -> Tolerance:
    scale = max(float(np.max(np.abs(v))) for v in expected.values())
    return Tolerance(atol=1e-5 * max(scale, 1.0), rtol=RTOL)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def exported(onnx_dir):
    """Export each model once per module: name -> (onnx path, parsed network)."""
    from trtdsl import _trt

    if not _trt.available():
        pytest.skip("TensorRT (trtdsl[rtx] or trtdsl[trt]) is not installed")
    cache: dict[str, tuple] = {}

    def get(name: str, dynamic_batch: bool = False):
        key = f"{name}_dynamic" if dynamic_batch else name
        if key not in cache:
            path = export(name, onnx_dir / f"{key}.onnx", dynamic_batch=dynamic_batch)
            cache[key] = (path, parse(path))
        return cache[key]

    return get


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_matches_onnxruntime(exported, name):
    path, parsed = exported(name)
    feeds = {INPUT: example(MODELS[name])}
    expected = onnxruntime_run(path, feeds)
    actual = trtdsl.reference.run(parsed.network, feeds)
    report = golden.compare(actual, expected, _tolerance(expected))
    assert report.ok, f"{name}:\n{report}"


def _types(parsed: Parsed) -> Counter:
    return Counter(parsed.layer_types())


@pytest.mark.parametrize(("name", "dynamic"), [(n, False) for n in MODEL_NAMES] + [("vit", True)])
def test_parser_layer_types_are_supported(exported, name, dynamic):
    """Run with -s to see which layer types the parser emits for each model."""
    _, parsed = exported(name, dynamic_batch=dynamic)
    types = _types(parsed)
    label = f"{name} (dynamic batch)" if dynamic else name
    print(f"\n{label}: {parsed.network.num_layers} layers: {dict(sorted(types.items()))}")
    missing = sorted(set(types) - set(trtdsl.reference.supported()))
    assert not missing, f"{name}: the ONNX parser emitted layer types the interpreter lacks: {missing}"


@pytest.mark.parametrize("batch", [2, 3])
def test_dynamic_batch_with_shape_computations(exported, batch):
    """A dynamic batch makes the parser compute shapes in the network (shape, gather, concat, slice)."""
    path, parsed = exported("vit", dynamic_batch=True)
    net = parsed.network
    assert net.get_input(0).shape[0] == -1
    types = set(parsed.layer_types())
    assert "shape" in types, f"expected shape-computation layers, got {sorted(types)}"
    feeds = {INPUT: example(MODELS["vit"], batch=batch, seed=batch)}
    expected = onnxruntime_run(path, feeds)
    actual = trtdsl.reference.run(net, feeds)
    assert actual[next(iter(expected))].shape[0] == batch
    report = golden.compare(actual, expected, _tolerance(expected))
    assert report.ok, f"vit, dynamic batch {batch}:\n{report}"


def test_layerwise_diff_on_parsed_network(exported):
    """layerwise_diff works on raw parsed networks: a run agrees with itself tensor by tensor."""
    _, parsed = exported("text_cnn")
    feeds = {INPUT: example(MODELS["text_cnn"])}
    captured = trtdsl.reference.run(parsed.network, feeds, capture="all")
    assert golden.layerwise_diff(parsed.network, feeds, captured) is None
    tampered = dict(captured)
    last = parsed.network.get_layer(parsed.network.num_layers - 1).get_output(0).name
    tampered[last] = tampered[last] + np.float32(1.0)
    d = golden.layerwise_diff(parsed.network, feeds, tampered, captured=captured)
    assert d is not None and d.tensor == last and d.layer_index == parsed.network.num_layers - 1


def test_an_empty_dynamic_batch_matches_onnxruntime(exported):
    """A dynamic batch of 0 (no images in this request) runs: the fast convolution kernels once
    failed on it. MobileNetV3 reaches the im2col, depthwise and squeeze-excite routes."""
    path, parsed = exported("mobilenet_v3_small", dynamic_batch=True)
    feeds = {INPUT: example(MODELS["mobilenet_v3_small"], batch=0)}
    expected = onnxruntime_run(path, feeds)
    actual = trtdsl.reference.run(parsed.network, feeds)
    assert {k: v.shape for k, v in actual.items()} == {k: v.shape for k, v in expected.items()} == {"output": (0, 10)}
