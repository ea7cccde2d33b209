"""Train the MobileNet-style digits network whose weights ship in weights/ (run once; needs torch, torchvision, scikit-learn).

scikit-learn's 8x8 digits, upscaled to 32x32 (bilinear), classified by a small
MobileNetV3-style network built from torchvision's own blocks: a hard-swish stem,
inverted residuals with depthwise convolutions, squeeze-excite and residual adds,
and a linear head. The split is train_digits.py's (400 test images, the rest
train), so calibration can use the training split and accuracy the test split.
The weights are a torchvision-layout state_dict in npz; examples/digits_mobilenet.py
defines the same network with trtdsl.

    python examples/train_digits_mobilenet.py [--out DIR]
"""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from torchvision.models.mobilenetv3 import InvertedResidual, InvertedResidualConfig
from torchvision.ops.misc import Conv2dNormActivation

OUT = Path(__file__).resolve().parent.parent / "weights"
# (in, kernel, expanded, out, squeeze-excite, activation, stride): the blocks of digits_mobilenet.py.
BLOCKS = [
    (16, 3, 32, 16, True, "HS", 1),
    (16, 3, 48, 24, False, "RE", 2),
    (24, 3, 72, 24, True, "HS", 1),
    (24, 5, 96, 24, True, "HS", 1),
]


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, train index, test index): 32x32 images in [0, 1] and train_digits.py's split."""
    digits = load_digits()
    x8 = torch.from_numpy((digits.images.astype(np.float32) / 16.0)[:, None])
    x = nn.functional.interpolate(x8, size=(32, 32), mode="bilinear", align_corners=False).numpy()
    order = np.random.default_rng(0).permutation(len(x))
    return x, digits.target.astype(np.int64), order[400:], order[:400]


class DigitsMobileNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        layers: list[nn.Module] = [
            Conv2dNormActivation(1, 16, kernel_size=3, stride=2, norm_layer=norm, activation_layer=nn.Hardswish)
        ]
        for cin, k, exp, cout, se, act, s in BLOCKS:
            layers.append(InvertedResidual(InvertedResidualConfig(cin, k, exp, cout, se, act, s, 1, 1.0), norm))
        layers.append(Conv2dNormActivation(24, 64, kernel_size=1, norm_layer=norm, activation_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=OUT, help="where to write the npz files (default weights/)")
    p.add_argument("--epochs", type=int, default=60)
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)  # reproducible, and small convolutions gain nothing from threads
    x, y, train, test = data()
    model = DigitsMobileNet()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x[train]), torch.from_numpy(y[train])
    for _epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x[test])).numpy()
    print(f"held-out accuracy {float((logits.argmax(1) == y[test]).mean()):.4f}")
    state = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "digits_mobilenet.npz", **state)
    np.savez(args.out / "digits_mobilenet_test.npz", labels=y[test], torch_logits=logits)


if __name__ == "__main__":
    main()
