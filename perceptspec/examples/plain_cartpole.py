"""Seed Example 3: the CartPole policy and critic in plain PyTorch, with the composer's constructor signature.

Plain modules plug in beside specs: they take `obs_shapes` (and a policy `action_logits_shapes`) and map a dict of
tensors to a dict of tensors. They get no shape inference or rendering; that is what specs are for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn


def _mlp(n_in: int, hidden_units: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for units in hidden_units:
        layers += [nn.Linear(n_in, units), nn.ReLU()]
        n_in = units
    return nn.Sequential(*layers)


class PlainCartPolePolicy(nn.Module):
    """observation -> MLP -> one logits head per action."""

    def __init__(self, obs_shapes: Mapping[str, Sequence[int]], action_logits_shapes: Mapping[str, Sequence[int]],
                 hidden_units: Sequence[int] = (16, 32)) -> None:
        super().__init__()
        ((self.obs_key, obs_shape),) = obs_shapes.items()
        self.body = _mlp(math.prod(obs_shape), hidden_units)
        self.heads = nn.ModuleDict({a: nn.Linear(hidden_units[-1], s[-1]) for a, s in action_logits_shapes.items()})

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        latent = self.body(obs[self.obs_key])
        return {action: head(latent) for action, head in self.heads.items()}


class PlainCartPoleCritic(nn.Module):
    """observation -> MLP -> 'value'."""

    def __init__(self, obs_shapes: Mapping[str, Sequence[int]], hidden_units: Sequence[int] = (16, 32)) -> None:
        super().__init__()
        ((self.obs_key, obs_shape),) = obs_shapes.items()
        self.body = _mlp(math.prod(obs_shape), hidden_units)
        self.value = nn.Linear(hidden_units[-1], 1)

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"value": self.value(self.body(obs[self.obs_key]))}
