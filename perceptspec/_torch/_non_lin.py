"""Non-linearity names -> the torch module that applies it."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

NON_LIN_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU, "identity": nn.Identity,
}
