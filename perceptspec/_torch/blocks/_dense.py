"""Build and emit rules of the fully connected blocks: Dense and LinearOutput."""

from __future__ import annotations

import torch
from torch import nn

from perceptspec._fold._rules import Shape
from perceptspec._spec import Dense, Initializer, LinearOutput
from perceptspec._torch._init import initialise, set_bias
from perceptspec._torch._non_lin import NON_LIN_CALLS, NON_LIN_MODULES
from perceptspec._torch._tables import Site, emit_rules, torch_builders


def _linear(n_in: int, n_out: int, init: Initializer, generator: torch.Generator | None) -> nn.Linear:
    layer = nn.Linear(n_in, n_out, device="meta")
    layer.to_empty(device="cpu")  # skip nn.Linear's own random init: ours fills it (with our generator)
    initialise(init, layer.weight, layer.bias, generator)
    return layer


@torch_builders.register(Dense)
def _dense_build_rule(block: Dense, ins: tuple[Shape, ...], init: Initializer,
                      generator: torch.Generator | None) -> nn.Module:
    layers: list[nn.Module] = []
    n_in = ins[0][-1]
    for units in block.hidden_units:
        layers += [_linear(n_in, units, init, generator), NON_LIN_MODULES[block.non_lin]()]
        n_in = units
    return nn.Sequential(*layers)


@emit_rules.register(Dense)
def _dense_emit_rule(block: Dense, site: Site) -> list[str]:
    lines = []
    current = site.ins[0]
    for i in range(len(block.hidden_units)):
        p = site.fresh("p")
        out = site.outs[0] if i == len(block.hidden_units) - 1 else site.fresh("h")
        linear = f"F.linear({current}, {p}['weight'], {p}['bias'])"
        lines += [f"{p} = {site.params(str(2 * i))}", f"{out} = {NON_LIN_CALLS[block.non_lin].format(linear)}"]
        current = out
    return lines


@torch_builders.register(LinearOutput)
def _linear_output_build_rule(block: LinearOutput, ins: tuple[Shape, ...], init: Initializer,
                              generator: torch.Generator | None) -> nn.Module:
    layer = _linear(ins[0][-1], block.output_units, init, generator)
    if block.bias is not None:
        set_bias(block.bias, layer.bias)
    return layer


@emit_rules.register(LinearOutput)
def _linear_output_emit_rule(block: LinearOutput, site: Site) -> list[str]:
    p = site.fresh("p")
    return [f"{p} = {site.params()}", f"{site.outs[0]} = F.linear({site.ins[0]}, {p}['weight'], {p}['bias'])"]
