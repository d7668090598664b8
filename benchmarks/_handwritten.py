"""The seed's example networks written by hand in plain PyTorch, as a user would: `nn.Module`s called in `forward`.

Each class registers its parameters in the order perceptspec's materialized module does (block by block, in the
spec's order), so `copy_parameters` can give it the very same weights and the harness can check that both compute
the same outputs. Inputs have exactly one batch dim: (B, *feature shape).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

SCREEN, INVENTORY, LATENT_SCREEN = "observation_screen", "observation_inventory", "latent_screen"


class CartPolePolicy(nn.Module):
    """Example 1: observation (4,) -> Dense [16, 32] relu -> 'action' logits (2,). The leanest hand-written form
    (Example 3, the seed's own plain module, loops over an nn.ModuleDict of heads instead)."""

    def __init__(self, n_obs: int = 4, n_actions: int = 2, hidden: tuple[int, int] = (16, 32)) -> None:
        super().__init__()
        self.l1 = nn.Linear(n_obs, hidden[0])
        self.l2 = nn.Linear(hidden[0], hidden[1])
        self.action = nn.Linear(hidden[1], n_actions)

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = torch.relu(self.l1(obs["observation"]))
        x = torch.relu(self.l2(x))
        return {"action": self.action(x)}


class CartPoleCritic(nn.Module):
    """Example 1 (and 3): observation (4,) -> Dense [16, 32] relu -> value (1,)."""

    def __init__(self, n_obs: int = 4, hidden: tuple[int, int] = (16, 32)) -> None:
        super().__init__()
        self.l1 = nn.Linear(n_obs, hidden[0])
        self.l2 = nn.Linear(hidden[0], hidden[1])
        self.value = nn.Linear(hidden[1], 1)

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = torch.relu(self.l1(obs["observation"]))
        x = torch.relu(self.l2(x))
        return {"value": self.value(x)}


def vgg_stack(channels: Iterable[int], c_in: int) -> nn.Sequential:
    """Per stage: two 3x3 convolutions (padding 1) with ReLU, then a 2x2 max-pool."""
    layers: list[nn.Module] = []
    for c in channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                   nn.MaxPool2d(2, 2)]
        c_in = c
    return nn.Sequential(*layers)


class ScreenEmbedding(nn.Module):
    """screen (B, T, 3, 64, 64) -> VGG [8, 16, 32] on every frame -> flatten -> Dense 32 relu: (B, T, 32)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = vgg_stack((8, 16, 32), 3)
        self.dense = nn.Linear(32 * 8 * 8, 32)

    def forward(self, screen: torch.Tensor) -> torch.Tensor:
        b, t = screen.shape[:2]
        h = self.conv(screen.reshape(b * t, *screen.shape[2:]))
        return torch.relu(self.dense(h.reshape(b, t, -1)))


class Trunk(nn.Module):
    """(inventory (B, T, 16), latent screen (B, T, 32)) -> Dense 128 and concat -> Dense 128 -> LSTM 32, last step
    -> Dense 32 relu: (B, 32)."""

    def __init__(self) -> None:
        super().__init__()
        self.inventory = nn.Linear(16, 128)
        self.hidden = nn.Linear(128 + 32, 128)
        self.lstm = nn.LSTM(128, 32, batch_first=True)
        self.lstm_dense = nn.Linear(32, 32)

    def forward(self, inventory: torch.Tensor, latent_screen: torch.Tensor) -> torch.Tensor:
        x = torch.cat([torch.relu(self.inventory(inventory)), latent_screen], -1)
        x = torch.relu(self.hidden(x))
        out, _ = self.lstm(x)
        return torch.relu(self.lstm_dense(out[:, -1]))


class ComplexPolicy(nn.Module):
    """Example 2 policy: 'action_move' (4 logits) and 'action_use' (16); Example 4's (`share_screen`) also returns
    the latent screen."""

    def __init__(self, share_screen: bool = False) -> None:
        super().__init__()
        self.screen = ScreenEmbedding()
        self.trunk = Trunk()
        self.action_move = nn.Linear(32, 4)
        self.action_use = nn.Linear(32, 16)
        self.share_screen = share_screen

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        latent_screen = self.screen(obs[SCREEN])
        latent = self.trunk(obs[INVENTORY], latent_screen)
        out = {"action_move": self.action_move(latent), "action_use": self.action_use(latent)}
        if self.share_screen:
            out[LATENT_SCREEN] = latent_screen
        return out


class ComplexCritic(nn.Module):
    """Example 2 critic: screen embedding and trunk of its own, then 'value'."""

    def __init__(self) -> None:
        super().__init__()
        self.screen = ScreenEmbedding()
        self.trunk = Trunk()
        self.value = nn.Linear(32, 1)

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"value": self.value(self.trunk(obs[INVENTORY], self.screen(obs[SCREEN])))}


class SharedCritic(nn.Module):
    """Example 4 critic: reads the policy's latent screen (B, T, 32) instead of embedding the screen again."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = Trunk()
        self.value = nn.Linear(32, 1)

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"value": self.value(self.trunk(obs[INVENTORY], obs[LATENT_SCREEN]))}


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def copy_parameters(source: nn.Module, target: nn.Module) -> None:
    """Give `target` the weights of `source`: the same number of parameter tensors, pairwise of the same shape, in
    registration order (the hand-written and Maze networks register theirs in the spec's block order)."""
    src, dst = list(source.parameters()), list(target.parameters())
    if len(src) != len(dst) or any(a.shape != b.shape for a, b in zip(src, dst)):
        raise ValueError(f"parameter layouts differ: {[tuple(p.shape) for p in src]} vs "
                         f"{[tuple(p.shape) for p in dst]}")
    with torch.no_grad():
        for a, b in zip(src, dst):
            b.copy_(a)
