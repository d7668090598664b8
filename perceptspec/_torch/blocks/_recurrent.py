"""Build rules of the recurrent blocks: LSTM, LSTMLastStep, GRU and GRULastStep.

The block module holds nn.LSTM's / nn.GRU's parameters under their names (in `rnn`, so
`nn.LSTM(...).load_state_dict(module.rnn.state_dict())` works both ways) and calls the functional `torch.lstm` /
`torch.gru` that those modules call, not the modules themselves: Dynamo refuses to trace nn.LSTM / nn.GRU, and the
API promises `torch.compile(fullgraph=True)`. Under compilation the same recurrence runs as an unrolled loop of
plain ops (the time length is fixed by the spec), since inductor fails on `torch.lstm` with autograd on CPU
(torch 2.13: "expected Tensor() for op: aten.mkldnn_rnn_layer"). Eager runs keep torch's fused kernels.
The module's weights are read as attributes at every call, so parametrizations, `functional_call` and tensordict's
`to_module` see what they put there; `dense` and `non_lin` are called as modules (through `call`).

Initialisation ("recurrent weights get an initialiser that suits them"): the block's `init` fills the
time-distributed dense layer as for any Linear. The recurrent weights get:
- TorchDefault: what nn.LSTM / nn.GRU do, every weight and bias uniform in ±1/sqrt(hidden_size);
- NormC: the same, as Maze's normc module init leaves nn.LSTM to torch (it fills Linear and conv layers only), so a
  Maze network under NormC, a template's recurrence included, starts as Maze's;
- any other initialiser: Keras' recurrent defaults, applied per gate block: input weights Glorot (Xavier) uniform,
  hidden-to-hidden weights orthogonal (each gate's recurrence keeps the norm of the state), biases zero except
  the LSTM forget gate's input bias, 1 (Jozefowicz et al. 2015), so the untrained cell remembers.
Both draw from the block's generator in nn.LSTM's parameter order, so seeding is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from perceptspec._core import Shape
from perceptspec._spec import GRU, LSTM, GRULastStep, Initializer, LSTMLastStep, NormC, TorchDefault
from perceptspec._spec._recurrent import Recurrent
from perceptspec._torch._init import initialise
from perceptspec._torch._call import call_in_turn, intercepted, param
from perceptspec._torch._non_lin import NON_LIN_MODULES
from perceptspec._torch._tables import torch_builders

# (sequences (N, T, F), flat weights, hidden_size, num_layers, bidirectional) -> outputs (N, T, out_units)
RunRule = Callable[[torch.Tensor, list[torch.Tensor], int, int, bool], torch.Tensor]
# (input gates x_t W_ih + b_ih, hidden h, cell c (LSTM only), W_hh, b_hh) -> next (h, c)
StepRule = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                    tuple[torch.Tensor, torch.Tensor]]


def _native_lstm(seq: torch.Tensor, weights: list[torch.Tensor], hidden_size: int, num_layers: int,
                 bidirectional: bool) -> torch.Tensor:
    h0 = seq.new_zeros(num_layers * (2 if bidirectional else 1), seq.shape[0], hidden_size)
    return torch.lstm(seq, (h0, h0), weights, True, num_layers, 0.0, False, bidirectional, True)[0]


def _native_gru(seq: torch.Tensor, weights: list[torch.Tensor], hidden_size: int, num_layers: int,
                bidirectional: bool) -> torch.Tensor:
    h0 = seq.new_zeros(num_layers * (2 if bidirectional else 1), seq.shape[0], hidden_size)
    return torch.gru(seq, h0, weights, True, num_layers, 0.0, False, bidirectional, True)[0]


def _lstm_step(gi: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_hh: torch.Tensor,
               b_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    i, f, g, o = (gi + F.linear(h, w_hh, b_hh)).chunk(4, -1)  # torch's gate order
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _gru_step(gi: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_hh: torch.Tensor,
              b_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    i_r, i_z, i_n = gi.chunk(3, -1)  # torch's gate order
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, -1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return n + z * (h - n), c


def unrolled(step: StepRule) -> RunRule:
    """The recurrence of `step` as a Python loop over time steps: traceable by Dynamo, same result as torch's."""
    def run(seq: torch.Tensor, weights: list[torch.Tensor], hidden_size: int, num_layers: int,
            bidirectional: bool) -> torch.Tensor:
        directions = 2 if bidirectional else 1
        steps = seq.shape[1]
        for layer in range(num_layers):
            outs = []
            for d in range(directions):
                w_ih, w_hh, b_ih, b_hh = weights[4 * (layer * directions + d):][:4]
                gi = F.linear(seq, w_ih, b_ih)  # the input's contribution to every step at once
                h = c = seq.new_zeros(seq.shape[0], hidden_size)
                hs = [h] * steps
                for t in (reversed(range(steps)) if d else range(steps)):
                    h, c = step(gi[:, t], h, c, w_hh, b_hh)
                    hs[t] = h
                outs.append(torch.stack(hs, 1))
            seq = torch.cat(outs, -1)
        return seq
    return run


#: one time step of each cell, for the unrolled recurrences (here and in the stateful blocks)
STEP_RULES: dict[str, StepRule] = {"lstm": _lstm_step, "gru": _gru_step}
_NATIVE: dict[str, RunRule] = {"lstm": _native_lstm, "gru": _native_gru}
_UNROLLED: dict[str, RunRule] = {cell: unrolled(step) for cell, step in STEP_RULES.items()}
#: gates whose input bias starts at 1 under the non-default initialisers (LSTM gates are i, f, g, o)
_UNIT_BIAS_GATES: dict[str, tuple[int, ...]] = {"lstm": (1,), "gru": ()}


def weight_shapes(gates: int, hidden_size: int, num_layers: int, bidirectional: bool,
                  n_in: int) -> list[tuple[str, tuple[int, ...]]]:
    """nn.LSTM's / nn.GRU's parameters in its `_flat_weights_names` order: per layer and direction W_ih, W_hh, b_ih,
    b_hh, each stacking the gates' rows."""
    rows, hidden = gates * hidden_size, hidden_size
    shapes = []
    for layer in range(num_layers):
        layer_in = n_in if layer == 0 else hidden_size * (2 if bidirectional else 1)
        for suffix in ("", "_reverse") if bidirectional else ("",):
            shapes += [(f"weight_ih_l{layer}{suffix}", (rows, layer_in)),
                       (f"weight_hh_l{layer}{suffix}", (rows, hidden)),
                       (f"bias_ih_l{layer}{suffix}", (rows,)), (f"bias_hh_l{layer}{suffix}", (rows,))]
    return shapes


def flat_weights(rnn: nn.Module, names: list[str]) -> list[torch.Tensor]:
    """The weights of `rnn` (the holder of nn.LSTM's / nn.GRU's parameters) in `names` order, read as its forward
    would read them (parametrizations, tensors set in their place)."""
    if intercepted(rnn):
        raise TypeError("the recurrent block's 'rnn' holds nn.LSTM's / nn.GRU's weights and is never called, so a "
                        "hook on it would never run: register the hook on the block's module instead")
    try:  # every weight in `_parameters` (functional_call swaps them there): `param`'s fast path, in C
        weights: list[Any] = list(map(rnn._parameters.__getitem__, names))
    except KeyError:  # moved out by a parametrization or tensordict's `to_module`: read as the attribute
        weights = [param(rnn, name) for name in names]
    return weights


class RecurrentModule(nn.Module):
    """A recurrent block: `rnn` (nn.LSTM's / nn.GRU's parameters), then `dense` and `non_lin` on every kept step.

    forward: (..., T, F) -> (..., T, out_units), or (..., out_units) with `last_step`. Leading dims are flattened
    into torch's one batch dim and restored. Keeping only the last step before the dense layer computes what
    Maze's dense-then-slice does, with T times less work.
    """

    def __init__(self, block: Recurrent, n_in: int, last_step: bool) -> None:
        super().__init__()
        self.cell = block.cell
        self.hidden_size = block.hidden_size
        self.num_layers = block.num_layers
        self.bidirectional = block.bidirectional
        self.last_step = last_step
        self.rnn = nn.Module()
        for name, shape in weight_shapes(block.gates, block.hidden_size, block.num_layers, block.bidirectional,
                                         n_in):
            self.rnn.register_parameter(name, nn.Parameter(torch.empty(shape)))  # the build rule fills them
        self.weight_names = list(self.rnn._parameters)
        self.dense = nn.Linear(block.out_units, block.out_units, device="meta")
        self.dense.to_empty(device="cpu")  # skip nn.Linear's own random init: the build rule fills it
        self.non_lin = NON_LIN_MODULES[block.non_lin]()

    def run(self, seq: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
        """The recurrence over sequences (N, T, F) -> (N, T, out_units) with `weights` in `weight_names` order:
        torch's fused kernel, or under torch.compile the unrolled loop."""
        run = (_UNROLLED if torch.compiler.is_compiling() else _NATIVE)[self.cell]
        return run(seq, weights, self.hidden_size, self.num_layers, self.bidirectional)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        modules = self._modules  # what `self.rnn` etc. read, without nn.Module.__getattr__
        rnn, dense, non_lin = modules["rnn"], modules["dense"], modules["non_lin"]
        assert rnn is not None and dense is not None and non_lin is not None
        # (N, T, F) as it is: a reshaped view, even of the same shape, made the fused kernel slower at batch 1
        one_batch_dim = x.dim() == 3
        y = self.run(x if one_batch_dim else x.reshape((-1,) + x.shape[-2:]), flat_weights(rnn, self.weight_names))
        if self.last_step:
            y = y.select(1, -1)
        out = call_in_turn((dense, non_lin), y)
        return out if one_batch_dim else out.reshape(x.shape[:-2] + out.shape[1:])

    def extra_repr(self) -> str:
        return (f"{self.cell}, hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, last_step={self.last_step}")


def initialise_recurrent(weights: list[torch.Tensor], hidden: int, cell: str, init: Initializer,
                         generator: torch.Generator | None) -> None:
    """Fill the weights of an nn.LSTM / nn.GRU (its parameter order) as the module docstring says (torch's default,
    or Glorot / orthogonal / unit forget bias)."""
    with torch.no_grad():
        if isinstance(init, (TorchDefault, NormC)):
            bound = 1 / math.sqrt(hidden)
            for w in weights:
                nn.init.uniform_(w, -bound, bound, generator=generator)
            return
        for w_ih, w_hh, b_ih, b_hh in zip(*[iter(weights)] * 4):
            gate_rows = [slice(g * hidden, (g + 1) * hidden) for g in range(w_ih.shape[0] // hidden)]
            for rows in gate_rows:
                nn.init.xavier_uniform_(w_ih[rows], generator=generator)
            for rows in gate_rows:
                nn.init.orthogonal_(w_hh[rows], generator=generator)
            b_ih.zero_()
            b_hh.zero_()
            for g in _UNIT_BIAS_GATES[cell]:
                b_ih[gate_rows[g]] = 1.0


def _build(block: Recurrent, ins: Sequence[Shape], init: Initializer, generator: torch.Generator | None,
           last_step: bool) -> RecurrentModule:
    module = RecurrentModule(block, ins[0][-1], last_step)
    initialise_recurrent([getattr(module.rnn, name) for name in module.weight_names], module.hidden_size,
                         module.cell, init, generator)
    initialise(init, module.dense.weight, module.dense.bias, generator)
    return module


@torch_builders.register(LSTM, GRU)
def _recurrent_build_rule(block: Recurrent, ins: tuple[Shape, ...], init: Initializer,
                          generator: torch.Generator | None) -> nn.Module:
    return _build(block, ins, init, generator, last_step=False)


@torch_builders.register(LSTMLastStep, GRULastStep)
def _recurrent_last_step_build_rule(block: Recurrent, ins: tuple[Shape, ...], init: Initializer,
                                    generator: torch.Generator | None) -> nn.Module:
    return _build(block, ins, init, generator, last_step=True)
