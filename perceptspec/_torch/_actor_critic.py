"""The composer's actor-critic: one module computing the policy's outputs and the critic's value."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from perceptspec._core import Shape
from perceptspec._fold._shapes import trace
from perceptspec._spec import Block, Graph
from perceptspec._torch._module import BlockModules, SpecModule, assemble


class PairModule(nn.Module):
    """The policy's outputs and the critic's value in one call; the critic also sees the policy's outputs. For plain
    PyTorch networks (seed Example 3), where no spec lets the two share one forward."""

    def __init__(self, policy: nn.Module, critic: nn.Module) -> None:
        super().__init__()
        self.policy, self.critic = policy, critic

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = dict(self.policy(obs))
        out.update(self.critic({**obs, **out}))
        return out


def actor_critic(policy: nn.Module, policy_spec: Block | None, critic: nn.Module, critic_spec: Block | None,
                 obs: Mapping[str, Shape]) -> nn.Module:
    """With specs, one generated forward over the policy's and the critic's own block modules (weights shared, not
    copied: a key both need, such as a shared embedding, is computed once); otherwise a `PairModule`."""
    if isinstance(policy, SpecModule) and isinstance(critic, SpecModule) and policy_spec and critic_spec:
        out_keys = [*policy_spec.out_keys, *(k for k in critic_spec.out_keys if k not in policy_spec.out_keys)]
        joint = Graph({"policy": policy_spec, "critic": critic_spec}, out_keys)
        blocks = BlockModules({"policy": policy.blocks, "critic": critic.blocks})
        return assemble(trace(joint, {k: obs[k] for k in joint.in_keys}), blocks, policy.check,
                        allow_extra_keys=True, check_finite=policy.check_finite)
    return PairModule(policy, critic)
