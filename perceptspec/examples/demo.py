"""`make demo`: the seed's Examples 1 and 3 on gymnasium's real CartPole-v1.

Builds the spec policy and critic (Example 1) and the plain PyTorch ones (Example 3) from the env's spaces, prints
the summary tables, checks the folds against the materialized modules, and runs one episode with each policy
sampling its actions.
"""

from __future__ import annotations

import gymnasium as gym
import torch
from torch import nn

import perceptspec as ps
from perceptspec.examples.cartpole import cartpole_critic, cartpole_policy
from perceptspec.examples.plain_cartpole import PlainCartPoleCritic, PlainCartPolePolicy

def run_episode(env: gym.Env[object, object], policy: nn.Module, seed: int) -> tuple[float, int]:
    """One episode, each action sampled from the policy's categorical distribution; (return, steps)."""
    obs, _ = env.reset(seed=seed)
    total, steps, done = 0.0, 0, False
    torch.manual_seed(seed)
    while not done:
        with torch.no_grad():
            logits = policy({"observation": torch.as_tensor(obs, dtype=torch.float32)})
        action = ps.distributions.action_distribution(logits, env.action_space).sample()["action"]
        obs, reward, terminated, truncated, _ = env.step(int(action))
        total, steps, done = total + float(reward), steps + 1, terminated or truncated
    return total, steps


def main() -> None:
    torch.manual_seed(0)
    env: gym.Env[object, object] = gym.make("CartPole-v1")
    obs_shapes = ps.spaces.obs_shapes(env.observation_space)
    logits_shapes = ps.spaces.action_logits_shapes(env.action_space)
    print(f"CartPole-v1: obs_shapes={obs_shapes}, action_logits_shapes={logits_shapes}\n")

    policy_spec = cartpole_policy(obs_shapes, logits_shapes)
    critic_spec = cartpole_critic(obs_shapes)
    for name, spec in (("policy", policy_spec), ("critic", critic_spec)):
        print(f"== Example 1: {name} (perceptspec spec)")
        print(ps.summary(spec, obs_shapes), "\n")

    for name, spec in (("policy", policy_spec), ("critic", critic_spec)):
        print(f"drawing of the {name}: {ps.render(spec, obs_shapes, f'out/cartpole_{name}.svg')}")
    policy = ps.materialize(policy_spec, obs_shapes, seed=0)
    critic = ps.materialize(critic_spec, obs_shapes, seed=0)
    for name, spec, module in (("policy", policy_spec, policy), ("critic", critic_spec, critic)):
        folded = ps.count_parameters(spec, obs_shapes)
        counted = sum(p.numel() for p in module.parameters())
        print(f"{name}: count_parameters={folded}, materialized module holds {counted}")
        assert folded == counted
    print(f"\ngenerated policy forward:\n{policy.code}")

    total, steps = run_episode(env, policy, seed=0)
    obs0 = torch.as_tensor(env.reset(seed=0)[0], dtype=torch.float32)
    with torch.no_grad():
        value = float(critic({"observation": obs0})["value"])
    print(f"Example 1 (spec) policy: episode return {total:.0f} in {steps} steps; critic value of the start "
          f"state {value:+.4f}")

    plain_policy = PlainCartPolePolicy(obs_shapes, logits_shapes)
    plain_critic = PlainCartPoleCritic(obs_shapes)
    total, steps = run_episode(env, plain_policy, seed=0)
    with torch.no_grad():
        value = float(plain_critic({"observation": obs0})["value"])
    print(f"Example 3 (plain PyTorch) policy: episode return {total:.0f} in {steps} steps; critic value "
          f"{value:+.4f}; {sum(p.numel() for p in plain_policy.parameters())} policy parameters")
    env.close()


if __name__ == "__main__":
    main()
