"""Seed Example 1: feed-forward policy and critic for CartPole, as spec functions.

A spec function takes the shapes the composer infers from the env's spaces and returns a spec: no torch, no
dummy tensors. Body: Dense [16, 32] ReLU with NormC(1.0); heads: LinearOutput with NormC(0.01).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from perceptspec import Block, Dense, Graph, LinearOutput, NormC
from perceptspec._errors import refuse


def _one_observation(obs_shapes: Mapping[str, Sequence[int]], where: str) -> str:
    """The key of the one observation these networks read (issue #17: a Dict env gave a raw ValueError)."""
    if len(obs_shapes) != 1:
        refuse(where, [f"reads one observation (a Box or Discrete env such as CartPole), got {len(obs_shapes)}: "
                       f"{list(obs_shapes)}; for several, use perceptspec.templates.flatten_concat_policy or "
                       f"ps.compose(None, ...)"])
    return next(iter(obs_shapes))


def cartpole_policy(obs_shapes: Mapping[str, Sequence[int]], action_logits_shapes: Mapping[str, Sequence[int]],
                    hidden_units: Sequence[int] = (16, 32), non_lin: str = "relu") -> Graph:
    """observation -> Dense body -> one logits head per action (CartPole: 'action', 2 logits)."""
    obs_key = _one_observation(obs_shapes, "cartpole_policy")
    body = Dense(in_keys=obs_key, out_keys="embedding", hidden_units=hidden_units, non_lin=non_lin)
    blocks: dict[str, Block] = {"embedding": body}
    for action, shape in action_logits_shapes.items():
        blocks[action] = LinearOutput(in_keys="embedding", out_keys=action, output_units=shape[-1],
                                      init=NormC(std=0.01))
    return Graph(blocks, out_keys=list(action_logits_shapes), init=NormC(std=1.0))


def cartpole_critic(obs_shapes: Mapping[str, Sequence[int]], hidden_units: Sequence[int] = (16, 32),
                    non_lin: str = "relu") -> Graph:
    """observation -> Dense body -> 'value' (one unit)."""
    obs_key = _one_observation(obs_shapes, "cartpole_critic")
    return Graph({
        "embedding": Dense(in_keys=obs_key, out_keys="embedding", hidden_units=hidden_units, non_lin=non_lin),
        "value": LinearOutput(in_keys="embedding", out_keys="value", output_units=1, init=NormC(std=0.01)),
    }, out_keys="value", init=NormC(std=1.0))
