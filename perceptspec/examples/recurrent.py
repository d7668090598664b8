"""Recurrent policy and critic as spec functions: a stateful LSTM (or GRU) carries what one observation lacks.

Policy: observations (concatenated if several) -> StatefulLSTM(hidden_size) with state keys 'h', 'c' and the reset
key 'is_init' -> Dense(hidden_units) -> one logits head per action. The critic has its own LSTM with the state keys
'critic_h', 'critic_c' (the two run in one actor-critic forward, so their state keys differ) and a 'value' head.
The layout is RecurrentPPO's default (a separate LSTM for the critic, a small MLP after each LSTM); init as
SB3's: orthogonal, gain sqrt(2) in the body, 0.01 on the action heads, 1 on the value head (the LSTM's own weights
get the recurrent initialisers of perceptspec's recurrent blocks).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from perceptspec import Block, Concat, Dense, Graph, LinearOutput, Orthogonal, StatefulGRU, StatefulLSTM

RESET_KEY = "is_init"  # TorchRL's name: true where an episode starts


def _recurrent_body(obs_shapes: Mapping[str, Sequence[int]], prefix: str, hidden_size: int, num_layers: int,
                    cell: str, hidden_units: Sequence[int], non_lin: str) -> tuple[dict[str, Block], list[str]]:
    """Blocks from the observations to f'{prefix}latent', and the next-state keys they output."""
    blocks: dict[str, Block] = {}
    obs_keys = list(obs_shapes)
    x = obs_keys[0]
    if len(obs_keys) > 1:
        blocks[f"{prefix}observations"] = Concat(in_keys=obs_keys, out_keys=f"{prefix}observations", concat_dim=-1)
        x = f"{prefix}observations"
    kind = {"lstm": StatefulLSTM, "gru": StatefulGRU}[cell]
    states = [f"{prefix}{name}" for name in kind.state_names]
    next_states = [f"{s}_next" for s in states]
    blocks[f"{prefix}rnn"] = kind(in_keys=[x, *states, RESET_KEY], out_keys=[f"{prefix}memory", *next_states],
                                  hidden_size=hidden_size, num_layers=num_layers)
    blocks[f"{prefix}latent"] = Dense(in_keys=f"{prefix}memory", out_keys=f"{prefix}latent",
                                      hidden_units=hidden_units, non_lin=non_lin)
    return blocks, next_states


def recurrent_policy(obs_shapes: Mapping[str, Sequence[int]], action_logits_shapes: Mapping[str, Sequence[int]],
                     hidden_size: int = 64, num_layers: int = 1, cell: str = "lstm",
                     hidden_units: Sequence[int] = (64,), non_lin: str = "tanh") -> Graph:
    """observations -> stateful LSTM/GRU -> Dense -> one logits head per action; outputs the next state too."""
    blocks, next_states = _recurrent_body(obs_shapes, "", hidden_size, num_layers, cell, hidden_units, non_lin)
    for action, shape in action_logits_shapes.items():
        blocks[action] = LinearOutput(in_keys="latent", out_keys=action, output_units=shape[-1],
                                      init=Orthogonal(gain=0.01))
    return Graph(blocks, out_keys=[*action_logits_shapes, *next_states], init=Orthogonal(gain=math.sqrt(2)))


def recurrent_critic(obs_shapes: Mapping[str, Sequence[int]], hidden_size: int = 64, num_layers: int = 1,
                     cell: str = "lstm", hidden_units: Sequence[int] = (64,), non_lin: str = "tanh") -> Graph:
    """observations -> its own stateful LSTM/GRU (state keys 'critic_h', ...) -> Dense -> 'value'."""
    blocks, next_states = _recurrent_body(obs_shapes, "critic_", hidden_size, num_layers, cell, hidden_units,
                                          non_lin)
    blocks["value"] = LinearOutput(in_keys="critic_latent", out_keys="value", output_units=1,
                                   init=Orthogonal(gain=1.0))
    return Graph(blocks, out_keys=["value", *next_states], init=Orthogonal(gain=math.sqrt(2)))
