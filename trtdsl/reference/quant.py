"""Reference implementations: quant layers. (Being written.)"""

from __future__ import annotations
