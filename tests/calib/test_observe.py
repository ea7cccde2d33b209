"""Statistics collection: the incremental histogram, observers on the interpreter, and any runner."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import calib, ops
from trtdsl.calib.observe import Collector, Histogram
from trtdsl.errors import CalibrationError
from trtdsl.reference import prepare

torch = pytest.importorskip("torch")


def test_histogram_rebins_by_appending_bins_of_the_same_width():
    # Values on bin centers (multiples of 1/8 + 1/16, exact in float32) so no value sits on an edge.
    rng = np.random.default_rng(0)
    h = Histogram(num_bins=2048)
    first = (rng.integers(0, 2048, 5000) * 0.125 + 0.0625).astype(np.float32)
    first[0] = 256.0  # the max: width = 256 / 2048 = 1/8, and the max itself goes in the last bin
    second = -(rng.integers(0, 3000, 4000) * 0.125 + 0.0625).astype(np.float32)
    second[0] = -(2999 * 0.125 + 0.0625)  # beyond the range: ceil(2999.5) = 3000 bins
    h.update(first)
    assert h.counts.size == 2048 and h.width == 0.125
    h.update(second.reshape(40, 100))
    assert h.counts.size == 3000 and h.count == 9000 and h.max == float(np.abs(second).max())
    expected = np.zeros(3000, np.int64)
    for v in np.abs(np.concatenate([first, second])).astype(np.float64):
        expected[min(int(v // 0.125), 2047 if v == 256.0 else 2999)] += 1
    np.testing.assert_array_equal(h.counts, expected)
    np.testing.assert_array_equal(h.edges, np.arange(3001) * 0.125)


def test_histogram_zero_batches_and_sampling():
    h = Histogram(num_bins=16)
    h.update(np.zeros(10, np.float32))  # no range yet: the zeros wait for bin 0
    h.update(np.array([4.0, 1.0], np.float32))
    assert h.counts[0] == 10 and h.counts.sum() == 12 and h.width == 0.25
    s = Histogram(num_bins=16, sample=3)
    s.update(np.arange(9, dtype=np.float32))
    assert s.count == 3 and s.max == 6.0  # every 3rd element: 0, 3, 6
    with pytest.raises(CalibrationError, match="non-finite"):
        Histogram().update(np.array([np.inf], np.float32))


def _block(rng):
    w0, w1 = (rng.standard_normal((4, 4, 3, 3)).astype(np.float32) * 0.3 for _ in range(2))
    net = trtdsl.Network("block")
    x = net.input("x", "float32", (2, 4, 6, 5))
    h = ops.relu(ops.conv2d(x, w0, padding=1, name="conv0"), name="relu0")
    net.output(ops.conv2d(h, w1, padding=1, name="conv1"), "y")
    return net, w0


def test_collector_on_interpreter_observers_matches_torch(rng):
    net, w0 = _block(rng)
    xs = [rng.standard_normal((2, 4, 6, 5)).astype(np.float32) * s for s in (1.0, 3.0, 0.5)]
    col = Collector(["x", "relu0.out"], num_bins=64)
    interp = prepare(net)
    for x in xs:
        col.run(interp, {"x": x})
    acts = [torch.relu(torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w0).double(), padding=1))
            for x in xs]  # fmt: skip
    assert col.stats["relu0.out"].max == pytest.approx(max(float(a.max()) for a in acts), rel=1e-5)
    assert col.stats["relu0.out"].count == sum(a.numel() for a in acts)  # every element counted
    assert col.stats["x"].max == max(float(np.abs(x).max()) for x in xs)
    assert col.batches == 3
    ranges = col.ranges("max")
    assert ranges["x"] == col.stats["x"].max


def test_collector_with_a_runner_that_returns_the_watched_tensors(rng):
    # A second definition of the same network with the watched tensor marked as an output,
    # run by a Session-like runner (here the reference session: run(feeds) -> dict).
    net, _ = _block(np.random.default_rng(3))
    watched, _ = _block(np.random.default_rng(3))
    watched.output(watched.tensor("relu0.out"), "relu0.out")
    xs = [rng.standard_normal((2, 4, 6, 5)).astype(np.float32) for _ in range(2)]
    a, b = Collector(["relu0.out"], num_bins=128), Collector(["relu0.out"], num_bins=128)
    for x in xs:
        a.run(prepare(net), {"x": x})
        b.run(trtdsl.ReferenceSession(watched), {"x": x})
    np.testing.assert_array_equal(a.stats["relu0.out"].counts, b.stats["relu0.out"].counts)
    with pytest.raises(CalibrationError, match="marked as an output"):
        Collector(["relu0.out"]).run(trtdsl.ReferenceSession(net), {"x": xs[0]})


def test_quantize_with_a_runner_and_sampling(rng):
    net, _ = _block(np.random.default_rng(3))
    watched, _ = _block(np.random.default_rng(3))
    watched.output(watched.tensor("relu0.out"), "relu0.out")
    data = rng.standard_normal((4, 4, 6, 5)).astype(np.float32)
    cal = calib.ArrayCalibrator(data, batch_size=2, sample=4, progress=False)
    calib.quantize(net, cal, algorithm="percentile", runner=trtdsl.ReferenceSession(watched), report=False)
    rep = net.quant_report
    assert rep.sample == 4 and "every 4th element" in str(rep)
    assert set(rep.ranges) == {"x", "relu0.out"}
