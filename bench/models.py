"""Real architectures exported to ONNX, parsed by TensorRT's own parser, run by ONNX Runtime.

Shared by tests/reference/test_onnx_models.py and bench/reference.py (torch is
never a runtime dependency of trtdsl, so these live in bench/, which the tests
import through pytest's ``pythonpath``). Weights are random (seeded). The small
test models get randomized batch-norm statistics, so a misread normalization
cannot hide behind the identity statistics of a fresh module; the full-size
benchmark models (``SUITE``) get statistics calibrated by forward passes in
training mode, so their activations have the scale of a trained network's
(random init with identity statistics lets activations grow or vanish layer by
layer, which makes timings of activations and softmax unrepresentative).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

INPUT = "input"
OUTPUT = "output"


@dataclass
class Spec:
    """How to build one model and the example input it is exported with."""

    make: Callable[[], Any]  # () -> torch.nn.Module in eval mode
    shape: tuple[int, ...]
    dtype: str = "float32"
    vocab: int = 0  # integer inputs (token ids) are drawn from [0, vocab)


def _randomize_norms(model: Any, seed: int) -> Any:
    import torch

    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=g))
                m.weight.copy_(0.5 + torch.rand(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
    return model.eval()


def resnet18() -> Any:
    import torch
    import torchvision

    torch.manual_seed(0)
    return _randomize_norms(torchvision.models.resnet18(weights=None, num_classes=10), 0)


def resnet50() -> Any:
    import torch
    import torchvision

    torch.manual_seed(0)
    return _randomize_norms(torchvision.models.resnet50(weights=None), 0)


def mobilenet_v3_small() -> Any:
    import torch
    import torchvision

    torch.manual_seed(1)
    return _randomize_norms(torchvision.models.mobilenet_v3_small(weights=None, num_classes=10), 1)


def vit_tiny() -> Any:
    import torch
    import torchvision

    torch.manual_seed(2)
    return torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10
    ).eval()


def encoder_layer() -> Any:
    import torch

    class Block(torch.nn.Module):
        """Hides the layer's optional arguments: the legacy exporter would trace their defaults
        (``is_causal=False``) as tensor inputs, which ``scaled_dot_product_attention`` rejects."""

        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x)

    torch.manual_seed(3)
    return Block().eval()


class _TextCNN:
    """Token ids -> embedding -> Conv1d -> GELU -> LayerNorm -> mean over time -> Linear (no recurrence)."""

    @staticmethod
    def make(vocab: int = 100, dim: int = 32, hidden: int = 48, classes: int = 5) -> Any:
        import torch
        from torch import nn

        class TextCNN(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.embed = nn.Embedding(vocab, dim)
                self.conv = nn.Conv1d(dim, hidden, kernel_size=3, padding=1)
                self.norm = nn.LayerNorm(hidden)
                self.head = nn.Linear(hidden, classes)

            def forward(self, tokens: torch.Tensor) -> torch.Tensor:
                h = self.embed(tokens).transpose(1, 2)  # (N, dim, T) for Conv1d
                h = nn.functional.gelu(self.conv(h)).transpose(1, 2)
                return self.head(self.norm(h).mean(dim=1))

        torch.manual_seed(4)
        return TextCNN().eval()


def _calibrate_norms(model: Any, shape: tuple[int, ...], seed: int, passes: int = 3) -> Any:
    """Set every BatchNorm's running statistics to those of the activations of random inputs.

    Training-mode forward passes with ``momentum=None`` average the batch statistics,
    so each normalization sees the statistics of the data that reaches it, as after training.
    """
    import torch

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(passes):
            model(torch.randn((max(shape[0], 4), *shape[1:]), generator=g))
    return model.eval()


def _torchvision(name: str, seed: int) -> Callable[[], Any]:
    def make() -> Any:
        import torch
        import torchvision

        torch.manual_seed(seed)
        model = getattr(torchvision.models, name)(weights=None)
        head = getattr(getattr(model, "heads", None), "head", None)
        if head is not None:  # torchvision's ViT starts with a zero classifier: every logit 0
            torch.nn.init.normal_(head.weight, std=0.02)
        return _calibrate_norms(model, (1, 3, 224, 224), seed)

    return make


def bert_encoder(layers: int = 4, dim: int = 768, heads: int = 12, hidden: int = 3072) -> Any:
    """A BERT-base-size encoder stack (post-norm, GELU), over embeddings (N, seq, dim)."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layer = torch.nn.TransformerEncoderLayer(
                d_model=dim, nhead=heads, dim_feedforward=hidden, activation="gelu", batch_first=True, dropout=0.0
            )
            self.encoder = torch.nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.encoder(x)

    torch.manual_seed(5)
    return Encoder().eval()


MODELS: dict[str, Spec] = {
    "resnet18": Spec(resnet18, (1, 3, 64, 64)),
    "mobilenet_v3_small": Spec(mobilenet_v3_small, (1, 3, 64, 64)),
    "vit": Spec(vit_tiny, (1, 3, 32, 32)),
    "encoder_layer": Spec(encoder_layer, (1, 10, 32)),
    "text_cnn": Spec(_TextCNN.make, (1, 16), "int64", vocab=100),
    "resnet50": Spec(resnet50, (1, 3, 224, 224)),
}

# The benchmark suite (bench/reference.py --suite): full-size networks, calibrated statistics.
SUITE: dict[str, Spec] = {
    "resnet50": Spec(_torchvision("resnet50", 10), (1, 3, 224, 224)),
    "resnet50_b8": Spec(_torchvision("resnet50", 10), (8, 3, 224, 224)),
    "mobilenet_v2": Spec(_torchvision("mobilenet_v2", 11), (1, 3, 224, 224)),
    "mobilenet_v3_large": Spec(_torchvision("mobilenet_v3_large", 12), (1, 3, 224, 224)),
    "efficientnet_b0": Spec(_torchvision("efficientnet_b0", 13), (1, 3, 224, 224)),
    "vit_b_16": Spec(_torchvision("vit_b_16", 14), (1, 3, 224, 224)),
    "bert_encoder": Spec(bert_encoder, (1, 128, 768)),
}

# More torchvision families, beyond the suite (``bench/reference.py --suite --families``): grouped
# convolutions (ResNeXt, RegNet), channel shuffles and splits (ShuffleNetV2), fire modules
# (SqueezeNet), dense concatenations (DenseNet), inception branches (GoogLeNet), NAS blocks
# (MnasNet), fused-MBConv (EfficientNetV2), depthwise 7x7 with layer norm (ConvNeXt), windowed
# attention (Swin).
FAMILIES: dict[str, Spec] = {
    name: Spec(_torchvision(name, 20 + i), (1, 3, 224, 224))
    for i, name in enumerate(
        ["resnext50_32x4d", "regnet_y_400mf", "shufflenet_v2_x1_0", "squeezenet1_1", "densenet121", "googlenet",
         "mnasnet1_0", "efficientnet_v2_s", "convnext_tiny", "swin_t"]
    )
}  # fmt: skip


def example(spec: Spec, batch: int | None = None, seed: int = 0) -> np.ndarray:
    """A random input for ``spec``, with its batch dimension replaced by ``batch`` when given."""
    shape = spec.shape if batch is None else (batch, *spec.shape[1:])
    rng = np.random.default_rng(seed)
    if spec.vocab:
        return rng.integers(0, spec.vocab, size=shape).astype(spec.dtype)
    return rng.standard_normal(shape).astype(spec.dtype)


def export(name: str, path: Path, *, dynamic_batch: bool = False, models: dict[str, Spec] | None = None) -> Path:
    """Export model ``name`` of ``models`` (default ``MODELS``) to ONNX (legacy TorchScript exporter, opset 17)."""
    import warnings

    import torch

    spec = (MODELS if models is None else models)[name]
    model = spec.make()
    args = (torch.from_numpy(example(spec)),)
    axes = {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}} if dynamic_batch else None
    fastpath = torch.backends.mha.get_fastpath_enabled()
    # The fused attention fast path of eval-mode transformers has no ONNX export.
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer warnings
            torch.onnx.export(
                model,
                args,
                str(path),
                dynamo=False,
                opset_version=17,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_axes=axes,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return path


@dataclass
class Parsed:
    """A network from ``trt.OnnxParser``; builder and parser are kept alive with it."""

    network: Any
    builder: Any
    parser: Any

    def layer_types(self) -> list[str]:
        return [self.network.get_layer(i).type.name.lower() for i in range(self.network.num_layers)]


def parse(path: Path) -> Parsed:
    """Parse an ONNX file with TensorRT's parser; raise with the parser's own errors if it fails."""
    from trtdsl import _trt

    trt = _trt.load()
    builder = trt.Builder(_trt.logger())
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, _trt.logger())
    if not parser.parse(Path(path).read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT's ONNX parser rejected {path}: " + "; ".join(errors))
    return Parsed(network, builder, parser)


def onnxruntime_session(path: Path, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnxruntime_run(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = onnxruntime_session(path)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))
