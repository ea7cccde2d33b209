"""Calibration for strongly-typed TensorRT: calibrators, statistics, range algorithms, caches, Q/DQ placement.

TensorRT 11 has no implicit INT8 calibration; ``quantize`` gives it back natively:

    calib = trtdsl.calib.ArrayCalibrator("calib.npz", batch_size=32)
    net = trtdsl.calib.quantize(net, calib, dtype="int8", algorithm="entropy")
    plan = trtdsl.build(net)

See docs/calibration.md.
"""

from ..argcheck import check_all
from .algorithms import (
    ALGORITHMS,
    compute_amax,
    entropy,
    entropy_divergences,
    entropy_legacy,
    entropy_legacy_divergences,
    max_amax,
    mse,
    mse_errors,
    percentile,
)
from .cache import CalibrationCache, format_json, format_legacy, load_cache, parse_cache
from .calibrators import ArrayCalibrator, Calibrator, ImageFolderCalibrator, IterableCalibrator, check_feeds
from .observe import Collector, Histogram
from .qdq import Placement, plan
from .quantize import Report, calibrate, quantize

__all__ = [
    "ALGORITHMS", "ArrayCalibrator", "CalibrationCache", "Calibrator", "Collector", "Histogram",
    "ImageFolderCalibrator", "IterableCalibrator", "Placement", "Report", "calibrate", "check_feeds",
    "compute_amax", "entropy", "entropy_divergences", "entropy_legacy", "entropy_legacy_divergences",
    "format_json", "format_legacy", "load_cache", "max_amax", "mse", "mse_errors", "parse_cache",
    "percentile", "plan", "quantize",
]  # fmt: skip

check_all(globals(), __all__, "trtdsl.calib")  # a wrongly typed argument is an ArgumentError naming it
