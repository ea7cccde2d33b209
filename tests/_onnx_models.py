"""The torchvision-to-ONNX helpers, wherever they live: bench/models.py (interpreter-speed branch) or tests/reference."""

from __future__ import annotations

try:
    from bench.models import INPUT, MODELS, OUTPUT, example, export, onnxruntime_run, resnet50
except ImportError:  # before the move
    from .reference.onnx_models import INPUT, MODELS, OUTPUT, example, export, onnxruntime_run, resnet50

__all__ = ["INPUT", "MODELS", "OUTPUT", "example", "export", "onnxruntime_run", "resnet50"]
