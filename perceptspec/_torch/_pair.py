"""Actor-critic over plain PyTorch networks (seed Example 3), where no spec lets the two share one forward."""

from __future__ import annotations

import torch
from torch import nn


class PairModule(nn.Module):
    """The policy's outputs and the critic's value in one call; the critic also sees the policy's outputs."""

    def __init__(self, policy: nn.Module, critic: nn.Module) -> None:
        super().__init__()
        self.policy, self.critic = policy, critic

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = dict(self.policy(obs))
        out.update(self.critic({**obs, **out}))
        return out
