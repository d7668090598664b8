"""The four seed examples as the harness times them: composed by `perceptspec.compose` from their YAML configs, and
each network paired with its hand-written PyTorch equivalent (same parameters, same weights, same outputs)."""

from __future__ import annotations

import dataclasses
from importlib import resources
from typing import Any

import gymnasium as gym
import torch
from torch import nn

import perceptspec as ps
from benchmarks import _handwritten as hw
from perceptspec.examples.inventory_env import InventoryGridEnv

Shape = tuple[int, ...]
ROLES = ("policy", "critic")


@dataclasses.dataclass(frozen=True)
class Network:
    """One network of one example. `spec` is what perceptspec materializes (Example 3, a plain PyTorch module,
    has no spec: its perceptspec twin is Example 1's); `weights` is the composed perceptspec module every other
    variant copies its weights from; `hand` is the hand-written baseline, already holding those weights."""

    example: int
    role: str
    spec: ps.Block
    in_shapes: dict[str, Shape]
    weights: nn.Module
    hand: nn.Module
    out_keys: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"Example {self.example} {self.role}"

    def inputs(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Random observations of `batch` (screens and inventories in [0, 1), CartPole's normal)."""
        if self.example in (1, 3):
            return {k: torch.randn(batch, *s, generator=generator) for k, s in self.in_shapes.items()}
        return {k: torch.rand(batch, *s, generator=generator) for k, s in self.in_shapes.items()}


def compose(config: str, env: gym.Env[Any, Any]) -> ps.Models:
    with resources.as_file(resources.files("perceptspec.examples") / config) as path:
        return ps.compose(path, env.observation_space, env.action_space)


def _hand_written(example: int, role: str, composed: ps.Models) -> nn.Module:
    if example == 1:
        return hw.CartPolePolicy() if role == "policy" else hw.CartPoleCritic()
    if example == 3:  # the seed's plain modules, as composed from plain_cartpole.yaml
        module = composed.policy if role == "policy" else composed.critic
        assert module is not None
        return module
    if role == "policy":
        return hw.ComplexPolicy(share_screen=example == 4)
    return hw.SharedCritic() if example == 4 else hw.ComplexCritic()


def load_examples() -> list[Network]:
    """The eight networks (four examples, policy and critic), hand-written twins checked against them."""
    cartpole, grid = gym.make("CartPole-v1"), InventoryGridEnv()
    composed = {1: compose("cartpole.yaml", cartpole), 2: compose("complex.yaml", grid),
                3: compose("plain_cartpole.yaml", cartpole), 4: compose("shared_complex.yaml", grid)}
    networks = []
    for example in (1, 2, 3, 4):
        source = composed[1 if example == 3 else example]  # Example 3's perceptspec twin is Example 1
        for role in ROLES:
            spec = source.specs[role]
            assert spec is not None
            weights = source.policy if role == "policy" else source.critic
            assert weights is not None
            hand = _hand_written(example, role, composed[example])
            if hw.parameter_count(hand) != hw.parameter_count(weights):
                raise AssertionError(f"Example {example} {role}: the hand-written network has "
                                     f"{hw.parameter_count(hand)} parameters, perceptspec's "
                                     f"{hw.parameter_count(weights)}")
            hw.copy_parameters(weights, hand)
            networks.append(Network(example, role, spec, dict(source.in_shapes[role]), weights, hand,
                                    tuple(spec.out_keys)))
    return networks
