"""Calibrators: arrays and files, iterables, image folders, subclasses; feed checks; the progress bar."""

from __future__ import annotations

import numpy as np
import pytest

import trtdsl
from trtdsl import calib, ops
from trtdsl.errors import CalibrationError

pytestmark = pytest.mark.usefixtures("trt")


def _net(channels=3, dynamic=True):
    net = trtdsl.Network("c")
    batch = net.dim("batch", 1, 4, 8) if dynamic else 2
    x = net.input("images", "float32", (batch, channels, 6, 6))
    w = np.random.default_rng(0).standard_normal((4, channels, 3, 3)).astype(np.float32)
    net.output(
        ops.conv2d(
            ops.relu(ops.conv2d(x, w, padding=1, name="c1"), name="r"), np.ones((2, 4, 1, 1), np.float32), name="c2"
        ),
        "y",
    )
    return net


def _batches(cal):
    return list(cal.batches())


def test_array_calibrator_from_arrays_npz_and_npy(tmp_path, rng):
    x = rng.standard_normal((10, 3, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "named.npz", images=x)
    np.savez(tmp_path / "unnamed.npz", data=x)
    np.save(tmp_path / "bare.npy", x)
    for source in (x, {"images": x}, tmp_path / "named.npz", tmp_path / "unnamed.npz", str(tmp_path / "bare.npy")):
        cal = calib.ArrayCalibrator(source, batch_size=4, progress=False)
        assert len(cal) == 3
        got = [calib.check_feeds(_net(), b, i)["images"] for i, b in enumerate(_batches(cal))]
        assert [g.shape[0] for g in got] == [4, 4, 2]
        np.testing.assert_array_equal(np.concatenate(got), x)


def test_iterable_and_generator_calibrators(rng):
    xs = [rng.standard_normal((2, 3, 6, 6)).astype(np.float32) for _ in range(3)]
    assert len(calib.IterableCalibrator(xs)) == 3
    gen = calib.IterableCalibrator(({"images": a} for a in xs), batches=3)
    got = _batches(gen)
    assert len(got) == 3 and all(np.array_equal(g["images"], a) for g, a in zip(got, xs))
    with pytest.raises(TypeError, match="no length"):
        len(calib.IterableCalibrator(iter(xs)))


def test_image_folder_calibrator(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = [rng.integers(0, 256, (6, 6, 3), dtype=np.uint8) for _ in range(5)]
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")

    def prep(img):
        return np.asarray(img.convert("RGB"), np.float32).transpose(2, 0, 1) / 255

    cal = calib.ImageFolderCalibrator(tmp_path, prep, batch_size=2, progress=False)
    assert len(cal) == 3
    got = np.concatenate([calib.check_feeds(_net(), b, i)["images"] for i, b in enumerate(_batches(cal))])
    np.testing.assert_allclose(got, np.stack(pixels).transpose(0, 3, 1, 2) / 255, rtol=1e-6)
    (tmp_path / "img9.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(CalibrationError, match=r"cannot decode calibration image 'img9.png'"):
        _batches(calib.ImageFolderCalibrator(tmp_path, prep, batch_size=10))
    with pytest.raises(CalibrationError, match="holds no image files"):
        calib.ImageFolderCalibrator(tmp_path / "..", prep)  # pytest's tmp root: folders only
    with pytest.raises(CalibrationError, match="no image folder"):
        calib.ImageFolderCalibrator(tmp_path / "missing", prep)


def test_image_folder_skips_symlinks(tmp_path):
    from PIL import Image

    outside = tmp_path / "outside.png"
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(outside)
    folder = tmp_path / "calib"
    folder.mkdir()
    Image.fromarray(np.ones((6, 6, 3), np.uint8)).save(folder / "a.png")
    (folder / "b.png").symlink_to(outside)
    cal = calib.ImageFolderCalibrator(folder, lambda im: np.asarray(im, np.float32).transpose(2, 0, 1))
    assert [p.name for p in cal.files] == ["a.png"]


@pytest.mark.parametrize(
    ("feeds", "match"),
    [
        (
            {"imagse": np.zeros((2, 3, 6, 6), np.float32), "other": 1},
            r"'imagse' is not an input.*Did you mean 'images'",
        ),
        ({}, r"no data for input\(s\) \['images'\]"),
        ({"images": np.zeros((2, 3, 6, 6), np.int32)}, r"input 'images' is float32; got an array of dtype int32"),
        ({"images": np.zeros((2, 4, 6, 6), np.float32)}, r"expects shape \('batch', 3, 6, 6\), got \(2, 4, 6, 6\)"),
        ({"images": np.zeros((3, 6, 6), np.float32)}, r"expects shape"),
        ({"images": np.zeros((9, 3, 6, 6), np.float32)}, r"batch 5: .*'batch' = 9 is outside 1..8.*batch size inside"),
        ({"images": np.full((2, 3, 6, 6), np.nan, np.float32)}, r"NaN or infinite"),
        ([1, 2], r"must return a dict"),
    ],
)
def test_feeds_are_checked_against_the_network(feeds, match):
    with pytest.raises(CalibrationError, match=match):
        calib.check_feeds(_net(), feeds, 5)


def test_a_subclass_in_the_manner_of_tensorrt(rng, tmp_path, capsys):
    data = [rng.standard_normal((2, 3, 6, 6)).astype(np.float32) for _ in range(4)]

    class MyCalibrator(calib.Calibrator):
        def __init__(self):
            super().__init__(algorithm="percentile", percentile=99.0)
            self.it = iter(data)
            self.written = None

        def get_batch(self):
            a = next(self.it, None)
            return None if a is None else {"images": a}

        def write_cache(self, blob):
            self.written = blob

        def __len__(self):
            return len(data)

    cal = MyCalibrator()
    net = calib.quantize(_net(), cal, report=False)
    assert net.quant_report.algorithm == "percentile" and net.quant_report.batches == 4
    assert cal.written is not None and b"trtdsl.calibration" in cal.written  # JSON by default
    err = capsys.readouterr().err
    assert "4/4" in err and "batch/s" in err  # tqdm: batches and batches per second


def test_no_batches_is_an_error():
    class Empty(calib.Calibrator):
        def get_batch(self):
            return None

    with pytest.raises(CalibrationError, match="returned no batch"):
        calib.quantize(_net(), Empty(progress=False), report=False)


def test_bad_sources_and_options():
    with pytest.raises(CalibrationError, match="needs a Calibrator"):
        calib.quantize(_net(), 3.0, report=False)
    with pytest.raises(CalibrationError, match="dtype must be 'int8' or 'fp8'"):
        calib.quantize(_net(), {}, dtype="int4", report=False)
    with pytest.raises(CalibrationError, match="integer levels only"):
        calib.quantize(_net(), calib.ArrayCalibrator(np.zeros((2, 3, 6, 6), np.float32)), dtype="fp8", report=False)
    with pytest.raises(CalibrationError, match="batch_size must be a positive int"):
        calib.ArrayCalibrator(np.zeros((2, 3)), batch_size=0)
    with pytest.raises(CalibrationError, match="share their first"):
        calib.ArrayCalibrator({"a": np.zeros((2, 3)), "b": np.zeros((3, 3))})
    with pytest.raises(CalibrationError, match="range of 'images' must be a number"):
        calib.quantize(_net(), {"images": "big"}, report=False)


def test_npz_with_pickles_is_refused(tmp_path):
    p = tmp_path / "obj.npy"
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CalibrationError, match="cannot read calibration data"):
        calib.ArrayCalibrator(p)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CalibrationError, match="junk.npz"):
        calib.ArrayCalibrator(tmp_path / "junk.npz")
