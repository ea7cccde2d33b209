"""A Keras model written by hand with the DSL, its weights read from the Keras file itself.

    python examples/keras_handwritten.py            # compares with Keras' own recorded prediction
    trtdsl build examples/keras_handwritten.py -o convnet.plan

``trtdsl.keras.load_model`` does all of this automatically; this script is for
users who prefer to write the network themselves. It shows the Keras traps a
hand-written port must handle: Keras tensors are NHWC (one transpose at the
input, then NCHW inside TensorRT), kernels are HWIO (``layout.keras_conv``),
'same' padding with stride 2 puts the extra pixel at the end (SAME_UPPER),
BatchNorm's epsilon is 1e-3, and Flatten orders features (h, w, c), so the
first Dense kernel's rows are permuted (``layout.nhwc_flatten_rows``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import trtdsl
from trtdsl import ops
from trtdsl.weights import layout

MODEL = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "keras" / "k2" / "small_convnet.h5"


def build_network(dtype: str = "float32", path: Path = MODEL) -> trtdsl.Network:
    w = trtdsl.weights.load(path)  # names '<layer>/<weight>', e.g. 'conv1/kernel', 'bn1/moving_mean'
    net = trtdsl.Network("small_convnet", dtype=dtype)
    batch = net.dim("batch", 1, 8, 32)
    x = net.input("image", "float32", (batch, 16, 16, 3))  # Keras' NHWC
    y = ops.permute(x, (0, 3, 1, 2), name="to_nchw")
    with net.scope("conv1"):
        y = ops.conv2d(y, layout.keras_conv(w.take("conv1/kernel")), w.take("conv1/bias"), stride=2, padding="same")
        y = ops.relu(y)
    with net.scope("bn1"):
        bn = w.scope("bn1")
        y = ops.batch_norm(y, bn.take("moving_mean"), bn.take("moving_variance"), bn.take("gamma"), bn.take("beta"),
                           eps=1e-3)  # fmt: skip
    y = ops.max_pool2d(y, 2, name="pool1")
    with net.scope("conv2"):
        y = ops.silu(ops.conv2d(y, layout.keras_conv(w.take("conv2/kernel")), w.take("conv2/bias"), padding="same"))
    feature_shape = (4, 4, 16)  # Keras' (h, w, c) before Flatten
    y = ops.flatten(y, 1, name="flatten")  # (c, h, w) order inside TensorRT
    with net.scope("fc1"):
        k = layout.nhwc_flatten_rows(layout.keras_dense(w.take("fc1/kernel")), feature_shape, axis=1)
        y = ops.relu(ops.linear(y, k, w.take("fc1/bias")))
    with net.scope("logits"):
        y = ops.linear(y, layout.keras_dense(w.take("logits/kernel")), w.take("logits/bias"))
    net.output(y, "logits")
    w.check_all_used("examples/keras_handwritten.py")  # every weight in the file went into the network
    return net


def main() -> int:
    net = build_network()
    with np.load(MODEL.with_suffix(".npz")) as data:
        image, keras_logits = data["in:0"], data["out:0"]
    got = trtdsl.reference.run(net, {"image": image})["logits"]
    err = float(np.abs(got - keras_logits).max() / np.abs(keras_logits).max())
    print(f"max error vs Keras' own prediction, relative to its largest logit: {err:.2e}")
    auto = trtdsl.reference.run(trtdsl.keras.load_model(MODEL), {"image": image})["logits"]
    print(
        f"trtdsl.keras.load_model on the same file: {float(np.abs(auto - keras_logits).max() / np.abs(keras_logits).max()):.2e}"
    )
    ok = err <= 1e-4
    print("MATCH" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
