"""A Vision Transformer encoder in torchvision's ``VisionTransformer`` layout.

Keys: ``conv_proj``, ``class_token``, ``encoder.pos_embedding``,
``encoder.layers.encoder_layer_<i>.{ln_1, self_attention, ln_2, mlp.0, mlp.3}``,
``encoder.ln`` and optionally ``heads.pre_logits``/``heads.head``.
"""

from __future__ import annotations

import itertools

import numpy as np

from .. import ops
from ..errors import ShapeError
from ..layers import VIT_KEYS, conv_bn_act, layer_norm, linear, transformer_encoder_layer
from ..network import Network
from ..tensor import Tensor
from ._common import WeightsArg, params

__all__ = ["vit"]


def vit(net: Network, x: Tensor, weights: WeightsArg, *, num_heads: int, eps: float = 1e-6) -> Tensor:
    """ViT on NCHW images with a static batch: logits from ``heads.head``, else the class-token features.

    The patch size, width and depth are read from the weights; ``num_heads`` is
    not stored in a state dict, so it is an argument (ViT-B/16: 12).

    Example::

        logits = models.vit(net, x, w, num_heads=12)
    """
    w = params(weights, "vit")
    n = x.shape[0]
    if n < 0:
        raise ShapeError(f"vit: input {x.name!r} has a dynamic batch {x.shape}; the class token needs a static one")
    hidden, _, patch, _ = w.take("conv_proj.weight", (None, x.shape[1], None, None)).shape
    # Patchify: a patch x patch convolution with stride patch, then (N, D, h, w) -> (N, h*w, D).
    x = conv_bn_act(x, w, "conv_proj", stride=patch, padding=0)
    x = ops.permute(ops.flatten(x, 2, name="patches"), (0, 2, 1), name="tokens")
    cls = np.broadcast_to(w.take("class_token", (1, 1, hidden)), (n, 1, hidden))
    x = ops.concat([net.constant(cls, "class_token"), x], 1, name="with_class_token")
    length = x.shape[1]
    pos = w.take("encoder.pos_embedding", (1, length, hidden))
    x = ops.add(x, pos, name="encoder.add_positions")
    for i in itertools.count():
        prefix = f"encoder.layers.encoder_layer_{i}"
        if f"{prefix}.ln_1.weight" not in w:
            break
        x = transformer_encoder_layer(x, w, prefix, num_heads, norm_first=True, act="gelu", eps=eps, keys=VIT_KEYS)
    x = layer_norm(x, w, "encoder.ln", eps=eps)
    x = x[:, 0]
    if "heads.pre_logits.weight" in w:
        x = linear(x, w, "heads.pre_logits", act="tanh")
    return linear(x, w, "heads.head") if "heads.head.weight" in w else x
