"""Serve a trtdsl plan with NVIDIA Triton Inference Server: write a model repository.

    python examples/triton_export.py model_repository
    # same from the command line:
    trtdsl build examples/digits_cnn.py -o digits.plan
    trtdsl export triton digits.plan --repository model_repository --instances 2
    # then, on the server (full TensorRT, same version as the build):
    tritonserver --model-repository model_repository

The config's inputs, outputs, dims (batch dim left out: max_batch_size is the
profile's largest batch), profile indices and dynamic batching all come from
the plan's metadata. Triton runs full TensorRT: a plan built here with
TensorRT-RTX exports with a warning to rebuild it with the server's TensorRT.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from digits_cnn import build_network

import trtdsl
from trtdsl.triton import TritonCompatibilityWarning


def main(repository: str) -> Path:
    plan = trtdsl.build(build_network("float16"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TritonCompatibilityWarning)
        model = plan.export_triton(repository, name="digits", instances=2, overwrite=True)
    for w in caught:
        print(f"warning: {w.message}")
    print(model.text)
    return model.config


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "model_repository")
