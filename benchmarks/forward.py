"""`make bench`: the CartPole policy (seed Example 1) forward, perceptspec vs the same network hand-written.

Every variant is timed in the same process, interleaved round by round so that drift hits all alike; the table
reports the median time per call and its ratio to hand-written PyTorch, and is written to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import functools
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import perceptspec as ps
from perceptspec.examples.cartpole import cartpole_policy

OBS = {"observation": (4,)}
LOGITS = {"action": (2,)}


class HandWrittenPolicy(nn.Module):
    """What a user writes by hand: nn.Linear modules called in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.head = nn.Linear(4, 16), nn.Linear(16, 32), nn.Linear(32, 2)

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = torch.relu(self.l1(obs["observation"]))
        x = torch.relu(self.l2(x))
        return {"action": self.head(x)}


def time_calls(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def run(batches: tuple[int, ...] = (1, 32, 256), rounds: int = 15, calls: int = 400) -> str:
    torch.set_num_threads(1)
    spec = cartpole_policy(OBS, LOGITS)
    models: dict[str, nn.Module] = {"hand-written nn.Module": HandWrittenPolicy()}
    for check in ("off", "first", "always"):
        models[f"perceptspec check={check!r}"] = ps.materialize(spec, OBS, seed=0, check=check)
    rows = []
    with torch.no_grad():
        for batch in batches:
            inputs = {"observation": torch.randn(batch, 4)}
            for model in models.values():  # warm up (and pass the first-call check)
                model(inputs)
            samples: dict[str, list[float]] = {name: [] for name in models}
            for _ in range(rounds):
                for name, model in models.items():
                    samples[name].append(time_calls(functools.partial(model, inputs), calls))
            base = statistics.median(samples["hand-written nn.Module"])
            for name, times in samples.items():
                median = statistics.median(times)
                rows.append(f"| {batch} | {name} | {median * 1e6:.1f} | {median / base:.2f} |")
    header = [
        "# Forward-pass benchmark: CartPole policy (seed Example 1), no grad",
        "",
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}; Python {sys.version.split()[0]}; "
        f"torch {torch.__version__}; threads {torch.get_num_threads()}.",
        f"Median over {rounds} interleaved rounds of {calls} calls each; ratio = time / hand-written time.",
        "",
        "| batch | model | µs per call | ratio |",
        "|---:|---|---:|---:|",
    ]
    return "\n".join(header + rows) + "\n"


def main() -> None:
    table = run()
    print(table)
    Path(__file__).with_name("RESULTS.md").write_text(table)


if __name__ == "__main__":
    main()
