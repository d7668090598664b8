"""`make demo`: the seed page's four examples, composed from their YAML configs on real gymnasium envs.

For each: the summary table of every spec network, the fold checked against the materialized module (parameter
counts), drawings (out/<example>/{policy,critic,actor_critic}.{svg,png}), and a short rollout sampling actions from
the policy through the actor-critic module (one forward for logits and value). Examples 1 and 3 run on CartPole-v1,
Examples 2 and 4 on InventoryGridEnv (screen and inventory with a time axis; a categorical and a multi-binary action).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import perceptspec as ps
from perceptspec.examples.inventory_env import InventoryGridEnv

EXAMPLES = (
    ("example1_cartpole", "cartpole.yaml", "CartPole-v1"),
    ("example3_plain_cartpole", "plain_cartpole.yaml", "CartPole-v1"),
    ("example2_complex", "complex.yaml", "InventoryGrid"),
    ("example4_shared_complex", "shared_complex.yaml", "InventoryGrid"),
)


def make_env(name: str) -> gym.Env[Any, Any]:
    return InventoryGridEnv() if name == "InventoryGrid" else gym.make(name)


def as_tensors(obs: Any, space: gym.Space[Any]) -> dict[str, torch.Tensor]:
    items = obs.items() if isinstance(space, gym.spaces.Dict) else (("observation", obs),)
    return {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in items}


def rollout(env: gym.Env[Any, Any], models: ps.Models, steps: int, seed: int = 0) -> tuple[float, int, float]:
    """Sample actions for up to `steps` steps (one episode at most); (return, steps, mean value estimate)."""
    obs, _ = env.reset(seed=seed)
    torch.manual_seed(seed)
    total, values = 0.0, []
    for step in range(1, steps + 1):
        with torch.no_grad():
            out = models.actor_critic(as_tensors(obs, env.observation_space))
        logits = {k: out[k] for k in models.action_logits_shapes[0]}
        actions = ps.distributions.action_distribution(logits, env.action_space).sample()
        values.append(float(out["value"].squeeze()))
        obs, reward, terminated, truncated, _ = env.step(ps.distributions.env_action(actions, env.action_space))
        total += float(reward)
        if terminated or truncated:
            break
    return total, step, sum(values) / len(values)


def show(title: str, config: Path, env_name: str, out_dir: Path) -> ps.Models:
    print(f"\n{'=' * 100}\n{title}: {config.name} on {env_name}\n{'=' * 100}")
    env = make_env(env_name)
    models = ps.compose(config, env.observation_space, env.action_space)
    counts = {name: sum(p.numel() for p in module.parameters())
              for name, module in (("policy", models.policy), ("critic", models.critic)) if module is not None}
    for name, spec in models.specs.items():
        counted = counts[name]
        if spec is None:
            print(f"{name}: a plain PyTorch module ({counted:,} parameters); no spec, so no shape fold (one box drawn)")
            continue
        shapes = models.in_shapes[name]
        print(f"-- {name}\n{ps.summary(spec, shapes)}")
        assert ps.count_parameters(spec, shapes) == counted
        print(f"count_parameters == materialized module's parameters == {counted:,}")
    drawings = ps.render_models(models, out_dir / title, format=("svg", "png"))
    print(f"drawings: {', '.join(map(str, drawings))}")
    total, steps, value = rollout(env, models, steps=500)
    print(f"rollout: return {total:.2f} over {steps} steps, mean value estimate {value:+.4f}")
    env.close()
    return models


def main(out_dir: Path = Path("out")) -> None:
    examples = resources.files("perceptspec.examples")
    composed = []
    for title, config, env_name in EXAMPLES:
        with resources.as_file(examples / config) as path:
            composed.append(show(title, path, env_name, out_dir))
    print(f"\nThe generated forward of Example 1's actor-critic (policy and critic in one call):\n"
          f"{getattr(composed[0].actor_critic, 'code')}")


if __name__ == "__main__":
    main()
