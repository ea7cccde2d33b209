"""Reference implementations: reduce layers. (Being written.)"""

from __future__ import annotations
