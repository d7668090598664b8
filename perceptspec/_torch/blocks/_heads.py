"""Build rules of the head blocks: StateIndependentLogStd."""

from __future__ import annotations

import torch
from torch import nn

from perceptspec._core import Shape
from perceptspec._spec import Initializer, StateIndependentLogStd
from perceptspec._torch._call import param
from perceptspec._torch._tables import torch_builders


class StateIndependentLogStdModule(nn.Module):
    """The means, then the `log_std` parameter broadcast over the means' leading dims."""

    def __init__(self, n: int, log_std_init: float) -> None:
        super().__init__()
        self.log_std = nn.Parameter(torch.full((n,), log_std_init))

    def forward(self, means: torch.Tensor) -> torch.Tensor:
        log_std: torch.Tensor = param(self, "log_std")
        return torch.cat([means, log_std.expand_as(means)], dim=-1)


@torch_builders.register(StateIndependentLogStd)
def _state_independent_log_std_build_rule(block: StateIndependentLogStd, ins: tuple[Shape, ...], init: Initializer,
                                          generator: torch.Generator | None) -> nn.Module:
    return StateIndependentLogStdModule(ins[0][-1], block.log_std_init)
