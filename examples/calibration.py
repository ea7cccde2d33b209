"""INT8 calibration the TensorRT 11 way: a custom Calibrator subclass, and a TensorRT 10 calibration cache.

TensorRT 11 removed ``IInt8EntropyCalibrator2``; ``trtdsl.calib`` gives the same
workflow back on strongly typed networks: a calibrator hands out batches,
``quantize`` observes the tensors that TensorRT's Q/DQ placement rules quantize,
picks ranges with the entropy algorithm, writes the cache, and rewrites the
network with explicit Quantize/Dequantize layers.

1. ``DigitsCalibrator`` subclasses ``trtdsl.calib.Calibrator``: ``get_batch()``
   returns the next ``{input name: array}`` or None, exactly where a TensorRT 10
   calibrator's ``get_batch`` returned device pointers.
2. The cache it writes is TensorRT's own legacy text format
   (``TRT-100000-EntropyCalibration2``, then ``tensor: <scale as hex float32>``),
   so a cache from a TensorRT <= 10 project is read the same way: pass its path
   to ``quantize``. Entries are matched by tensor name (a network from
   ``trtdsl.onnx.parse`` of the same ONNX file has the names TensorRT 10 used).

    python examples/calibration.py out/
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from digits_cnn import build_network

import trtdsl
from trtdsl import calib

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


class DigitsCalibrator(calib.Calibrator):
    """Training-split digits in batches, with the preprocessing the model was trained with."""

    def __init__(self, path: Path = WEIGHTS / "digits_calib.npz", batch_size: int = 32, **options):
        super().__init__(**options)  # algorithm=, cache=, progress=, num_bins= ...
        with np.load(path, allow_pickle=False) as data:
            self.images = data["images"]
        self.batch_size = batch_size
        self.position = 0
        self.calls = 0

    def get_batch(self) -> dict[str, np.ndarray] | None:
        self.calls += 1
        if self.position >= len(self.images):
            return None  # calibration data exhausted, as in TensorRT 10
        batch = self.images[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return {"images": np.clip(batch, 0.0, 1.0).astype(np.float32)}  # the training preprocessing


def calibrate(cache: Path) -> trtdsl.Network:
    """Quantize the digits CNN with the custom calibrator; the cache is written in TensorRT's format."""
    net = build_network("float32")
    return calib.quantize(
        net, DigitsCalibrator(cache=cache, progress=False), dtype="int8", algorithm="entropy", report=False
    )


def from_cache(cache: Path) -> trtdsl.Network:
    """Quantize with the ranges of an existing (TensorRT 10 style) cache: no data needed."""
    return calib.quantize(build_network("float32"), cache, dtype="int8", report=False)


def accuracy(net: trtdsl.Network) -> float:
    with np.load(WEIGHTS / "digits_test.npz", allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    logits = np.concatenate([trtdsl.reference.run(net, {"images": b})["logits"] for b in np.array_split(images, 2)])
    return float((logits.argmax(1) == labels).mean())


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "out")
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "digits_int8.cache"
    cache.unlink(missing_ok=True)
    print(f"calibrated: accuracy {accuracy(calibrate(cache)):.4f}; cache {cache}:")
    print("\n".join(cache.read_text().splitlines()[:4]) + "\n...")
    print(f"from the cache: accuracy {accuracy(from_cache(cache)):.4f}")
    trtdsl.build(from_cache(cache)).save(out / "digits_int8.plan")
