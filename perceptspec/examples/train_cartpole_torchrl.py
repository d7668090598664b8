"""`make train-torchrl`: PPO in TorchRL on CartPole-v1 with the seed's Example 1 networks, until solved.

TorchRL runs the algorithm: a `Collector` gathers rollouts from 8 envs, `ClipPPOLoss` computes the GAE advantage
itself (calling the critic with detached parameters swapped in, which a perceptspec module honours) and the PPO
objective; perceptspec builds the networks from `cartpole.yaml` (Dense [16, 32] ReLU, NormC init, seed 0) and
`as_tensordict_module` plugs them in. The settings are `make train`'s (rl-baselines3-zoo's for CartPole-v1). Every
`--eval-every` frames the deterministic policy plays `--eval-episodes` episodes on a separate env; once their mean
return reaches `--target` (475), 100 more episodes confirm it. Exits 1 if `--max-frames` pass first. A progress
bar runs over the frame budget; the learning curve goes to `--out` (learning_curve.png and .csv).

    python -m perceptspec.examples.train_cartpole_torchrl [--seed 0] [--max-frames 300000] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch
from torch.distributions import Categorical
from torchrl.collectors import Collector  # type: ignore[import-untyped]  # torchrl ships no type information
from torchrl.envs import GymEnv, SerialEnv  # type: ignore[import-untyped]  # as above
from torchrl.envs.utils import ExplorationType, set_exploration_type  # type: ignore[import-untyped]  # as above
from torchrl.modules import ProbabilisticActor  # type: ignore[import-untyped]  # as above
from torchrl.objectives import ClipPPOLoss, ValueEstimators  # type: ignore[import-untyped]  # as above

import perceptspec as ps
from perceptspec.examples.progress import TrainingProgress, training_arguments
from perceptspec.integrations.tensordict import as_tensordict_module

CONFIG = resources.files("perceptspec.examples") / "cartpole.yaml"
N_ENVS, STEPS_PER_ENV, EPOCHS = 8, 32, 20  # 256 frames a batch, one minibatch, 20 epochs
GAMMA, LAMBDA, LEARNING_RATE, CLIP = 0.98, 0.8, 1e-3, 0.2
CONFIRM_EPISODES = 100
__all__ = ["main"]


def make_env(seed: int, n_envs: int) -> Any:
    env = SerialEnv(n_envs, lambda: GymEnv("CartPole-v1", categorical_action_encoding=True)) if n_envs > 1 \
        else GymEnv("CartPole-v1", categorical_action_encoding=True)
    env.set_seed(seed)
    return env


def evaluate(actor: Any, env: Any, episodes: int) -> float:
    """Mean return of the deterministic policy (the most likely action) over `episodes` episodes."""
    returns = []
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        for _ in range(episodes):
            rollout = env.rollout(500, actor)
            returns.append(float(rollout["next", "reward"].sum()))
    return sum(returns) / len(returns)


def main(argv: list[str] | None = None) -> int:
    parser = training_arguments(__doc__, budget=("--max-frames", 300_000), eval_every=10_240, eval_episodes=20,
                                target=475.0, out="out/train_cartpole_torchrl")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # a 700-parameter network: threads cost more than they give
    spaces = gym.make("CartPole-v1")
    models = ps.compose(str(CONFIG), spaces.observation_space, spaces.action_space)
    assert models.critic is not None
    actor = ProbabilisticActor(as_tensordict_module(models.policy, out_keys={"action": "logits"}),
                               in_keys=["logits"], distribution_class=Categorical, return_log_prob=True)
    critic = as_tensordict_module(models.critic, out_keys={"value": "state_value"})
    loss = ClipPPOLoss(actor, critic, clip_epsilon=CLIP, entropy_coeff=0.0, normalize_advantage=True)
    loss.make_value_estimator(ValueEstimators.GAE, gamma=GAMMA, lmbda=LAMBDA)
    optimizer = torch.optim.Adam(loss.parameters(), lr=LEARNING_RATE, eps=1e-5)
    batches = args.max_frames // (N_ENVS * STEPS_PER_ENV)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: max(0.0, 1 - i / batches))
    collector = Collector(make_env(args.seed, N_ENVS), actor, frames_per_batch=N_ENVS * STEPS_PER_ENV,
                          total_frames=args.max_frames, auto_register_policy_transforms=False)
    eval_env = make_env(args.seed + 1, 1)
    print(f"PPO (TorchRL) on CartPole-v1, {N_ENVS} envs, seed {args.seed}; networks from {CONFIG.name}")
    with TrainingProgress("PPO (TorchRL) on CartPole-v1", args.max_frames, "frames", args.out, args.target) as bar:
        solved = train(loss, optimizer, schedule, collector, lambda n: evaluate(actor, eval_env, n), args, bar)
    collector.shutdown()
    print(f"learning curve: {bar.curve_png}")
    if solved is None:
        print(f"not solved within {args.max_frames:,} frames ({bar.elapsed():.1f} s)")
        return 1
    frames, seconds, mean = solved
    print(f"solved: mean return {mean:.1f} over {CONFIRM_EPISODES} episodes after {frames:,} frames, {seconds:.1f} s")
    return 0


def train(loss: Any, optimizer: torch.optim.Optimizer, schedule: Any, collector: Any,
          evaluate_episodes: Callable[[int], float], args: argparse.Namespace,
          bar: TrainingProgress) -> tuple[int, float, float] | None:
    """PPO epochs on each collected batch, evaluating every `args.eval_every` frames; (frames, seconds, mean return
    over 100 episodes) once solved, else None."""
    frames, next_eval = 0, args.eval_every
    for batch in collector:
        frames += batch.numel()
        bar.advance(frames)
        for _ in range(EPOCHS):
            losses = loss(batch.reshape(-1))  # the loss computes GAE itself (in-loss advantage)
            total = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
            optimizer.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_(loss.parameters(), 0.5)
            optimizer.step()
        schedule.step()
        if frames < next_eval:
            continue
        next_eval += args.eval_every
        mean = evaluate_episodes(args.eval_episodes)
        bar.evaluated(frames, mean, f"({args.eval_episodes} episodes) ")
        if mean < args.target:
            continue
        confirmed = evaluate_episodes(CONFIRM_EPISODES)
        bar.log(f"  {CONFIRM_EPISODES}-episode check: mean return {confirmed:.1f}")
        if confirmed >= args.target:
            return frames, bar.elapsed(), confirmed
    return None


if __name__ == "__main__":
    sys.exit(main())
