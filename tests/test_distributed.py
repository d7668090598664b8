"""Multi-process training (issue #8): workers rebuild identical modules from (spec, shapes, seed), and
DistributedDataParallel keeps them identical while each trains on its own data.

Two processes are spawned with torch.multiprocessing (start method 'spawn', as torchrun starts fresh interpreters
too) and joined with torch.distributed's gloo backend over the loopback address only; the whole run is bounded.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch
import torch.distributed as dist
from torch.multiprocessing.spawn import start_processes as _start_processes
from torch.nn.parallel import DistributedDataParallel

import perceptspec as ps
from perceptspec.examples import complex as ex2

WORLD_SIZE = 2
TIMEOUT_S = 240.0  # the whole spawn-train-join (generous: a loaded CI machine imports torch slowly); each
#                     collective gives up after 120 s
SEED, BATCH = 7, 16
LR = 0.05  # plain SGD: Adam would magnify the rounding of tiny gradients (summed in another order per process)
State = dict[str, torch.Tensor]


class Run(NamedTuple):
    """One DDP run: what the workers materialize and how long they train."""

    spec: ps.Block
    shapes: Mapping[str, tuple[int, ...]]
    steps: int


def actor_critic_spec() -> ps.Graph:
    return ps.Graph({
        "body": ps.Dense(in_keys="observation", out_keys="latent", hidden_units=[32, 32], non_lin="tanh"),
        "action": ps.LinearOutput(in_keys="latent", out_keys="action", output_units=3, init=ps.NormC(std=0.01)),
        "value": ps.LinearOutput(in_keys="latent", out_keys="value", output_units=1),
    }, out_keys=["action", "value"], init=ps.Orthogonal(gain=1.0))


def example2_spec() -> ps.Graph:
    """The seed's Example 2 (convolutions, a time axis, self-attention) as one actor-critic with the same heads."""
    policy = ex2.complex_policy(EX2_SHAPES, {"action": (3,)})
    critic = ex2.complex_critic(EX2_SHAPES)
    return ps.Graph({"policy": policy, "critic": critic}, out_keys=["action", "value"])


EX2_SHAPES = {"observation_screen": (2, 3, 16, 16), "observation_inventory": (2, 16)}
#: `make test`: a small MLP, 5 steps; `make test-all`: the seed's Example 2, 20 steps
RUNS = {"mlp": Run(actor_critic_spec(), {"observation": (6,)}, 5), "example2": Run(example2_spec(), EX2_SHAPES, 20)}


def batch(run: Run, rank: int, step: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """Rank `rank`'s data for `step`: different on every rank."""
    g = torch.Generator().manual_seed(1_000 * rank + step)
    return ({k: torch.randn(BATCH, *s, generator=g) for k, s in sorted(run.shapes.items())},
            torch.randn(BATCH, 3, generator=g), torch.randn(BATCH, 1, generator=g))


def loss_of(module: torch.nn.Module, inputs: dict[str, torch.Tensor], action_target: torch.Tensor,
            value_target: torch.Tensor) -> torch.Tensor:
    out = module(inputs)
    loss: torch.Tensor = (out["action"] - action_target).square().mean() + (out["value"] - value_target).square().mean()
    return loss


def worker(rank: int, world_size: int, port: int, run: Run, seed: int, out_dir: str) -> None:
    """One training process: materialize (spec, shapes, seed), wrap in DDP, train on this rank's data."""
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # gloo's own connections stay on the loopback interface
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=120))
    try:
        module = ps.materialize(run.spec, run.shapes, seed=seed)
        torch.save(module.state_dict(), Path(out_dir) / f"initial_{rank}.pt")  # before DDP broadcasts rank 0's
        ddp = DistributedDataParallel(module)
        optimizer = torch.optim.SGD(ddp.parameters(), lr=LR)
        for step in range(run.steps):
            optimizer.zero_grad()
            torch.autograd.backward(loss_of(ddp, *batch(run, rank, step)))  # DDP averages the gradients over ranks
            optimizer.step()
        torch.save(module.state_dict(), Path(out_dir) / f"final_{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_workers(run: Run, tmp_path: Path) -> None:
    start_processes: Any = _start_processes  # torch.multiprocessing's; untyped
    context = start_processes(worker, args=(WORLD_SIZE, free_loopback_port(), run, SEED, str(tmp_path)),
                                 nprocs=WORLD_SIZE, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=1.0):  # raises if a worker failed, with its traceback
            if time.monotonic() > deadline:
                pytest.fail(f"the {WORLD_SIZE} workers did not finish within {TIMEOUT_S:.0f} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join(5)


def load(path: Path) -> State:
    state: State = torch.load(path, weights_only=True)
    return state


def assert_identical(a: State, b: State, what: str) -> None:
    assert list(a) == list(b)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{what}: {different} differ between ranks"


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                    reason="this torch build has no torch.distributed gloo backend")
@pytest.mark.skipif(not Path("/sys/class/net/lo").exists(), reason="needs the Linux loopback interface 'lo'")
@pytest.mark.slow  # two spawned interpreters importing torch: `make test-all`, with the other long runs
@pytest.mark.parametrize("name", ["mlp", "example2"])
def test_ddp_keeps_ranks_identical(name: str, tmp_path: Path) -> None:
    run = RUNS[name]
    run_workers(run, tmp_path)
    initial = [load(tmp_path / f"initial_{r}.pt") for r in range(WORLD_SIZE)]
    final = [load(tmp_path / f"final_{r}.pt") for r in range(WORLD_SIZE)]
    assert_identical(initial[0], initial[1], "materialized weights (same spec, shapes and seed)")
    assert_identical(final[0], final[1], f"weights after {run.steps} DDP steps on different data")
    assert all(not torch.equal(initial[0][k], final[0][k]) for k in initial[0])  # every parameter trained

    # DDP's averaged gradients are those of one process training on both ranks' data at once
    reference = ps.materialize(run.spec, run.shapes, seed=SEED)
    assert_identical(reference.state_dict(), initial[0], "this process vs the workers")
    optimizer = torch.optim.SGD(reference.parameters(), lr=LR)
    for step in range(run.steps):
        optimizer.zero_grad()
        losses = [loss_of(reference, *batch(run, rank, step)) for rank in range(WORLD_SIZE)]
        torch.autograd.backward(torch.stack(losses).mean())
        optimizer.step()
    expected = reference.state_dict()
    for key, value in final[0].items():
        torch.testing.assert_close(value, expected[key], rtol=1e-4, atol=1e-5)
