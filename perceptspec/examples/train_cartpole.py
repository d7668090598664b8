"""`make train`: PPO (Stable-Baselines3) on CartPole-v1 with the seed's Example 1 networks, until solved.

The policy is `SpecActorCriticPolicy` built from `cartpole.yaml` (Dense [16, 32] ReLU body, NormC init, seed 0):
SB3 runs the algorithm, perceptspec the networks. Every `--eval-every` steps the deterministic policy plays
`--eval-episodes` episodes on a separate, seeded env; once their mean return reaches `--target` (475), 100 more
episodes confirm it (CartPole-v1's 'solved': a mean of at least 475 over 100 episodes). Exits 1 if `--max-steps`
pass first. A progress bar runs over the step budget; the learning curve goes to `--out` (learning_curve.png and
.csv).

    python -m perceptspec.examples.train_cartpole [--seed 0] [--max-steps 300000] [--out out/train_cartpole]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import resources
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor

import perceptspec as ps
from perceptspec.examples.progress import TrainingProgress, training_arguments
from perceptspec.examples.sb3_evaluation import Evaluation
from perceptspec.integrations.sb3 import SpecActorCriticPolicy

CONFIG = resources.files("perceptspec.examples") / "cartpole.yaml"
#: PPO settings for CartPole-v1 from rl-baselines3-zoo (8 envs, short rollouts, many epochs, linear decay)
PPO_KWARGS: dict[str, Any] = dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                                  ent_coef=0.0)
LEARNING_RATE, CLIP_RANGE, N_ENVS = 1e-3, 0.2, 8
CONFIRM_EPISODES = 100


def linear(start: float) -> Callable[[float], float]:
    """SB3 schedule: `start` at the beginning of training, 0 at its end (progress_remaining goes 1 -> 0)."""
    return lambda progress_remaining: progress_remaining * start


def main(argv: list[str] | None = None) -> int:
    parser = training_arguments(__doc__, budget=("--max-steps", 300_000), eval_every=10_000, eval_episodes=20,
                                target=475.0, out="out/train_cartpole")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # a 700-parameter network: threads cost more than they give
    env = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=args.seed)
    model = PPO(SpecActorCriticPolicy, env, policy_kwargs={"config": str(CONFIG)}, seed=args.seed,
                learning_rate=linear(LEARNING_RATE), clip_range=linear(CLIP_RANGE), **PPO_KWARGS)
    print(f"PPO on CartPole-v1, {N_ENVS} envs, seed {args.seed}; networks from {CONFIG.name}:")
    assert isinstance(model.policy, SpecActorCriticPolicy)
    models = model.policy.models
    for name, spec in models.specs.items():
        if spec is not None:
            print(f"-- {name}\n{ps.summary(spec, models.in_shapes[name])}")
    with TrainingProgress("PPO (SB3) on CartPole-v1", args.max_steps, "steps", args.out, args.target) as bar:
        evaluation = Evaluation(Monitor(gym.make("CartPole-v1")), args.eval_every, args.eval_episodes,
                                CONFIRM_EPISODES, args.target, args.seed, bar)
        model.learn(total_timesteps=args.max_steps, callback=evaluation)
    print(f"learning curve: {bar.curve_png}")
    if evaluation.reached is None:
        print(f"not solved within {args.max_steps:,} steps ({bar.elapsed():.1f} s)")
        return 1
    steps, seconds, mean = evaluation.reached
    print(f"solved: mean return {mean:.1f} over {CONFIRM_EPISODES} episodes after {steps:,} steps, {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
