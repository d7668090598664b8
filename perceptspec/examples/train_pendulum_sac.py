"""`make train-sac`: SAC (Stable-Baselines3) on Pendulum-v1 with perceptspec networks, until a mean return >= -250.

The actor and the twin Q critics come from `pendulum.yaml` (SB3's default sizes: 2 x 256 ReLU; a `state_action`
critic) through `SpecSACPolicy`: SB3 runs SAC, perceptspec builds the networks. The settings are
rl-baselines3-zoo's for Pendulum-v1 (learning rate 1e-3, otherwise SB3's defaults). Every `--eval-every` steps the
deterministic policy plays `--eval-episodes` episodes on a separate, seeded env; once their mean return reaches
`--target`, 50 more episodes confirm it. Exits 1 if `--max-steps` pass first. A progress bar runs over the step
budget; the learning curve goes to `--out`.

    python -m perceptspec.examples.train_pendulum_sac [--seed 0] [--max-steps 50000] [--out out/train_pendulum_sac]
"""

from __future__ import annotations

import sys
from importlib import resources

import gymnasium as gym
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.monitor import Monitor

from perceptspec.examples.progress import TrainingProgress, training_arguments
from perceptspec.examples.sb3_evaluation import Evaluation
from perceptspec.integrations.sb3_off_policy import SpecSACPolicy

CONFIG = resources.files("perceptspec.examples") / "pendulum.yaml"
LEARNING_RATE = 1e-3
CONFIRM_EPISODES = 50
__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = training_arguments(__doc__, budget=("--max-steps", 50_000), eval_every=2_000, eval_episodes=10,
                                target=-250.0, out="out/train_pendulum_sac")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # small networks, batch 256: threads cost more than they give
    model = SAC(SpecSACPolicy, "Pendulum-v1", policy_kwargs={"config": str(CONFIG)}, learning_rate=LEARNING_RATE,
                seed=args.seed)
    print(f"SAC on Pendulum-v1, seed {args.seed}; networks from {CONFIG.name} "
          f"({sum(p.numel() for p in model.policy.parameters()):,} parameters with the target critics)")
    with TrainingProgress("SAC (SB3) on Pendulum-v1", args.max_steps, "steps", args.out, args.target) as bar:
        evaluation = Evaluation(Monitor(gym.make("Pendulum-v1")), args.eval_every, args.eval_episodes,
                                CONFIRM_EPISODES, args.target, args.seed, bar)
        model.learn(total_timesteps=args.max_steps, callback=evaluation)
    print(f"learning curve: {bar.curve_png}")
    if evaluation.reached is None:
        print(f"mean return {args.target} not reached within {args.max_steps:,} steps ({bar.elapsed():.1f} s)")
        return 1
    steps, seconds, mean = evaluation.reached
    print(f"reached: mean return {mean:.1f} over {CONFIRM_EPISODES} episodes after {steps:,} steps, {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
