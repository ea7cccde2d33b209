"""Shared by the layer and model tests: random torch modules in eval mode and their weights as arrays."""

from __future__ import annotations

import numpy as np
import torch

import trtdsl
from trtdsl import reference


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random parameters and BatchNorm statistics (so folding is exercised), eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 1.5 + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.2)
            elif name.endswith(".weight") and t.ndim == 1 and "norm" not in name.lower() and "ln" not in name:
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)  # BN gamma near 1
            else:
                fan_in = int(np.prod(t.shape[1:])) if t.ndim > 1 else max(t.numel(), 1)
                t.copy_(torch.randn(t.shape, generator=g) / np.sqrt(fan_in))
    return module.eval()


def state(module: torch.nn.Module, prefix: str = "") -> dict[str, np.ndarray]:
    return {prefix + k: v.detach().numpy().copy() for k, v in module.state_dict().items() if v.is_floating_point()}


def run(net: trtdsl.Network, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return reference.run(net, feeds)


def close(got: np.ndarray, want: torch.Tensor | np.ndarray, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else want
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
