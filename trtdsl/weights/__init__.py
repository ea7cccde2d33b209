"""Load raw weights from files other tools wrote, safely and without copies.

``load(path)`` picks the format from the file's content and suffix: ``.npz``
and ``.npy`` (memory-mapped, never unpickled), HDF5 (every dataset by path),
Keras legacy ``.h5`` and Keras 3 ``.keras`` (stable ``<layer>/<weight>`` names),
``.safetensors`` (one file, or the shards a ``model.safetensors.index.json`` names,
from the index or its folder), tensorrtx ``.wts``, and PyTorch ``.pt``/``.pth`` (with
``weights_only=True``, when torch is installed; sharded: ``pytorch_model.bin.index.json``
or its folder, :mod:`.shards`). A Hugging Face model or PEFT adapter folder loads the
one checkpoint it holds, safetensors first (see :func:`load`). It returns a
:class:`WeightStore`; :mod:`trtdsl.weights.layout` converts Keras layouts.

Files are untrusted: one can only give arrays or a ``WeightError``, never
read another file, crash or hang this process (HDF5 is parsed in a worker
process; sizes, ratios and counts are bounded by :class:`Limits`).

Example::

    from trtdsl import weights
    w = weights.load("model.keras")
    k = weights.layout.keras_conv(w.take("conv2d/kernel", shape=(3, 3, 3, 16)))
"""

from ..errors import WeightShapeError

# Each module registers its loader; Keras formats sniff before generic HDF5 by priority.
from . import h5, keras, layout, npz, safetensors, torchfile, wts  # noqa: F401
from .limits import Limits
from .registry import FORMATS, detect, load, loads
from .store import Entry, WeightStore
from .wts import write_wts

__all__ = [
    "FORMATS",
    "Entry",
    "Limits",
    "WeightShapeError",
    "WeightStore",
    "detect",
    "layout",
    "load",
    "loads",
    "write_wts",
]
