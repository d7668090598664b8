"""Non-linearity names -> an eager module (reference interpreter) and an inline call (generated forward)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

NON_LIN_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU, "identity": nn.Identity,
}

# Format strings over one argument; they compute exactly what the modules above compute (same defaults).
NON_LIN_CALLS: dict[str, str] = {
    "relu": "torch.relu({})", "tanh": "torch.tanh({})", "elu": "F.elu({})", "leaky_relu": "F.leaky_relu({})",
    "sigmoid": "torch.sigmoid({})", "gelu": "F.gelu({})", "identity": "{}",
}
