"""PPO with perceptspec's default networks (`ps.compose(None, ...)`) against SB3's default policy (issue #17).

Same algorithm (Stable-Baselines3's PPO with its default hyperparameters), same env, same steps and seeds; only the
policy differs: SB3's `MlpPolicy` or `SpecActorCriticPolicy` with `config=None`. After training, each model is
evaluated deterministically for 20 episodes; the table gives the mean return over seeds (and its spread) and the
wall time. `--minigrid` runs a MiniGrid image env instead (the `minigrid` package: `pip install -e '.[minigrid]'`),
whose 7x7 images SB3's CnnPolicy cannot read (its NatureCNN's 8x8 kernel does not fit): SB3's default that runs is
its MlpPolicy, which flattens the image, and perceptspec's defaults flatten it alike (`perceptspec.templates`).

    python -m benchmarks.default_networks            # writes the table into docs/training.md
    python -m benchmarks.default_networks --minigrid # writes the MiniGrid table beside it
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
MARKERS = {False: ("<!-- default-networks:begin -->", "<!-- default-networks:end -->"),
           True: ("<!-- default-networks-minigrid:begin -->", "<!-- default-networks-minigrid:end -->")}
#: env id -> training steps (PPO's defaults: 2048 steps per update)
ENVS = {"CartPole-v1": 20_000, "Acrobot-v1": 30_000, "Pendulum-v1": 30_000}
MINIGRID = {"MiniGrid-Empty-5x5-v0": 50_000}
SEEDS = (0, 1, 2)
EPISODES = 20
RANDOM_EPISODES = 200


def make_env(env_id: str) -> gym.Env[Any, Any]:
    if env_id.startswith("MiniGrid"):
        try:
            wrappers: Any = importlib.import_module("minigrid.wrappers")  # registers the MiniGrid envs too
        except ModuleNotFoundError:
            raise SystemExit(f"{env_id} needs the minigrid package: pip install -e '.[minigrid]'") from None
        env: gym.Env[Any, Any] = wrappers.ImgObsWrapper(gym.make(env_id))  # the 7x7x3 uint8 image the agent sees
        return env
    return gym.make(env_id)


def train(env_id: str, steps: int, seed: int, policy: Any, policy_kwargs: dict[str, Any]) -> tuple[float, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    start = time.perf_counter()
    model = PPO(policy, make_env(env_id), seed=seed, device="cpu", policy_kwargs=policy_kwargs)
    model.learn(steps)
    wall = time.perf_counter() - start
    mean, _ = evaluate_policy(model, Monitor(make_env(env_id)), n_eval_episodes=EPISODES, deterministic=True)
    assert isinstance(mean, float)
    return mean, wall


def variants(env_id: str) -> dict[str, tuple[Any, dict[str, Any]]]:
    from perceptspec.integrations.sb3 import SpecActorCriticPolicy

    sb3 = sb3_default_policy(make_env(env_id).observation_space)
    return {"perceptspec defaults": (SpecActorCriticPolicy, {}), f"SB3 {sb3}": (sb3, {})}


def sb3_default_policy(space: gym.Space[Any]) -> str:
    """The policy SB3 offers for `space` that runs: CnnPolicy for an image its NatureCNN reads (36x36 and more),
    MultiInputPolicy for a Dict, MlpPolicy otherwise (MiniGrid's 7x7 images: CnnPolicy fails there)."""
    from stable_baselines3.common.preprocessing import is_image_space

    from perceptspec.templates import NATURE_CNN_MIN_SIZE

    if isinstance(space, gym.spaces.Dict):
        return "MultiInputPolicy"
    if (isinstance(space, gym.spaces.Box) and is_image_space(space)
            and min(sorted(space.shape)[1:]) >= NATURE_CNN_MIN_SIZE):  # leaving out the channels, the smallest dim
        return "CnnPolicy"
    return "MlpPolicy"


def random_return(env_id: str) -> float:
    """The mean return of uniformly random actions: what a policy that learned nothing gets."""
    env = make_env(env_id)
    env.action_space.seed(0)
    returns = []
    for episode in range(RANDOM_EPISODES):
        env.reset(seed=episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return statistics.mean(returns)


def run(envs: dict[str, int], log: Callable[[str], None]) -> list[str]:
    rows = []
    for env_id, steps in envs.items():
        runs: dict[str, list[tuple[float, float]]] = {}
        for seed in SEEDS:  # the variants side by side, seed by seed: a load on the machine hits both alike
            for name, (policy, kwargs) in variants(env_id).items():
                runs.setdefault(name, []).append(train(env_id, steps, seed, policy, kwargs))
                log(f"{env_id} {name} seed {seed}: return {runs[name][-1][0]:.3f}, {runs[name][-1][1]:.0f} s")
        for name, results in runs.items():
            returns = [r for r, _ in results]
            spread = statistics.stdev(returns) if len(returns) > 1 else 0.0
            digits = 3 if max(abs(r) for r in returns) <= 1 else 1  # MiniGrid's returns are in [0, 1]
            row = (f"| {env_id} | {name} | {steps:,} | {statistics.mean(returns):.{digits}f} ± {spread:.{digits}f} | "
                   f"{', '.join(f'{r:.{digits}f}' for r in returns)} | "
                   f"{statistics.mean(w for _, w in results):.0f} s |")
            rows.append(row)
    return rows


def write(rows: list[str], note: str, minigrid: bool) -> None:
    begin, end = MARKERS[minigrid]
    heading = "| env | policy | steps | mean return (3 seeds) | per seed | wall time per run |"
    table = "\n".join([begin, note, "", heading, "|---|---|---:|---:|---|---:|", *rows, end])
    text = DOC.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    DOC.write_text(pattern.sub(lambda _: table, text) if pattern.search(text) else text + "\n" + table + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minigrid", action="store_true", help="the MiniGrid image env instead (its own table)")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = run(MINIGRID if args.minigrid else ENVS, print)
    note = (f"Run {time.strftime('%Y-%m-%d %H:%M')} with `python -m benchmarks.default_networks"
            f"{' --minigrid' if args.minigrid else ''}`: PPO (SB3 defaults), seeds {list(SEEDS)}, "
            f"{EPISODES} deterministic evaluation episodes per run, one torch thread.")
    if args.minigrid:
        note += (f" A uniformly random policy's mean return: {random_return(next(iter(MINIGRID))):.2f} "
                 f"({RANDOM_EPISODES} episodes).")
    print("\n".join([note, *rows]))
    if not args.no_write:
        write(rows, note, args.minigrid)


if __name__ == "__main__":
    main()
