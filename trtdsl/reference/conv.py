"""Reference implementations: conv layers. (Being written.)"""

from __future__ import annotations
