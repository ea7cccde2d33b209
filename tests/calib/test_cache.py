"""Calibration caches: legacy TensorRT text (hand-written files), trtdsl JSON, matching, migration from TRT <= 10."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import trtdsl
from trtdsl import calib, ops, reference
from trtdsl.calib import cache
from trtdsl.errors import CacheError, CalibrationWarning
from trtdsl.layerinfo import downcast

ODD = b"""TRT-100300-EntropyCalibration2
input image: 3c010a14
a: b: 3d7f2d5a
(Unnamed Layer* 3) [Shuffle]_output: 3e800000
conv1 out: 0
huge: 7f800000
"""


def _f32(hex8: str) -> float:
    return struct.unpack(">f", bytes.fromhex(hex8))[0]


def test_legacy_cache_with_odd_names_parses_to_exact_scales():
    c = cache.parse_cache(ODD)
    assert c.format == "legacy" and c.version == "100300" and c.legacy_algorithm == "EntropyCalibration2"
    assert list(c.ranges) == ["input image", "a: b", "(Unnamed Layer* 3) [Shuffle]_output", "conv1 out", "huge"]
    assert c.scale("input image") == _f32("3c010a14")
    assert c.scale("a: b") == _f32("3d7f2d5a")  # split at the last ': '
    assert c.scale("(Unnamed Layer* 3) [Shuffle]_output") == 0.25  # 0x3e800000 = 2**-2
    assert c.ranges["conv1 out"] == 0.0
    assert c.ranges["huge"] == np.inf


def test_legacy_round_trip_is_exact():
    c = cache.parse_cache(ODD)
    text = cache.format_legacy(c.ranges, c.algorithm, version=c.version)
    again = cache.parse_cache(text)
    assert again.ranges == c.ranges
    # Byte for byte, except that a bare 0 is written as 00000000.
    assert text == ODD.replace(b"conv1 out: 0\n", b"conv1 out: 00000000\n")


@pytest.mark.parametrize(
    ("header", "algorithm"),
    [("TRT-8601-MinMaxCalibration", "MinMaxCalibration"), ("TRT-7000-EntropyCalibration", "EntropyCalibration"),
     ("TRT-101300-LegacyCalibration", "LegacyCalibration"), ("TRT-8501-EntropyCalibration2", "EntropyCalibration2")],
)  # fmt: skip
def test_legacy_headers_4_and_6_digits(header, algorithm):
    c = cache.parse_cache(f"{header}\r\nx: 3f800000\r\n".encode())  # Windows line ends too
    assert c.algorithm == algorithm and c.ranges == {"x": 127.0}


def test_random_ranges_round_trip_through_both_formats(rng):
    names = [f"layer{i}.conv {i}: out" for i in range(50)]
    amax = rng.lognormal(0, 3, 50)
    ranges = dict(zip(names, amax.tolist()))
    legacy = cache.parse_cache(cache.format_legacy(ranges, "entropy"))
    # The legacy format keeps float32 scales: amax / 127 rounded once, exactly recovered.
    for n, a in ranges.items():
        assert legacy.scale(n) == np.float32(a / 127)
        assert legacy.ranges[n] == float(np.float32(a / 127)) * 127
    meta = {
        n: {"histogram": {"bins": 2048, "width": a / 2048, "count": 1000, "sample": None}} for n, a in ranges.items()
    }
    js = cache.parse_cache(cache.format_json(ranges, algorithm="mse", dtype="fp8", network="net", tensors=meta))
    assert js.ranges == ranges  # float64 exactly
    assert js.algorithm == "mse" and js.dtype == "fp8" and js.network == "net"
    assert js.tensors[names[0]]["histogram"]["bins"] == 2048


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (b"x: 3f800000\n", r"line 1 should be a TensorRT cache header"),
        (b"TRT-86010-EntropyCalibration2\nx: 3f800000\n", r"4 digits .* or 6 .* got 5"),
        (
            b"TRT-8601-EntropyCalibraton2\n",
            r"unknown calibrator 'EntropyCalibraton2'.*Did you mean 'EntropyCalibration2'",
        ),
        (b"TRT-8601-EntropyCalibration2\nx: 3c01zz14\n", r"line 2 \('x'\): the scale must be 8 hex digits"),
        (b"TRT-8601-EntropyCalibration2\nx: 3c010a1\n", r"8 hex digits"),
        (b"TRT-8601-EntropyCalibration2\nno separator here\n", r"line 2 should be '<tensor name>: <8 hex digits>'"),
        (b"TRT-8601-EntropyCalibration2\nx: 3f800000\ny: 0\nx: 3f800000\n", r"'x' appears twice \(lines 2 and 4\)"),
        (b"TRT-8601-EntropyCalibration2\nx: bf800000\n", r"not a non-negative number"),
        (b"TRT-8601-EntropyCalibration2\nx: 7fc00000\n", r"not a non-negative number"),
        (b"\xff\xfe\x00binary", r"not a text calibration cache"),
        (b"   \n", r"empty"),
        (b"{not json", r"malformed JSON"),
        (b'{"format": "trtdsl.calibration", "version": 2, "tensors": {}}', r"version 2 is not supported"),
        (b'{"format": "trtdsl.calibration", "version": 1, "tensors": {"x": {"amax": -1}}}', r"'x'.*non-negative"),
        (b'{"format": "trtdsl.calibration", "version": 1, "tensors": {"x": {"amax": "2"}}}', r"'x'.*non-negative"),
    ],
)
def test_malformed_caches_are_refused_clearly(text, match):
    with pytest.raises(CacheError, match=match):
        cache.parse_cache(text)


def test_onnx_runtime_tables_are_recognised_and_refused():
    with pytest.raises(CacheError, match=r"ONNX Runtime's TensorRT-EP calibration table .* dict"):
        cache.parse_cache(b"input 2.5\nconv_out 13.25\nfc/Gemm_output_0 1e-3\n")
    with pytest.raises(CacheError, match=r"ONNX Runtime's calibration.json"):
        cache.parse_cache(b'{"input": [0.0, 2.5], "conv_out": [-1.0, 13.25]}')


def test_oversized_cache_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "MAX_BYTES", 100)
    p = tmp_path / "big.cache"
    p.write_bytes(b"TRT-8601-EntropyCalibration2\n" + b"x" * 200)
    with pytest.raises(CacheError, match="too large"):
        cache.load_cache(p)


_JSON = b'{"format": "trtdsl.calibration", "version": 1, '


@pytest.mark.parametrize(
    ("text", "match"),
    [
        # Before: RecursionError, ValueError (Python's 4300-digit int limit) and OverflowError escaped.
        (_JSON + b'"tensors": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", r"malformed JSON .* nests too deeply"),
        (_JSON + b'"tensors": {"x": {"amax": 1' + b"0" * 5000 + b"}}}", r"malformed JSON .*4300 digits"),
        (_JSON + b'"tensors": {"x": {"amax": 1' + b"0" * 400 + b"}}}", r"'x': \"amax\" must be a non-negative number"),
        # Before: accepted, and carried into the cache's fields.
        (_JSON + b'"algorithm": [1], "tensors": {}}', r"'algorithm' must be a string or null, got \[1\]"),
        (_JSON + b'"network": {"a": 1}, "tensors": {}}', r"'network' must be a string or null"),
        (b'{"format": "trtdsl.calibration", "version": true, "tensors": {}}', r"version True is not supported"),
        (_JSON + b'"tensors": {"x": {"amax": "' + b"9" * 5000 + b'"}}}', r"got '9{59}\.\.\.$"),
    ],
)
def test_hostile_json_caches_are_refused_with_cache_error(text, match):
    with pytest.raises(CacheError, match=match):
        cache.parse_cache(text)


def test_oversized_cache_is_refused_before_the_calibrator_reads_it(tmp_path, monkeypatch):
    from trtdsl.calib import calibrators

    monkeypatch.setattr(calibrators, "MAX_BYTES", 100)
    p = tmp_path / "big.cache"
    p.write_bytes(b"TRT-8601-EntropyCalibration2\n" + b"x" * 200)
    c = calib.ArrayCalibrator(np.zeros((2, 3), np.float32), cache=p, progress=False)
    with pytest.raises(CacheError, match=r"big.cache: 229 bytes is too large for a calibration cache \(limit 100\)"):
        c.read_cache()  # before: read all of it (a cache path can name a many-GB file)


@pytest.mark.parametrize("n", [600, pytest.param(6000, marks=pytest.mark.slow, id="slow")])
def test_mutated_caches_parse_or_raise_cache_error(n):
    from .._mutations import mutations, scattered

    seeds = {
        "legacy": cache.format_legacy({"images": 2.5, "conv1 out": 0.0, "(Unnamed Layer* 3) [Shuffle]_output": 1e-3}),
        "json": cache.format_json({"images": 2.5, "a: b": 3.0}, algorithm="entropy", tensors={"images": {"bins": 8}}),
    }
    outcomes = {"parsed": 0, "refused": 0}
    for name, data in seeds.items():
        for label, mutated in [*mutations(data, n, seed=len(data)), *scattered(data, n // 4, seed=len(data))]:
            try:
                c = cache.parse_cache(mutated, source=f"{name}-{label}")
            except CacheError:
                outcomes["refused"] += 1
                continue
            outcomes["parsed"] += 1
            assert all(isinstance(k, str) and type(v) is float and v >= 0 for k, v in c.ranges.items()), label
            assert c.algorithm is None or isinstance(c.algorithm, str), label
    assert outcomes["refused"] > outcomes["parsed"] > 0  # the mutations reach both outcomes


# ------------------------------------------------------------- applying caches
def _net(rng):
    net = trtdsl.Network("small")
    x = net.input("images", "float32", (2, 3, 6, 6))
    with net.scope("conv1"):
        y = ops.relu(ops.conv2d(x, rng.standard_normal((4, 3, 3, 3)).astype(np.float32), padding=1), name="relu")
    with net.scope("conv2"):
        y = ops.relu(ops.conv2d(y, rng.standard_normal((4, 4, 3, 3)).astype(np.float32), padding=1), name="relu")
    with net.scope("fc"):
        y = ops.linear(ops.flatten(y, 1, name="flatten"), rng.standard_normal((5, 144)).astype(np.float32))
    net.output(y, "logits")
    return net


def _scales(net):
    out = {}
    for i in range(net.trt.num_layers):
        layer = downcast(net.trt.get_layer(i))
        if layer.type.name == "QUANTIZE":
            scale_layer = next(
                downcast(net.trt.get_layer(k)) for k in range(net.trt.num_layers)
                if net.trt.get_layer(k).get_output(0).name == layer.get_input(1).name
            )  # fmt: skip
            out[layer.get_input(0).name] = np.asarray(scale_layer.weights, np.float32)
    return out


def test_a_tensorrt_10_cache_applies_without_data(rng, tmp_path, trt):
    # What a TensorRT 10 IInt8EntropyCalibrator2 wrote for these tensor names.
    p = tmp_path / "trt10.cache"
    p.write_text("TRT-100300-EntropyCalibration2\nimages: 3c010a14\nconv1.relu.out: 3d7f2d5a\nconv1.conv2d.out: 3d000000\n"
                 "fc.flatten.out: 3d7f2d5a\nlogits: 3e000000\n")  # fmt: skip

    class NoData(calib.Calibrator):
        def get_batch(self):
            raise AssertionError("a complete cache needs no calibration data")

        def read_cache(self):
            return p.read_bytes()

    net = _net(rng)
    calib.quantize(net, NoData(), report=False)
    scales = _scales(net)
    assert scales["images"].view(np.uint32) == np.uint32(0x3C010A14)
    assert scales["conv1.relu.out"].view(np.uint32) == np.uint32(0x3D7F2D5A)
    assert scales["fc.flatten.out"].view(np.uint32) == np.uint32(0x3D7F2D5A)
    assert net.quant_report.rows[0].algorithm.startswith("cache")
    out = reference.run(net, {"images": rng.standard_normal((2, 3, 6, 6)).astype(np.float32)})
    assert np.all(np.isfinite(out["logits"]))
    trtdsl.build(net, progress=False)


def test_a_cache_for_other_tensors_warns_with_near_matches(rng, trt):
    net = _net(rng)
    stale = cache.parse_cache(b"TRT-8601-EntropyCalibration2\nimages: 3c010a14\nconv1.relu_out: 3d7f2d5a\n")
    with pytest.warns(CalibrationWarning) as record:
        calib.quantize(net, stale, report=False)
    text = " | ".join(str(w.message) for w in record)
    assert "no range for 2 of 3 tensors that get Q/DQ: 'conv1.relu.out' Did you mean 'conv1.relu_out'?" in text
    assert (
        "1 calibration cache entries name no tensor of the network: 'conv1.relu_out' Did you mean 'conv1.relu.out'?"
        in text
    )
    # Tensors without a range stay in float and the report says so.
    skipped = {r.tensor: r.status for r in net.quant_report.rows if r.status != "quantized"}
    assert set(skipped) == {"conv1.relu.out", "fc.flatten.out"}


def test_calibration_writes_the_cache_it_can_read_back(rng, tmp_path, trt):
    data = rng.standard_normal((8, 3, 6, 6)).astype(np.float32)
    for name in ("c.cache", "c.json"):
        path = tmp_path / name
        net = _net(rng)
        calib.quantize(net, calib.ArrayCalibrator(data, batch_size=2, cache=path, progress=False), report=False)
        first = net.quant_report.ranges
        back = cache.load_cache(path)
        assert back.format == ("json" if name.endswith(".json") else "legacy")
        net2 = _net(np.random.default_rng(1))
        calib.quantize(
            net2, calib.ArrayCalibrator(data[:0].reshape(0, 3, 6, 6), cache=path, progress=False), report=False
        )
        second = net2.quant_report.ranges
        if name.endswith(".json"):
            assert second == first
        else:
            assert all(second[n] == float(np.float32(first[n] / 127)) * 127 for n in first)


def test_report_json_of_skipped_tensors_is_strict_json(rng, tmp_path, trt):
    import json

    net = _net(rng)
    with pytest.warns(CalibrationWarning):
        calib.quantize(net, {"images": 1.0}, report=tmp_path / "r.json")
    doc = json.loads((tmp_path / "r.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    rows = {r["tensor"]: r for r in doc["tensors"]}
    assert rows["images"]["amax"] == 1.0 and rows["images"]["scale"] == pytest.approx(1 / 127)
    assert rows["conv1.relu.out"]["amax"] is None and rows["conv1.relu.out"]["status"].startswith("skipped: no range")
