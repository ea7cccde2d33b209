"""Reusable blocks built from ``trtdsl.ops`` and bound to checkpoint weights by name.

Every block takes ``(x, w, prefix, ...)``: ``w`` is a ``WeightStore`` (a file, a
scope of one, or an enclosing block's view) or a plain mapping of name -> array
(a dict, an ``np.load`` result), which becomes an in-memory ``WeightStore``; and
``prefix`` is the block's key prefix in it, relative to ``w``.
The block names its TensorRT layers from the same prefix in the network's
current scope, and checks every weight's shape, naming the block, the key and
the expected shape when one is missing or wrong.

Example::

    w = trtdsl.weights.load("resnet18.npz")
    x = layers.conv_bn_act(x, w, "conv1", "bn1", stride=2, padding=3, act="relu")
    x = layers.residual_block(x, w, "layer1.0")
"""

from ..argcheck import check_all
from .attention import mlp, multi_head_attention
from .blocks import bottleneck_block, depthwise_separable, inverted_residual, residual_block, squeeze_excite
from .conv import batch_norm_params, conv_bn_act, fold_batch_norm
from .linear import linear
from .recurrent import gru, lstm, simple_rnn
from .rope import rope_tables, rotary
from .transformer import (
    TORCH_KEYS,
    VIT_KEYS,
    embedding,
    layer_norm,
    sinusoidal_positions,
    transformer_encoder_layer,
)

__all__ = [
    "TORCH_KEYS", "VIT_KEYS", "batch_norm_params", "bottleneck_block", "conv_bn_act", "depthwise_separable",
    "embedding", "fold_batch_norm", "gru", "inverted_residual", "layer_norm", "linear", "lstm", "mlp",
    "multi_head_attention", "residual_block", "simple_rnn", "sinusoidal_positions", "squeeze_excite",
    "transformer_encoder_layer",
    "rope_tables", "rotary",
]  # fmt: skip

check_all(globals(), __all__, "layers")  # a wrongly typed argument is an ArgumentError naming it
