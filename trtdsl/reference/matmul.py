"""Reference implementations: matmul layers. (Being written.)"""

from __future__ import annotations
