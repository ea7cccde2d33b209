"""Structural steps: loops and if-conditionals. (Being written: for now every layer is its own step.)"""

from __future__ import annotations

from .registry import Node


def group(nodes: list[Node]) -> list[Node]:
    """The execution steps of a network: plain layers, with loop/conditional bodies grouped."""
    return list(nodes)
