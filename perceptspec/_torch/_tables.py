"""Rule tables of the torch interpreter, keyed by block (or initialiser) kind.

- `torch_builders`: a block's module (its parameters, and an eager `forward(*inputs)` that the reference
  interpreter runs), initialised from the block's effective initialiser and a generator.
- `emit_rules`: the lines of the generated flat forward for one block; a kind without one is called as its module.
- `init_rules` / `bias_rules`: how an initialiser fills a weight and bias, how a head bias fills a bias.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from perceptspec._fold._rules import RuleTable, Shape

BuildRule = Callable[[Any, tuple[Shape, ...], Any, "torch.Generator | None"], nn.Module]
EmitRule = Callable[[Any, "Site"], list[str]]
InitRule = Callable[[Any, torch.Tensor, "torch.Tensor | None", "torch.Generator | None"], None]
BiasRule = Callable[[Any, torch.Tensor], None]

torch_builders: RuleTable[BuildRule] = RuleTable("torch build")
emit_rules: RuleTable[EmitRule] = RuleTable("code emission")
init_rules: RuleTable[InitRule] = RuleTable("initialisation")
bias_rules: RuleTable[BiasRule] = RuleTable("head bias")


@dataclasses.dataclass(frozen=True)
class Site:
    """Where an emit rule writes: `module` is an expression for the block's module, `ins` / `outs` are the
    Python variable names of its inputs and outputs (with their feature shapes), `fresh(hint)` makes a new local
    name."""

    module: str
    ins: tuple[str, ...]
    outs: tuple[str, ...]
    fresh: Callable[[str], str]
    in_shapes: tuple[Shape, ...] = ()
    out_shapes: tuple[Shape, ...] = ()

    def params(self, submodule: str | None = None) -> str:
        """An expression for the `_parameters` dict of the block's module (or of one of its submodules).

        Reading parameters through `_parameters` skips `nn.Module.__getattr__` (about half a microsecond per
        access) and still sees parameters swapped in by `torch.func.functional_call`.
        """
        owner = self.module if submodule is None else f"{self.module}._modules[{submodule!r}]"
        return f"{owner}._parameters"


def call_module(block: Any, site: Site) -> list[str]:
    """The emit rule of kinds that have none of their own: call the block's module."""
    outs = site.outs[0] if len(site.outs) == 1 else ", ".join(site.outs)
    return [f"{outs} = {site.module}({', '.join(site.ins)})"]
