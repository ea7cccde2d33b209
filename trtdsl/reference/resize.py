"""Reference implementations: resize layers. (Being written.)"""

from __future__ import annotations
