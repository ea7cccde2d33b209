"""A Keras model file (.h5 or .keras) to a TensorRT plan, checked against Keras' own outputs.

    python examples/keras_to_plan.py weights/digits_keras.h5 -o digits_keras.plan

trtdsl.keras reads the file with h5py (no Keras, no TensorFlow, no code from
the file is run) and writes each Keras layer as DSL ops; ``layout="NCHW"``
lets channels-last models take channels-first images with no transposes at
the input. The committed digits model carries Keras' own logits on the test
split (weights/digits_keras_test.npz), recorded when it was trained.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import trtdsl
import trtdsl.keras

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(WEIGHTS / "digits_keras.h5"))
    parser.add_argument("-o", "--output", default="digits_keras.plan")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args(argv)
    net = trtdsl.keras.load_model(args.model, batch=(1, 64, 400), dtype=args.dtype, layout="NCHW")
    plan = trtdsl.build(net, weights=net.keras_weights)  # raises if any Keras weight went unused
    plan.save(args.output)
    print(plan.summary())
    with np.load(WEIGHTS / "digits_test.npz") as t, np.load(WEIGHTS / "digits_keras_test.npz") as k:
        images, keras_logits, version = t["images"], k["keras_logits"], str(k["keras_version"])
    logits = trtdsl.reference.run(net, {"images": images})["logits"]
    diff = float(np.abs(logits - keras_logits).max() / np.abs(keras_logits).max())
    print(f"reference interpreter vs Keras {version}: max |diff| {diff:.1e} of the largest logit")
    return diff


if __name__ == "__main__":
    sys.exit(0 if main() <= 1e-4 else 1)
