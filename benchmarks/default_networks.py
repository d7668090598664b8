"""PPO with perceptspec's default networks (`ps.compose(None, ...)`) against SB3's default policy (issue #17).

Same algorithm (Stable-Baselines3's PPO with its default hyperparameters), same env, same steps and seeds; only the
policy differs: SB3's `MlpPolicy` or `SpecActorCriticPolicy` with `config=None`. After training, each model is
evaluated deterministically for 20 episodes; the table gives the mean return over seeds (and its spread) and the
wall time. `--minigrid` adds a MiniGrid image env (the `minigrid` package), where SB3's default CNN cannot run (its
NatureCNN needs 36x36 images) and perceptspec's picks its small-image CNN.

    python -m benchmarks.default_networks            # writes the table into docs/training.md
"""

from __future__ import annotations

import argparse
import importlib
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"
BEGIN, END = "<!-- default-networks:begin -->", "<!-- default-networks:end -->"
#: env id -> training steps (PPO's defaults: 2048 steps per update)
ENVS = {"CartPole-v1": 20_000, "Acrobot-v1": 30_000, "Pendulum-v1": 30_000}
MINIGRID = {"MiniGrid-Empty-5x5-v0": 50_000}
SEEDS = (0, 1, 2)
EPISODES = 20


def make_env(env_id: str) -> gym.Env[Any, Any]:
    if env_id.startswith("MiniGrid"):
        wrappers: Any = importlib.import_module("minigrid.wrappers")  # registers the MiniGrid envs too
        env: gym.Env[Any, Any] = wrappers.ImgObsWrapper(gym.make(env_id))  # the 7x7x3 uint8 image the agent sees
        return env
    return gym.make(env_id)


def train(env_id: str, steps: int, seed: int, policy: Any, policy_kwargs: dict[str, Any]) -> tuple[float, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy

    start = time.perf_counter()
    from stable_baselines3.common.monitor import Monitor

    model = PPO(policy, make_env(env_id), seed=seed, device="cpu", policy_kwargs=policy_kwargs)
    model.learn(steps)
    wall = time.perf_counter() - start
    mean, _ = evaluate_policy(model, Monitor(make_env(env_id)), n_eval_episodes=EPISODES, deterministic=True)
    assert isinstance(mean, float)
    return mean, wall


def variants(env_id: str) -> dict[str, tuple[Any, dict[str, Any]]]:
    from perceptspec.integrations.sb3 import SpecActorCriticPolicy

    chosen: dict[str, tuple[Any, dict[str, Any]]] = {"perceptspec defaults": (SpecActorCriticPolicy, {})}
    if not env_id.startswith("MiniGrid"):
        chosen["SB3 MlpPolicy"] = ("MlpPolicy", {})
    return chosen


def run(envs: dict[str, int], log: Callable[[str], None]) -> list[str]:
    rows = []
    for env_id, steps in envs.items():
        runs: dict[str, list[tuple[float, float]]] = {}
        for seed in SEEDS:  # the variants side by side, seed by seed: a load on the machine hits both alike
            for name, (policy, kwargs) in variants(env_id).items():
                runs.setdefault(name, []).append(train(env_id, steps, seed, policy, kwargs))
                log(f"{env_id} {name} seed {seed}: return {runs[name][-1][0]:.1f}, {runs[name][-1][1]:.0f} s")
        for name, results in runs.items():
            returns = [r for r, _ in results]
            spread = statistics.stdev(returns) if len(returns) > 1 else 0.0
            row = (f"| {env_id} | {name} | {steps:,} | {statistics.mean(returns):.1f} ± {spread:.1f} | "
                   f"{', '.join(f'{r:.1f}' for r in returns)} | {statistics.mean(w for _, w in results):.0f} s |")
            rows.append(row)
    return rows


def write(rows: list[str], note: str) -> None:
    table = "\n".join([BEGIN, note, "", "| env | policy | steps | mean return (3 seeds) | per seed | wall time per run |",
                       "|---|---|---:|---:|---|---:|", *rows, END])
    text = DOC.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    DOC.write_text(pattern.sub(lambda _: table, text) if pattern.search(text) else text + "\n" + table + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minigrid", action="store_true", help="add the MiniGrid image env")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    envs = {**ENVS, **(MINIGRID if args.minigrid else {})}
    rows = run(envs, print)
    note = (f"Run {time.strftime('%Y-%m-%d %H:%M')} with `python -m benchmarks.default_networks"
            f"{' --minigrid' if args.minigrid else ''}`: PPO (SB3 defaults), seeds {list(SEEDS)}, "
            f"{EPISODES} deterministic evaluation episodes per run, one torch thread.")
    if not args.no_write:
        write(rows, note)


if __name__ == "__main__":
    main()
