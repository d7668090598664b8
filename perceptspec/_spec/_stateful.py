"""Stateful recurrent blocks: an LSTM or GRU whose hidden state is an input key and an output key.

Unlike Maze's LSTM / LSTMLastStep blocks, which read a time axis inside one observation, these carry their state
across calls, as a policy does across env steps (sb3-contrib's RecurrentPPO, TorchRL's LSTMModule / GRUModule).
The layout is TorchRL's: per batch element the input is (features,), each state key (num_layers, hidden_size), the
optional reset key (1,) (TorchRL's `is_init`, RecurrentPPO's `episode_starts`: a row whose reset is true starts
from zeros). The time axis, for training on rollouts, is a leading dim (see `perceptspec.recurrent_mode`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from perceptspec._spec._block import Block
from perceptspec._spec._descriptor import descriptor
from perceptspec._spec._recurrent import size_problems

__all__ = ["StatefulGRU", "StatefulLSTM"]


@descriptor
class StatefulRecurrent(Block):
    """Fields and key layout shared by StatefulLSTM and StatefulGRU (abstract).

    in_keys: [input, *state, reset]: the input (features,), one key per state tensor (LSTM: h then c; GRU: h),
        each (num_layers, hidden_size), and optionally a reset key (1,) (bool, or 0/1 floats).
    out_keys: [output, *next state]: the last layer's hidden state (hidden_size,), then the state after the step.
    hidden_size: features of each layer's hidden state; num_layers: stacked layers. No dense layer follows (as
    nn.LSTM, TorchRL's LSTMModule and RecurrentPPO's LSTM): add a Dense block for one.
    """

    _abstract: ClassVar[bool] = True
    n_inputs: ClassVar[int | None] = None
    n_outputs: ClassVar[int | None] = None
    #: the torch cell ('lstm' or 'gru'), how many gate blocks its weight matrices stack, its state tensors
    cell: ClassVar[str]
    gates: ClassVar[int]
    state_names: ClassVar[tuple[str, ...]]

    hidden_size: int
    num_layers: int = 1

    @property
    def state_shape(self) -> tuple[int, int]:
        """The shape of each state tensor per batch element: (num_layers, hidden_size), TorchRL's layout."""
        return (self.num_layers, self.hidden_size)

    @property
    def state_in_keys(self) -> tuple[str, ...]:
        return tuple(self.in_keys[1:1 + len(self.state_names)])

    @property
    def state_out_keys(self) -> tuple[str, ...]:
        return tuple(self.out_keys[1:])

    @property
    def reset_key(self) -> str | None:
        """The key whose true rows start from a zero state, or None."""
        return self.in_keys[-1] if len(self.in_keys) == 2 + len(self.state_names) else None

    def input_roles(self) -> tuple[str, ...]:
        return ("features",) * (1 + len(self.state_names)) + ("mask",) * (self.reset_key is not None)

    def _value_problems(self) -> Iterator[str]:
        yield from super()._value_problems()
        states = "', '".join(self.state_names)
        if len(self.in_keys) not in (1 + len(self.state_names), 2 + len(self.state_names)):
            yield (f"field 'in_keys': {type(self).__name__} takes an input key, the state keys ('{states}') and an "
                   f"optional reset key, got {list(self.in_keys)}")
        if len(self.out_keys) != 1 + len(self.state_names):
            yield (f"field 'out_keys': {type(self).__name__} takes an output key and the next state's keys "
                   f"('{states}'), got {list(self.out_keys)}")
        if set(self.in_keys) & set(self.out_keys):
            yield (f"field 'out_keys': the next state needs keys of its own, not the input's: "
                   f"{sorted(set(self.in_keys) & set(self.out_keys))} are in_keys too")
        yield from size_problems(self.hidden_size, self.num_layers)


@descriptor
class StatefulLSTM(StatefulRecurrent):
    """A multi-layer LSTM carrying (h, c): in_keys [x, h, c] or [x, h, c, reset], out_keys [y, h_next, c_next].

    x (features,) -> y (hidden_size,); h, c (num_layers, hidden_size) before the step, h_next, c_next after it.
    """

    cell: ClassVar[str] = "lstm"
    gates: ClassVar[int] = 4
    state_names: ClassVar[tuple[str, ...]] = ("h", "c")


@descriptor
class StatefulGRU(StatefulRecurrent):
    """A multi-layer GRU carrying h: in_keys [x, h] or [x, h, reset], out_keys [y, h_next]."""

    cell: ClassVar[str] = "gru"
    gates: ClassVar[int] = 3
    state_names: ClassVar[tuple[str, ...]] = ("h",)
