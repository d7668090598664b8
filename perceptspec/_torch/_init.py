"""Initialisers applied to tensors: one rule per initialiser kind, one per head-bias kind."""

from __future__ import annotations

import math
from typing import Any

import torch

from perceptspec._spec import (BernoulliBias, Bias, CategoricalBias, ConstantBias, Initializer, KaimingUniform,
                               NormC, Orthogonal, TorchDefault, XavierUniform)
from perceptspec._torch._tables import bias_rules, init_rules


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


@init_rules.register(NormC)
def _normc_init_rule(init: NormC, weight: torch.Tensor, bias: torch.Tensor | None,
                     generator: torch.Generator | None) -> None:
    torch.nn.init.normal_(weight, generator=generator)
    rows = weight.reshape(weight.shape[0], -1)
    rows.mul_(init.std / rows.norm(dim=1, keepdim=True))
    if bias is not None:
        bias.zero_()


@init_rules.register(Orthogonal)
def _orthogonal_init_rule(init: Orthogonal, weight: torch.Tensor, bias: torch.Tensor | None,
                          generator: torch.Generator | None) -> None:
    torch.nn.init.orthogonal_(weight, gain=init.gain, generator=generator)
    if bias is not None:
        bias.zero_()


@init_rules.register(XavierUniform)
def _xavier_uniform_init_rule(init: XavierUniform, weight: torch.Tensor, bias: torch.Tensor | None,
                              generator: torch.Generator | None) -> None:
    torch.nn.init.xavier_uniform_(weight, gain=init.gain, generator=generator)
    if bias is not None:
        bias.zero_()


@init_rules.register(KaimingUniform)
def _kaiming_uniform_init_rule(init: KaimingUniform, weight: torch.Tensor, bias: torch.Tensor | None,
                               generator: torch.Generator | None) -> None:
    non_lin: Any = init.non_lin  # torch annotates a Literal of names; the spec has checked this one
    torch.nn.init.kaiming_uniform_(weight, nonlinearity=non_lin, generator=generator)
    if bias is not None:
        bias.zero_()


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
