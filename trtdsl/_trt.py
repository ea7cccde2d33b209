"""The only module that imports TensorRT.

``tensorrt`` (full TensorRT) is preferred when it is installed, otherwise
``tensorrt_rtx`` (TensorRT for RTX, installable from PyPI, builds engines on a
CPU-only machine). ``TRTDSL_TENSORRT=tensorrt|tensorrt_rtx`` forces one.

Import is lazy: ``import trtdsl`` works with no TensorRT at all, and the first
call that needs it raises :class:`BackendError` naming the pip extra.
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

from .errors import BackendError

ENV_VAR = "TRTDSL_TENSORRT"
_CHOICES = ("tensorrt", "tensorrt_rtx")
_EXTRA = {"tensorrt": "trtdsl[trt]", "tensorrt_rtx": "trtdsl[rtx]"}
_module: ModuleType | None = None

log = logging.getLogger("trtdsl.tensorrt")


def load() -> ModuleType:
    """Return the TensorRT module, importing it on first use."""
    global _module
    if _module is not None:
        return _module
    forced = os.environ.get(ENV_VAR, "").strip()
    if forced and forced not in _CHOICES:
        raise BackendError(f"{ENV_VAR}={forced!r} is not a TensorRT flavour; expected one of {', '.join(_CHOICES)}.")
    errors = []
    for name in (forced,) if forced else _CHOICES:
        try:
            _module = importlib.import_module(name)
            return _module
        except ImportError as e:
            errors.append(f"{name}: {e}")
    if forced:
        raise BackendError(
            f"{ENV_VAR}={forced} but {forced} cannot be imported ({errors[0]}). "
            f"Install it with: pip install '{_EXTRA[forced]}'"
        )
    raise BackendError(
        "TensorRT is not installed. Install TensorRT for RTX from PyPI with "
        "pip install 'trtdsl[rtx]' (or full TensorRT with 'trtdsl[trt]' from NVIDIA's index). "
        f"Tried: {'; '.join(errors)}"
    )


def name() -> str:
    """``'tensorrt'`` or ``'tensorrt_rtx'``."""
    return load().__name__.split(".")[0]


def available() -> bool:
    try:
        load()
    except BackendError:
        return False
    return True


def is_rtx() -> bool:
    return name() == "tensorrt_rtx"


_LEVELS = None


class _PythonLogger:
    """Factory for a trt.ILogger that forwards to Python ``logging``."""

    _instance = None

    @classmethod
    def get(cls):
        if cls._instance is None:
            trt = load()
            levels = {
                trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL,
                trt.ILogger.Severity.ERROR: logging.ERROR,
                trt.ILogger.Severity.WARNING: logging.WARNING,
                trt.ILogger.Severity.INFO: logging.INFO,
                trt.ILogger.Severity.VERBOSE: logging.DEBUG,
            }

            class Logger(trt.ILogger):
                def __init__(self):
                    trt.ILogger.__init__(self)
                    self.errors: list[str] = []

                def log(self, severity, msg):
                    level = levels.get(severity, logging.INFO)
                    if level >= logging.ERROR:
                        self.errors.append(msg)
                    log.log(level, "%s", msg)

            cls._instance = Logger()
        return cls._instance


def logger():
    """A process-wide ``trt.ILogger`` that forwards TensorRT messages to ``logging``
    (logger name ``trtdsl.tensorrt``). TensorRT requires one logger per process."""
    return _PythonLogger.get()
