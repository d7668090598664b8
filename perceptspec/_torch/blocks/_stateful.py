"""Build rules of the stateful recurrent blocks: StatefulLSTM and StatefulGRU.

The module holds nn.LSTM's / nn.GRU's parameters under their names (in `rnn`, as the Maze recurrent blocks do, so
`nn.LSTM(...).load_state_dict(module.rnn.state_dict())` works both ways) and calls `torch.lstm` / `torch.gru`
with the given state; under torch.compile the same recurrence runs as an unrolled loop (see `_recurrent`).

Two modes, as TorchRL's LSTMModule has (`recurrent_mode`):
- step (the default): every leading dim is a batch dim; one step from the given state. Inputs x (..., F), each state
  (..., num_layers, hidden), reset (..., 1); outputs y (..., hidden) and the next state (..., num_layers, hidden).
- sequence (`ps.recurrent_mode(module)`): the last leading dim is time, for training on rollouts. The state is read
  at the first step only (a rollout stores each step's state; the first is where the sequence starts); the next
  state is the final one, written at the last step, zeros elsewhere (TorchRL's layout: nn.LSTM gives no other).
A row whose reset flag is true starts from zeros at that step, in both modes (TorchRL's `is_init`, RecurrentPPO's
`episode_starts`); in sequence mode a reset inside the sequence restarts the recurrence there.
Initialisation: as the Maze recurrent blocks (torch's default, or Glorot / orthogonal / unit forget bias).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from perceptspec._core import Shape
from perceptspec._errors import SignatureError
from perceptspec._spec import Initializer, StatefulGRU, StatefulLSTM
from perceptspec._spec._stateful import StatefulRecurrent
from perceptspec._torch._tables import torch_builders
from perceptspec._torch.blocks._recurrent import STEP_RULES, flat_weights, initialise_recurrent, weight_shapes


class StatefulRecurrentModule(nn.Module):
    """A stateful block: `rnn` (nn.LSTM's / nn.GRU's parameters) run from a given state; see the module docstring.

    `recurrent_mode` (False: one step; True: the last leading dim is time) is set by `ps.recurrent_mode`.
    """

    def __init__(self, block: StatefulRecurrent, n_in: int) -> None:
        super().__init__()
        self.cell = block.cell
        self.hidden_size = block.hidden_size
        self.num_layers = block.num_layers
        self.n_states = len(block.state_names)
        self.recurrent_mode = False
        self.rnn = nn.Module()
        for name, shape in weight_shapes(block.gates, block.hidden_size, block.num_layers, False, n_in):
            self.rnn.register_parameter(name, nn.Parameter(torch.empty(shape)))  # the build rule fills them
        self.weight_names = list(self.rnn._parameters)

    def forward(self, x: torch.Tensor, *states_and_reset: torch.Tensor) -> tuple[torch.Tensor, ...]:
        rnn = self._modules["rnn"]
        assert rnn is not None
        weights = flat_weights(rnn, self.weight_names)
        states, reset = states_and_reset[:self.n_states], states_and_reset[self.n_states:]
        layers = (self.num_layers, self.hidden_size)
        if self.recurrent_mode:
            if x.dim() < 2:
                raise SignatureError(None, "inputs with a time dim (..., time, *shape) in recurrent_mode",
                                     f"an input of shape {tuple(x.shape)}")
            lead, n, steps = x.shape[:-1], x.shape[:-2].numel(), x.shape[-2]
            first = [s.reshape(n, steps, *layers)[:, 0] for s in states]
        else:
            lead, n, steps = x.shape[:-1], x.shape[:-1].numel(), 1
            first = [s.reshape(n, *layers) for s in states]
        resets = reset[0].reshape(n, steps) != 0 if reset else None
        y, finals = self.run(x.reshape(n, steps, x.shape[-1]), [s.transpose(0, 1) for s in first], resets, weights)
        nexts = [s.transpose(0, 1) for s in finals]  # (n, num_layers, hidden)
        if self.recurrent_mode:
            nexts = [torch.cat([s.new_zeros(n, steps - 1, *layers), s.unsqueeze(1)], 1) for s in nexts]
        return (y.reshape(*lead, self.hidden_size), *(s.reshape(*lead, *layers) for s in nexts))

    def run(self, seq: torch.Tensor, states: list[torch.Tensor], resets: torch.Tensor | None,
            weights: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Sequences (N, T, F) from states (num_layers, N, hidden), rows reset where `resets` (N, T) is true:
        outputs (N, T, hidden) and the final states."""
        if torch.compiler.is_compiling():
            return self.unrolled(seq, states, resets, weights)
        if resets is not None and bool(resets[:, 1:].any()):  # restarts inside: one step at a time, as RecurrentPPO
            outs = []
            for t in range(seq.shape[1]):
                y, states = self.native(seq[:, t:t + 1], [s.masked_fill(resets[:, t, None], 0) for s in states],
                                        weights)
                outs.append(y)
            return torch.cat(outs, 1), states
        if resets is not None:
            states = [s.masked_fill(resets[:, 0, None], 0) for s in states]
        return self.native(seq, states, weights)

    def native(self, seq: torch.Tensor, states: list[torch.Tensor],
               weights: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """torch's fused kernel (what nn.LSTM / nn.GRU call), batch first, one direction, no dropout."""
        if self.cell == "lstm":
            y, h, c = torch.lstm(seq, (states[0], states[1]), weights, True, self.num_layers, 0.0, False, False, True)
            return y, [h, c]
        y, h = torch.gru(seq, states[0], weights, True, self.num_layers, 0.0, False, False, True)
        return y, [h]

    def unrolled(self, seq: torch.Tensor, states: list[torch.Tensor], resets: torch.Tensor | None,
                 weights: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The same recurrence as a loop of plain ops over steps and layers (traceable by Dynamo)."""
        step = STEP_RULES[self.cell]
        h = list(states[0].unbind(0))
        c = list(states[-1].unbind(0))  # a GRU's step ignores and returns it
        outs = []
        for t in range(seq.shape[1]):
            if resets is not None:
                rows = resets[:, t, None]
                h, c = [s.masked_fill(rows, 0) for s in h], [s.masked_fill(rows, 0) for s in c]
            x = seq[:, t]
            for layer in range(self.num_layers):
                w_ih, w_hh, b_ih, b_hh = weights[4 * layer:4 * layer + 4]
                h[layer], c[layer] = step(F.linear(x, w_ih, b_ih), h[layer], c[layer], w_hh, b_hh)
                x = h[layer]
            outs.append(x)
        finals = [torch.stack(h)] + ([torch.stack(c)] if self.n_states == 2 else [])
        return torch.stack(outs, 1), finals

    def extra_repr(self) -> str:
        return (f"{self.cell}, hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
                f"recurrent_mode={self.recurrent_mode}")


@torch_builders.register(StatefulLSTM, StatefulGRU)
def _stateful_build_rule(block: StatefulRecurrent, ins: Sequence[Shape], init: Initializer,
                         generator: torch.Generator | None) -> nn.Module:
    module = StatefulRecurrentModule(block, ins[0][-1])
    initialise_recurrent([getattr(module.rnn, name) for name in module.weight_names], module.hidden_size,
                         module.cell, init, generator)
    return module
