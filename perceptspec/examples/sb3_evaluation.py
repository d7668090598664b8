"""The evaluation the Stable-Baselines3 training examples share: every `eval_every` steps the deterministic policy
plays `episodes` episodes on a separate, seeded env; once their mean return reaches the target, `confirm_episodes`
more confirm it and training stops."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy

from perceptspec.examples.progress import TrainingProgress

__all__ = ["Evaluation"]


class Evaluation(BaseCallback):
    """Moves the progress bar, evaluates, logs (with the mean return of the recent training episodes) and stops
    once the target is confirmed; `reached` is then (steps, seconds, mean return over the confirmation)."""

    def __init__(self, eval_env: gym.Env[Any, Any], eval_every: int, episodes: int, confirm_episodes: int,
                 target: float, seed: int, progress: TrainingProgress) -> None:
        super().__init__()
        self.eval_env, self.eval_every, self.episodes, self.target = eval_env, eval_every, episodes, target
        self.confirm_episodes, self.seed, self.progress = confirm_episodes, seed, progress
        self.next_eval = eval_every
        self.reached: tuple[int, float, float] | None = None

    def _evaluate(self, episodes: int) -> float:
        self.eval_env.reset(seed=self.seed)
        returns, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=episodes, deterministic=True,
                                     return_episode_rewards=True)
        return float(np.mean(returns))

    def _on_step(self) -> bool:
        self.progress.advance(self.num_timesteps)
        if self.num_timesteps < self.next_eval:
            return True
        self.next_eval += self.eval_every
        rollout = [info["r"] for info in self.model.ep_info_buffer or []]
        mean = self._evaluate(self.episodes)
        self.progress.evaluated(self.num_timesteps, mean, f"rollout return {np.mean(rollout) if rollout else 0:6.1f}  "
                                                          f"({self.episodes} episodes) ")
        if mean < self.target:
            return True
        confirmed = self._evaluate(self.confirm_episodes)
        self.progress.log(f"  {self.confirm_episodes}-episode check: mean return {confirmed:.1f}")
        if confirmed < self.target:
            return True
        self.reached = (self.num_timesteps, self.progress.elapsed(), confirmed)
        return False
