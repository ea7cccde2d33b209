"""Train the small digits CNN whose weights ship in weights/ (run once; needs torch and scikit-learn).

The data are scikit-learn's bundled copy of the UCI handwritten digits (8x8
grey images, 1,797 samples). The weights are saved as a torchvision-layout
state_dict in npz (names like 'features.0.weight', 'features.1.running_mean'),
and the held-out split with the trained model's own outputs on it, so the
main job can compare trtdsl against PyTorch on real data without torch.

    python examples/train_digits.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

OUT = Path(__file__).resolve().parent.parent / "weights"


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.GELU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def main() -> None:
    torch.manual_seed(0)
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8) in [0, 1]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    test, train = order[:400], order[400:]
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x[train]), torch.from_numpy(y[train])
    for _epoch in range(30):
        model.train()
        for idx in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x[test])).numpy()
    acc = float((logits.argmax(1) == y[test]).mean())
    print(f"held-out accuracy {acc:.4f}")
    state = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    np.savez(OUT / "digits_cnn.npz", **state)
    np.savez(OUT / "digits_test.npz", images=x[test], labels=y[test], torch_logits=logits)


if __name__ == "__main__":
    main()
