"""Model definitions written with ``trtdsl.layers``, bound to torchvision ``state_dict`` names.

Each model is a short function ``model(net, x, weights) -> Tensor`` meant to be
read as a guide to writing your own. ``weights`` is a ``WeightStore``, any
mapping of name -> array, or the path of a file ``trtdsl.weights.load`` reads
(npz, safetensors, ...), holding a torchvision-layout ``state_dict``.

Example::

    net = trtdsl.Network("resnet18")
    x = net.input("images", "float32", (1, 3, 224, 224))
    net.output(models.resnet18(net, x, "resnet18.safetensors"), "logits")
"""

from ..argcheck import check_all
from .mobilenet import mobilenet_v2, mobilenet_v3_small
from .resnet import resnet, resnet18, resnet34, resnet50
from .vit import vit

__all__ = ["mobilenet_v2", "mobilenet_v3_small", "resnet", "resnet18", "resnet34", "resnet50", "vit"]

check_all(globals(), __all__, "models")  # a wrongly typed argument is an ArgumentError naming it
