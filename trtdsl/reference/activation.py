"""Reference implementations: activation layers. (Being written.)"""

from __future__ import annotations
