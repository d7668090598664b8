"""Networks carrying what users attach to modules (issue #13): a forward hook, or a parametrization, on every Linear
and Conv2d layer, in perceptspec's module and in the hand-written one alike. Both then pay torch's hook and
parametrization machinery; the target is that perceptspec stays no slower than the hand-written module with the
same attachments."""

from __future__ import annotations

import copy
import dataclasses
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

import perceptspec as ps
from benchmarks._networks import Network
from benchmarks._timing import MAX_ROUNDS, Timing, fmt_time, interleaved

#: the layers that get the attachment
LAYERS = (nn.Linear, nn.Conv2d)


class Unit(nn.Module):
    """A parametrization that returns the weight itself: what is timed is torch's parametrization machinery."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight


def _hook(module: nn.Module, args: Any, out: torch.Tensor) -> None:
    return None


def with_hooks(module: nn.Module) -> nn.Module:
    module = copy.deepcopy(module)
    for layer in module.modules():
        if isinstance(layer, LAYERS):
            layer.register_forward_hook(_hook)
    return module


def with_parametrizations(module: nn.Module) -> nn.Module:
    module = copy.deepcopy(module)
    for layer in list(module.modules()):
        if isinstance(layer, LAYERS):
            parametrize.register_parametrization(layer, "weight", Unit())
    return module


ATTACHMENTS: dict[str, Callable[[nn.Module], nn.Module]] = {"forward hook": with_hooks,
                                                            "parametrization": with_parametrizations}


@dataclasses.dataclass(frozen=True)
class AttachedCase:
    network: str
    attachment: str
    batch: int
    hand: Timing
    ps: Timing

    @property
    def ratio(self) -> float:
        return statistics.median(p / h for p, h in zip(self.ps.samples, self.hand.samples))


def attached_cases(networks: Sequence[Network], batches: Sequence[int], budget: float) -> list[AttachedCase]:
    """Each network with each attachment: outputs checked equal to the hand-written module's, then timed
    interleaved (forward, no grad)."""
    cases = []
    for net in networks:
        first = ps.materialize(net.spec, net.in_shapes, check="first")  # the column's variant (`compose` checks always)
        first.load_state_dict(net.weights.state_dict())
        for name, attach in ATTACHMENTS.items():
            hand, ps_module = attach(net.hand), attach(first)
            for batch in batches:
                inputs = net.inputs(batch, torch.Generator().manual_seed(batch))
                with torch.no_grad():
                    expected, got = hand(inputs), ps_module(inputs)
                    for key, value in expected.items():
                        torch.testing.assert_close(got[key], value, rtol=1e-3, atol=1e-4)
                    timings = interleaved({"hand": lambda: hand(inputs), "ps": lambda: ps_module(inputs)},
                                          budget=budget, sample=0.02, max_rounds=MAX_ROUNDS)
                cases.append(AttachedCase(net.name, name, batch, timings["hand"], timings["ps"]))
    return cases


def attached_table(cases: Sequence[AttachedCase]) -> list[str]:
    rows = ["| network | attached to every Linear and Conv2d | batch | hand-written | ps first |",
            "|---|---|---:|---:|---:|"]
    for c in cases:
        rows.append(f"| {c.network} | {c.attachment} | {c.batch} | {fmt_time(c.hand.median)} | "
                    f"**{c.ratio:.2f}** ({fmt_time(c.ps.median)}) |")
    return rows
