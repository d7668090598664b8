"""Pure rules of the recurrent blocks: LSTM, LSTMLastStep, GRU and GRULastStep."""

from __future__ import annotations

from perceptspec._core import Shape
from perceptspec._fold._rules import label_rules, linear_params, param_rules, require_rank, shape_rules
from perceptspec._spec import GRU, LSTM, GRULastStep, LSTMLastStep
from perceptspec._spec._recurrent import Recurrent

_LAYOUT = "(..., time, features)"


@shape_rules.register(LSTM, GRU)
def _recurrent_shape_rule(block: Recurrent, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    (x,) = ins
    require_rank(x, 0, 2, _LAYOUT)
    return (x[:-1] + (block.out_units,),)


@shape_rules.register(LSTMLastStep, GRULastStep)
def _recurrent_last_step_shape_rule(block: Recurrent, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    (x,) = ins
    require_rank(x, 0, 2, _LAYOUT)
    return (x[:-2] + (block.out_units,),)


@param_rules.register(LSTM, LSTMLastStep, GRU, GRULastStep)
def _recurrent_param_rule(block: Recurrent, ins: tuple[Shape, ...]) -> int:
    """nn.LSTM / nn.GRU per layer and direction: gates x hidden rows of [W_ih | W_hh] and two biases; then the dense."""
    directions = 2 if block.bidirectional else 1
    rows = block.gates * block.hidden_size
    recurrent = 0
    n_in = ins[0][-1]
    for _ in range(block.num_layers):
        recurrent += directions * rows * (n_in + block.hidden_size + 2)
        n_in = block.out_units
    return recurrent + linear_params((block.out_units, block.out_units))


@label_rules.register(LSTM, LSTMLastStep, GRU, GRULastStep)
def _recurrent_label_rule(block: Recurrent, ins: tuple[Shape, ...]) -> str:
    layers = f"{block.num_layers}×" if block.num_layers > 1 else ""
    bidirectional = " bi" if block.bidirectional else ""
    return (f"{type(block).__name__} {ins[0][-1]}→{layers}{block.hidden_size}{bidirectional}→{block.out_units} "
            f"{block.non_lin}")
