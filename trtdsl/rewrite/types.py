"""Argument types shared by the rewriting functions."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..tensor import Tensor

TensorRef = Tensor | str
Renamer = Mapping[str, str] | Callable[[str], str | None]
