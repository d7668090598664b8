"""Pure rules of the fully connected blocks: Dense and LinearOutput."""

from __future__ import annotations

from perceptspec._core import Shape
from perceptspec._fold._rules import arrow, label_rules, linear_params, param_rules, require_rank, shape_rules
from perceptspec._spec import ConstantBias, Dense, LinearOutput


@shape_rules.register(Dense)
def _dense_shape_rule(block: Dense, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    (x,) = ins
    require_rank(x, 0, 1, "(..., features)")
    return (x[:-1] + (block.hidden_units[-1],),)


@param_rules.register(Dense)
def _dense_param_rule(block: Dense, ins: tuple[Shape, ...]) -> int:
    norms = 2 * sum(block.hidden_units) if block.layer_norm else 0  # a LayerNorm's scale and shift per unit
    return linear_params((ins[0][-1], *block.hidden_units)) + norms


@label_rules.register(Dense)
def _dense_label_rule(block: Dense, ins: tuple[Shape, ...]) -> str:
    norm = " layer_norm" if block.layer_norm else ""
    return f"Dense {arrow((ins[0][-1], *block.hidden_units))}{norm} {block.non_lin}"


@shape_rules.register(LinearOutput)
def _linear_output_shape_rule(block: LinearOutput, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    (x,) = ins
    require_rank(x, 0, 1, "(..., features)")
    return (x[:-1] + (block.output_units,),)


@param_rules.register(LinearOutput)
def _linear_output_param_rule(block: LinearOutput, ins: tuple[Shape, ...]) -> int:
    return linear_params((ins[0][-1], block.output_units))


@label_rules.register(LinearOutput)
def _linear_output_label_rule(block: LinearOutput, ins: tuple[Shape, ...]) -> str:
    bias = "" if block.bias is None or block.bias == ConstantBias() else f" {type(block.bias).__name__}"
    return f"LinearOutput {arrow((ins[0][-1], block.output_units))}{bias}"
