"""Train the Keras digits model whose files ship in weights/ (run once; needs keras 3, torch, scikit-learn).

The same task and the same split as examples/train_digits.py (scikit-learn's
bundled UCI handwritten digits, 8x8, the first 400 of a seeded permutation
held out), trained with Keras 3 on its torch backend and saved twice, as the
legacy ``.h5`` and as the ``.keras`` zip. Keras' own predictions on the test
split are recorded beside them, so the main job can check the port against
Keras on a machine without Keras. It also writes the calibration images the
INT8/FP8 rows of the main job use: 256 images from the training split, never
from the test split.

    KERAS_BACKEND=torch python examples/train_keras_digits.py
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 picks its backend at import

from pathlib import Path

import keras
import numpy as np
from sklearn.datasets import load_digits

OUT = Path(__file__).resolve().parent.parent / "weights"
CALIBRATION_IMAGES = 256


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) as NCHW float32 in [0, 1]; the split of train_digits.py."""
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    test, train = order[:400], order[400:]
    return x[train], y[train], x[test], y[test]


def make_model() -> keras.Model:
    """A small functional CNN in Keras' own NHWC layout; 'same' padding with stride 2 pads at the end."""
    inputs = keras.Input((8, 8, 1), name="images")
    h = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(inputs)
    h = keras.layers.BatchNormalization(name="bn1")(h)
    h = keras.layers.ReLU(name="relu1")(h)
    h = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(64, activation="relu", name="fc1")(h)
    logits = keras.layers.Dense(10, name="logits")(h)
    return keras.Model(inputs, logits, name="digits_keras")


def main() -> None:
    keras.utils.set_random_seed(0)
    x_train, y_train, x_test, y_test = split()
    nhwc = lambda a: np.ascontiguousarray(a.transpose(0, 2, 3, 1))  # noqa: E731
    model = make_model()
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(nhwc(x_train), y_train, batch_size=64, epochs=30, verbose=0)
    logits = model.predict(nhwc(x_test), batch_size=400, verbose=0)
    acc = float((logits.argmax(1) == y_test).mean())
    print(f"Keras {keras.__version__} ({keras.backend.backend()} backend): held-out accuracy {acc:.4f}")
    model.save(OUT / "digits_keras.h5")
    model.save(OUT / "digits_keras.keras")
    np.savez(
        OUT / "digits_keras_test.npz",
        labels=y_test,  # the images are digits_test.npz's (same split), in NCHW there
        keras_logits=logits.astype(np.float32),
        keras_version=np.array(keras.__version__),
    )
    pick = np.random.default_rng(1).choice(len(x_train), CALIBRATION_IMAGES, replace=False)
    np.savez(OUT / "digits_calib.npz", images=x_train[np.sort(pick)])
    print(f"wrote {OUT}/digits_keras.h5, .keras, digits_keras_test.npz, digits_calib.npz")


if __name__ == "__main__":
    main()
