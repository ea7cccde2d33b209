"""The one exception family of trtdsl.

Every error a user can trigger derives from :class:`TrtdslError`, so
``except trtdsl.TrtdslError`` catches all of them. Messages say what failed,
where (layer, tensor or weight key), what was expected and what was received,
and suggest a near match when there is one.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TrtdslError(Exception):
    """Base class of every error raised by trtdsl."""


class BackendError(TrtdslError):
    """TensorRT (or cuda-python) is missing or unusable on this machine."""


class ShapeError(TrtdslError):
    """A tensor or weight has a shape or dtype the operation cannot take."""


class ArgumentError(TrtdslError, TypeError):
    """An op, block or model was called with an argument of the wrong type (an array for a Tensor)."""


class CudaError(TrtdslError):
    """A CUDA runtime call failed; ``call``, ``code`` and ``error`` say which and why."""

    def __init__(self, call: str, code: int, error: str, detail: str = ""):
        self.call, self.code, self.error = call, int(code), error
        super().__init__(f"{call} failed: {error} ({int(code)}){': ' + detail if detail else ''}")


class WeightError(TrtdslError):
    """A weight is missing, malformed, or a weight file cannot be read."""


class WeightShapeError(WeightError, ShapeError):
    """A weight exists but its shape does not fit; caught by ``except WeightError`` and ``except ShapeError``."""


class ProfileError(TrtdslError):
    """A dynamic dimension has no valid range, or a shape is outside every profile."""


class UnsupportedLayerError(TrtdslError):
    """The reference interpreter has no implementation for a layer type."""


class InterpreterError(TrtdslError):
    """A layer failed while the reference interpreter ran it."""


class BuildError(TrtdslError):
    """TensorRT failed to build a serialized engine."""


class OnnxParseError(TrtdslError):
    """An ONNX file was refused: by trtdsl's checks (trtdsl/onnxcheck.py) or by TensorRT's parser."""


class GoldenMismatch(TrtdslError, AssertionError):
    """Outputs differ from the golden reference beyond tolerance."""


def did_you_mean(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return ' Did you mean 'x'?' for the closest candidates, or ''.

    Case is ignored in the comparison ('X' finds 'x', 'Conv1.Weight' finds 'conv1.weight');
    names that differ only in case come first.
    """
    options = [c for c in candidates if isinstance(c, str)]
    folded: dict[str, list[str]] = {}
    for c in options:
        folded.setdefault(c.casefold(), []).append(c)
    key = str(name).casefold()
    same = [c for c in folded.get(key, []) if c != name]
    close = [c for k in difflib.get_close_matches(key, list(folded), n=n, cutoff=0.6) for c in folded[k]]
    matches = list(dict.fromkeys(same + [c for c in close if c != name]))[:n]
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"


class KerasError(TrtdslError):
    """A Keras model file cannot be converted: a malformed config, a refused layer, missing weights."""


class UnsupportedKerasLayerError(KerasError, UnsupportedLayerError):
    """A Keras layer class has no converter (register one with ``@trtdsl.keras.converts``)."""


class CalibrationError(TrtdslError):
    """Calibration cannot proceed: bad calibration data, algorithm or options."""


class CacheError(CalibrationError):
    """A calibration cache is malformed, of a foreign format, or does not fit the network."""


class CalibrationWarning(TrtdslError, UserWarning):
    """A calibration cache or data does not quite fit the network (missing or stray tensors)."""
