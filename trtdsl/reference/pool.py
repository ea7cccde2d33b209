"""Reference implementations: pool layers. (Being written.)"""

from __future__ import annotations
