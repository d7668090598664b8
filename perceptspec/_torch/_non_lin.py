"""Non-linearity names -> the torch module that applies it."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from perceptspec._spec._non_lin import TORCH_CLASSES

NON_LIN_MODULES: dict[str, Callable[[], nn.Module]] = {name: getattr(nn, cls) for name, cls in TORCH_CLASSES.items()}
