"""`make train-recurrent`: a recurrent policy where a feed-forward one cannot learn, CartPole-v1 without velocities.

The observation keeps the cart position and the pole angle only (`NoVelocity`), so one observation does not say
where the pole is going: a policy must remember. RecurrentPPO (sb3-contrib) trains the StatefulLSTM networks of
`recurrent_cartpole.yaml` (`SpecRecurrentActorCriticPolicy`) until the deterministic policy's mean return reaches
`--target` (300), confirmed over `--confirm-episodes` more episodes; then PPO trains a feed-forward policy of the
same size (Dense [64, 64], `SpecActorCriticPolicy`) for as many steps, and its mean return is reported. Both use
rl-baselines3-zoo's settings for CartPoleNoVel-v1 (those of CartPole-v1). Exits 1 unless the recurrent policy reaches the target and the
feed-forward one stays below `--feedforward-below` (150). Progress bars and learning curves go to `--out`.

    python -m perceptspec.examples.train_recurrent_cartpole [--seed 0] [--max-steps 200000]
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

import perceptspec as ps
from perceptspec.examples.progress import TrainingProgress, training_arguments
from perceptspec.examples.sb3_evaluation import Evaluation
# rl-baselines3-zoo's settings for CartPole-v1, which its PPO-LSTM settings for CartPoleNoVel-v1 repeat
from perceptspec.examples.train_cartpole import CLIP_RANGE, LEARNING_RATE, N_ENVS, PPO_KWARGS, linear
from perceptspec.integrations.sb3 import SpecActorCriticPolicy
from perceptspec.integrations.sb3_recurrent import SpecRecurrentActorCriticPolicy

CONFIG = resources.files("perceptspec.examples") / "recurrent_cartpole.yaml"
FEEDFORWARD_CONFIG: dict[str, Any] = {
    "policy": {"networks": [{"_target_": "perceptspec.examples.cartpole.cartpole_policy", "hidden_units": [64, 64]}]},
    "critic": {"networks": [{"_target_": "perceptspec.examples.cartpole.cartpole_critic", "hidden_units": [64, 64]}]},
    "seed": 0}


class NoVelocity(gym.ObservationWrapper[np.ndarray, Any, np.ndarray]):
    """CartPole's observation without the velocities: (cart position, pole angle)."""

    KEPT = [0, 2]

    def __init__(self, env: gym.Env[np.ndarray, Any]) -> None:
        super().__init__(env)
        space = env.observation_space
        assert isinstance(space, gym.spaces.Box)
        self.observation_space = gym.spaces.Box(space.low[self.KEPT], space.high[self.KEPT], dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self.KEPT]


def make_env() -> gym.Env[np.ndarray, Any]:
    return NoVelocity(gym.make("CartPole-v1"))


def train(algorithm: type[BaseAlgorithm], policy: type[SpecActorCriticPolicy], config: Any, title: str, steps: int,
          args: argparse.Namespace, target: float) -> tuple[BaseAlgorithm, Evaluation, TrainingProgress]:
    env = make_vec_env(make_env, n_envs=N_ENVS, seed=args.seed)
    model = algorithm(policy, env, policy_kwargs={"config": config}, seed=args.seed,  # type: ignore[call-arg]
                      learning_rate=linear(LEARNING_RATE), clip_range=linear(CLIP_RANGE), **PPO_KWARGS)
    assert isinstance(model.policy, SpecActorCriticPolicy)
    models = model.policy.models
    for name, spec in models.specs.items():
        if spec is not None:
            print(f"-- {name}\n{ps.summary(spec, models.in_shapes[name])}")
    out = args.out / title.split()[0].lower()
    with TrainingProgress(f"{title} on CartPole-v1 without velocities", steps, "steps", out, target) as bar:
        evaluation = Evaluation(Monitor(make_env()), args.eval_every, args.eval_episodes, args.confirm_episodes,
                                target, args.seed, bar)
        model.learn(total_timesteps=steps, callback=evaluation)
    print(f"learning curve: {bar.curve_png}")
    return model, evaluation, bar


def main(argv: list[str] | None = None) -> int:
    parser = training_arguments(__doc__, budget=("--max-steps", 200_000), eval_every=10_000, eval_episodes=20,
                                target=300.0, out="out/train_recurrent_cartpole")
    parser.add_argument("--confirm-episodes", type=int, default=50)
    parser.add_argument("--feedforward-below", type=float, default=150.0)
    parser.add_argument("--config", default=str(CONFIG), help="the recurrent networks' composer config")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small networks: threads cost more than they give

    print(f"RecurrentPPO, {N_ENVS} envs, seed {args.seed}; networks from {args.config}:")
    _, recurrent, bar = train(RecurrentPPO, SpecRecurrentActorCriticPolicy, args.config, "RecurrentPPO",
                              args.max_steps, args, args.target)
    if recurrent.reached is None:
        print(f"recurrent: mean return {args.target} not reached within {args.max_steps:,} steps "
              f"({bar.elapsed():.1f} s)")
        return 1
    steps, seconds, mean = recurrent.reached
    print(f"recurrent: mean return {mean:.1f} over {args.confirm_episodes} episodes after {steps:,} steps, "
          f"{seconds:.1f} s")

    print(f"PPO, feed-forward, {N_ENVS} envs, seed {args.seed}, {steps:,} steps:")
    model, feedforward, bar = train(PPO, SpecActorCriticPolicy, FEEDFORWARD_CONFIG, "PPO feed-forward", steps, args,
                                    float("inf"))
    eval_env = Monitor(make_env())
    eval_env.reset(seed=args.seed)
    returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.confirm_episodes, deterministic=True,
                                 return_episode_rewards=True)
    best = max((mean for _, _, mean in bar.points), default=float("nan"))
    final = float(np.mean(returns))
    print(f"feed-forward: mean return {final:.1f} over {args.confirm_episodes} episodes after {steps:,} steps "
          f"(best evaluation {best:.1f}), {bar.elapsed():.1f} s")
    return 0 if max(final, best) < args.feedforward_below else 1


if __name__ == "__main__":
    sys.exit(main())
