"""`python -m benchmarks.ensemble`: K = 10 Example-1 critics at batch 256 as one `ps.Ensemble` (issue #18), against
the same ten critics as separate perceptspec modules called in a loop (outputs stacked) and tensordict's
`EnsembleModule` (vmap over `functional_call` of one hand-written critic) holding the same weights.

Forward without grad, and forward+backward (gradients of the sum of the outputs with respect to every parameter).
One process, one torch thread, interleaved rounds (`_timing`); a ratio is the median over rounds of the ratio within
a round. Outputs are checked equal before timing. Writes its table into benchmarks/RESULTS.md between the
`ensemble:` markers; `--quick` prints a shorter run and writes nothing.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import platform
import re
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

import perceptspec as ps
from benchmarks._handwritten import CartPoleCritic
from benchmarks._timing import Timing, fmt_time, interleaved
from perceptspec.examples.cartpole import cartpole_critic

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN, END = "<!-- ensemble:begin -->", "<!-- ensemble:end -->"
BEFORE = "## Issue #13"  # where the section goes when RESULTS.md has no markers yet
SIZE, BATCH = 10, 256
SHAPES = {"observation": (4,)}
ENSEMBLE, LOOP, TENSORDICT = "ps.Ensemble", "loop of 10 ps modules", "tensordict EnsembleModule"
FLOOR = "hand-written batched"
TARGETS = {LOOP: 5.0, TENSORDICT: 1.0}  # how many times faster than each the ensemble must be


def variants(obs: torch.Tensor) -> tuple[dict[str, Callable[[], torch.Tensor]], list[torch.nn.Module], str]:
    """The calls to time (each returns the values as (batch, K, 1)), the modules holding their parameters, and a note
    on tensordict."""
    ensemble = ps.materialize(ps.Ensemble(cartpole_critic(SHAPES), size=SIZE), SHAPES, seed=0)
    state = ensemble.state_dict()
    members = []
    for k in range(SIZE):
        member = ps.materialize(cartpole_critic(SHAPES), SHAPES)
        member.load_state_dict({name.removeprefix("blocks.value.members."): t[k] for name, t in state.items()})
        members.append(member)
    inputs = {"observation": obs}
    calls: dict[str, Callable[[], torch.Tensor]] = {
        ENSEMBLE: lambda: ensemble(inputs)["value"],
        LOOP: lambda: torch.stack([m(inputs)["value"] for m in members], -2),
    }
    modules: list[torch.nn.Module] = [ensemble, *members]
    calls[FLOOR] = hand_batched(ensemble, obs)
    try:
        tensordict, tensordict_nn = importlib.import_module("tensordict"), importlib.import_module("tensordict.nn")
    except ImportError as e:
        return calls, modules, f"tensordict not importable ({e}): its column is left out"
    hand = CartPoleCritic()
    seq = torch.nn.Sequential(hand.l1, torch.nn.ReLU(), hand.l2, torch.nn.ReLU(), hand.value)
    td_ensemble: Any = tensordict_nn.EnsembleModule(
        tensordict_nn.TensorDictModule(seq, in_keys=["observation"], out_keys=["value"]), num_copies=SIZE)
    names = {"0": "embedding.0", "2": "embedding.2", "4": "value"}
    with torch.no_grad():
        for key, t in td_ensemble.params_td.flatten_keys(".").items():
            layer, _, leaf = key.rpartition(".")
            t.copy_(state[f"blocks.value.members.blocks.{names[layer.removeprefix('module.')]}.{leaf}"])
    td = tensordict.TensorDict({"observation": obs}, batch_size=[obs.shape[0]])
    calls[TENSORDICT] = lambda: td_ensemble(td)["value"].movedim(0, -2)  # its layout is (K, batch, 1)
    modules.append(td_ensemble)
    return calls, modules, f"tensordict {tensordict.__version__}"


def hand_batched(ensemble: torch.nn.Module, obs: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The floor: the ensemble's arithmetic written out by hand on its parameters (one matmul for the first layer,
    batched matmuls after), with no module, dict or check around it."""
    w1, b1, w2, b2, w3, b3 = ensemble.parameters()

    def call() -> torch.Tensor:
        h = torch.relu(torch.nn.functional.linear(obs, w1.flatten(0, 1), b1.flatten()))
        h = torch.relu(torch.baddbmm(b2.unsqueeze(1), h.view(obs.shape[0], SIZE, -1).movedim(-2, 0), w2.transpose(1, 2)))
        return torch.baddbmm(b3.unsqueeze(1), h, w3.transpose(1, 2)).movedim(0, -2)
    return call


def backward(call: Callable[[], torch.Tensor]) -> Callable[[], None]:
    return lambda: torch.autograd.backward(call().sum())


def ratios(timings: dict[str, Timing]) -> dict[str, float]:
    """How many times faster the ensemble is than each other variant: median over rounds of the paired ratio."""
    mine = timings[ENSEMBLE].samples
    return {name: statistics.median(o / e for o, e in zip(t.samples, mine)) for name, t in timings.items()
            if name != ENSEMBLE}


def run(budget: float) -> tuple[list[str], str]:
    torch.manual_seed(0)
    obs = torch.randn(BATCH, 4)
    calls, modules, note = variants(obs)
    reference = calls[LOOP]()
    for name, call in calls.items():
        torch.testing.assert_close(call(), reference, rtol=1e-4, atol=1e-5, msg=name)
    with torch.no_grad():
        forward = interleaved(calls, budget=budget)
    for module in modules:
        module.requires_grad_(True)
    both = interleaved({name: backward(call) for name, call in calls.items()}, budget=budget)
    rows = []
    for case, timings in (("forward", forward), ("forward+backward", both)):
        faster = ratios(timings)
        cells = [fmt_time(timings[ENSEMBLE].median)]
        cells.append(f"{fmt_time(timings[FLOOR].median)} ({faster[FLOOR]:.2f}×)")
        for name in (LOOP, TENSORDICT):
            if name in timings:
                met = "met" if faster[name] >= TARGETS[name] else "**missed**"
                cells.append(f"{fmt_time(timings[name].median)}: **{faster[name]:.2f}×** (target ≥ "
                             f"{TARGETS[name]:g}×, {met})")
            else:
                cells.append("-")
        rows.append(f"| {case} | " + " | ".join(cells) + " |")
    return rows, note


def table(rows: list[str], note: str, argv: Sequence[str]) -> str:
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return "\n".join([
        BEGIN, "<!-- written by `python -m benchmarks.ensemble`; edit outside the markers -->", "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}, torch threads "
        f"1. Run: {now}, `python -m benchmarks.ensemble{' ' + ' '.join(argv) if argv else ''}`; {note}; load "
        f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end (other sessions' tests).", "",
        f"K = {SIZE} Example-1 critics (Dense [16, 32] relu, value head), batch {BATCH}. Each cell: median time per "
        "call; in bold, how many times faster `ps.Ensemble` is (median over rounds of the paired ratio).", "",
        f"| case | {ENSEMBLE} | {FLOOR} | {LOOP} | {TENSORDICT} |", "|---|---|---|---|---|", *rows, "", END])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short run, printed only")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    rows, note = run(budget=1.0 if args.quick else 8.0)
    text = table(rows, note, list(argv if argv is not None else sys.argv[1:]))
    print(text)
    if args.quick:
        return
    old = RESULTS.read_text()
    if BEGIN in old:
        new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: text, old, flags=re.S)
    else:
        new = old.replace(BEFORE, f"## Ensembles (issue #18)\n\n{text}\n\n{BEFORE}", 1)
    RESULTS.write_text(new)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
