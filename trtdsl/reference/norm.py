"""Reference implementations: norm layers. (Being written.)"""

from __future__ import annotations
