"""Initialisers applied to tensors: one rule per initialiser kind, one per head-bias kind."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from perceptspec._spec import (BernoulliBias, Bias, CategoricalBias, ConstantBias, Initializer, KaimingUniform,
                               NormC, Orthogonal, TorchDefault, XavierUniform)
from perceptspec._torch._tables import InitRule, bias_rules, init_rules


def initialise(init: Initializer, weight: torch.Tensor, bias: torch.Tensor | None,
               generator: torch.Generator | None) -> None:
    """Fill a layer's `weight` (out, in, ...) and `bias` (out,) in place as `init` describes."""
    with torch.no_grad():
        init_rules.lookup(type(init))(init, weight, bias, generator)


def set_bias(bias_init: Bias, bias: torch.Tensor) -> None:
    """Overwrite a head's bias as `bias_init` describes."""
    with torch.no_grad():
        bias_rules.lookup(type(bias_init))(bias_init, bias)


def _fan_in(weight: torch.Tensor) -> int:
    return weight.shape[1] * math.prod(weight.shape[2:]) if weight.dim() > 1 else weight.shape[0]


@init_rules.register(TorchDefault)
def _torch_default_init_rule(init: TorchDefault, weight: torch.Tensor, bias: torch.Tensor | None,
                             generator: torch.Generator | None) -> None:
    # what nn.Linear / nn.ConvNd.reset_parameters do, with our generator
    torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if bias is not None:
        bound = 1 / math.sqrt(_fan_in(weight)) if _fan_in(weight) > 0 else 0.0
        torch.nn.init.uniform_(bias, -bound, bound, generator=generator)


def _zero_bias_after(fill: Callable[[Any, torch.Tensor, torch.Generator | None], object]) -> InitRule:
    """The rule of an initialiser that fills weights its own way and sets biases to 0."""
    def rule(init: Any, weight: torch.Tensor, bias: torch.Tensor | None, generator: torch.Generator | None) -> None:
        fill(init, weight, generator)
        if bias is not None:
            bias.zero_()
    return rule


def _normc_weights(init: NormC, weight: torch.Tensor, generator: torch.Generator | None) -> None:
    """Maze's normc: N(0, 1), then unit norm (times std) over dim 1: a Linear's inputs; a conv's input channels at
    each output channel and kernel position (Maze does not normalise a conv kernel as one row)."""
    torch.nn.init.normal_(weight, generator=generator)
    columns = weight.reshape(weight.shape[0], weight.shape[1] if weight.dim() > 1 else 1, -1)
    columns.mul_(init.std / columns.norm(dim=1, keepdim=True))


def _kaiming_uniform_weights(init: KaimingUniform, weight: torch.Tensor, generator: torch.Generator | None) -> None:
    non_lin: Any = init.non_lin  # torch annotates a Literal of names; the spec has checked this one
    torch.nn.init.kaiming_uniform_(weight, nonlinearity=non_lin, generator=generator)


init_rules.register(NormC)(_zero_bias_after(_normc_weights))
init_rules.register(Orthogonal)(_zero_bias_after(
    lambda init, weight, generator: torch.nn.init.orthogonal_(weight, gain=init.gain, generator=generator)))
init_rules.register(XavierUniform)(_zero_bias_after(
    lambda init, weight, generator: torch.nn.init.xavier_uniform_(weight, gain=init.gain, generator=generator)))
init_rules.register(KaimingUniform)(_zero_bias_after(_kaiming_uniform_weights))


@bias_rules.register(ConstantBias)
def _constant_bias_rule(b: ConstantBias, bias: torch.Tensor) -> None:
    bias.fill_(b.value)


@bias_rules.register(CategoricalBias)
def _categorical_bias_rule(b: CategoricalBias, bias: torch.Tensor) -> None:
    bias.copy_(torch.tensor(b.probs, dtype=torch.float64).log())


@bias_rules.register(BernoulliBias)
def _bernoulli_bias_rule(b: BernoulliBias, bias: torch.Tensor) -> None:
    p = torch.tensor(b.p, dtype=torch.float64).expand(bias.shape)
    bias.copy_(p.log() - (-p).log1p())
