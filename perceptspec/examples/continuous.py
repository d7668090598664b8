"""Networks for continuous control (SAC, TD3, DDPG on Pendulum-v1 and the like), as spec functions.

SB3's defaults for SAC (and DQN's 64 x 64 with `hidden_units: [64, 64]`): two hidden layers of 256 ReLU units for
the actor and for each Q critic, with torch's default initialisation (TD3's and DDPG's default is [400, 300]: pass
`hidden_units`). The actor's head has as many units as the action's logits need: means and log
standard deviations for SAC's Gaussian, the action itself for TD3's and DDPG's deterministic actor. The Q critic is
a `state_action` critic: it reads the observations and the action and outputs its Q value as 'value'.

`state_independent_log_std` names the Gaussian actions whose log standard deviations are parameters rather than head
outputs (SB3's default for PPO and A2C): their head gives the means and a `StateIndependentLogStd` block appends
the log stds, started at `log_std_init`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from perceptspec import Block, Concat, Dense, Flatten, Graph, LinearOutput, SpecError, StateIndependentLogStd


def _features(shapes: Mapping[str, Sequence[int]]) -> tuple[dict[str, Block], str]:
    """One feature vector of all inputs (observations, and for a Q critic the action), in key order: inputs of
    more than one dim (an image) flattened first, then concatenated."""
    blocks: dict[str, Block] = {}
    flat = []
    for key in sorted(shapes):
        if len(shapes[key]) > 1:
            blocks[f"flat_{key}"] = Flatten(in_keys=key, out_keys=f"flat_{key}", num_flatten_dims=len(shapes[key]))
        flat.append(f"flat_{key}" if len(shapes[key]) > 1 else key)
    if len(flat) == 1:
        return blocks, flat[0]
    blocks["features"] = Concat(in_keys=flat, out_keys="features", concat_dim=-1)
    return blocks, "features"


def mlp_actor(obs_shapes: Mapping[str, Sequence[int]], action_logits_shapes: Mapping[str, Sequence[int]],
              hidden_units: Sequence[int] = (256, 256), non_lin: str = "relu",
              state_independent_log_std: Sequence[str] = (), log_std_init: float = 0.0) -> Graph:
    """Observations (concatenated) -> Dense body -> one head per action, as wide as its logits (for the actions in
    `state_independent_log_std`, half as wide: the means, followed by a StateIndependentLogStd block)."""
    unknown = [a for a in state_independent_log_std if a not in action_logits_shapes]
    if unknown:
        raise SpecError("mlp_actor", [f"state_independent_log_std: {unknown} are not actions "
                                      f"{list(action_logits_shapes)}"])
    blocks, features = _features(obs_shapes)
    blocks["latent"] = Dense(in_keys=features, out_keys="latent", hidden_units=hidden_units, non_lin=non_lin)
    for action, shape in action_logits_shapes.items():
        if action in state_independent_log_std:
            blocks[f"{action}_mean"] = LinearOutput(in_keys="latent", out_keys=f"{action}_mean",
                                                    output_units=shape[-1] // 2)
            blocks[action] = StateIndependentLogStd(in_keys=f"{action}_mean", out_keys=action,
                                                    log_std_init=log_std_init)
        else:
            blocks[action] = LinearOutput(in_keys="latent", out_keys=action, output_units=shape[-1])
    return Graph(blocks, out_keys=list(action_logits_shapes))


def mlp_q_critic(obs_shapes: Mapping[str, Sequence[int]], hidden_units: Sequence[int] = (256, 256),
                 non_lin: str = "relu") -> Graph:
    """Observations and actions (concatenated, in key order) -> Dense body -> 'value', the Q value."""
    blocks, features = _features(obs_shapes)
    blocks["latent"] = Dense(in_keys=features, out_keys="latent", hidden_units=hidden_units, non_lin=non_lin)
    blocks["value"] = LinearOutput(in_keys="latent", out_keys="value", output_units=1)
    return Graph(blocks, out_keys="value")
