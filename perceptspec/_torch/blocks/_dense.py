"""Build rules of the fully connected blocks: Dense and LinearOutput."""

from __future__ import annotations

import torch
from torch import nn

from perceptspec._core import Shape
from perceptspec._spec import Dense, Initializer, LinearOutput
from perceptspec._torch._call import call_in_turn
from perceptspec._torch._init import initialise, set_bias
from perceptspec._torch._non_lin import NON_LIN_MODULES
from perceptspec._torch._tables import torch_builders


class DenseModule(nn.Sequential):
    """Dense: `nn.Linear` and non-linearity layers in turn (state_dict keys `0.weight`, `2.weight`, ... as Maze's),
    with an `nn.LayerNorm` between them when the block asks for it (`0.weight`, `1.weight`, `3.weight`, ...).

    Its forward is `nn.Sequential`'s, with each layer reached through `call` (see `perceptspec._torch._call`).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return call_in_turn(self._modules.values(), x)


def linear(n_in: int, n_out: int, init: Initializer, generator: torch.Generator | None) -> nn.Linear:
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
        norm = [nn.LayerNorm(units)] if block.layer_norm else []
        layers += [linear(n_in, units, init, generator), *norm, NON_LIN_MODULES[block.non_lin]()]
        n_in = units
    return DenseModule(*layers)


@torch_builders.register(LinearOutput)
def _linear_output_build_rule(block: LinearOutput, ins: tuple[Shape, ...], init: Initializer,
                              generator: torch.Generator | None) -> nn.Module:
    layer = linear(ins[0][-1], block.output_units, init, generator)
    if block.bias is not None:
        set_bias(block.bias, layer.bias)
    return layer
