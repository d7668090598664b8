"""Pure rules of the stateful recurrent blocks: StatefulLSTM and StatefulGRU."""

from __future__ import annotations

from perceptspec._core import Shape
from perceptspec._fold._rules import Mismatch, label_rules, param_rules, shape_rules
from perceptspec._spec import StatefulGRU, StatefulLSTM
from perceptspec._spec._stateful import StatefulRecurrent

#: the reset key's shape per batch element, TorchRL's `is_init`
RESET_SHAPE: Shape = (1,)


@shape_rules.register(StatefulLSTM, StatefulGRU)
def _stateful_shape_rule(block: StatefulRecurrent, ins: tuple[Shape, ...]) -> tuple[Shape, ...]:
    x = ins[0]
    if len(x) != 1:
        raise Mismatch(0, "a shape (features,): the state has no room for more dims per batch element (a time "
                          "axis is a leading dim, see ps.recurrent_mode; Flatten other dims first)", x)
    states = len(block.state_names)
    for i, shape in enumerate(ins[1:1 + states], start=1):
        if shape != block.state_shape:
            raise Mismatch(i, f"the state shape (num_layers, hidden_size) = {block.state_shape}", shape)
    if block.reset_key is not None and ins[-1] != RESET_SHAPE:
        raise Mismatch(len(ins) - 1, f"a reset flag of shape {RESET_SHAPE}", ins[-1])
    return ((block.hidden_size,),) + (block.state_shape,) * states


@param_rules.register(StatefulLSTM, StatefulGRU)
def _stateful_param_rule(block: StatefulRecurrent, ins: tuple[Shape, ...]) -> int:
    """nn.LSTM / nn.GRU per layer: gates x hidden rows of [W_ih | W_hh] and two biases."""
    rows = block.gates * block.hidden_size
    first = rows * (ins[0][-1] + block.hidden_size + 2)
    return first + (block.num_layers - 1) * rows * (2 * block.hidden_size + 2)


@label_rules.register(StatefulLSTM, StatefulGRU)
def _stateful_label_rule(block: StatefulRecurrent, ins: tuple[Shape, ...]) -> str:
    layers = f"{block.num_layers}×" if block.num_layers > 1 else ""
    reset = f", reset by {block.reset_key}" if block.reset_key is not None else ""
    return f"{type(block).__name__} {ins[0][-1]}→{layers}{block.hidden_size}, state {block.state_shape}{reset}"
