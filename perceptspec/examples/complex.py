"""Seed Examples 2 and 4: a recurrent policy and critic over a screen and an inventory, and the same with the
screen embedding shared between actor and critic.

Observations carry a time axis: screen (T, 3, 64, 64), inventory (T, 16). Actions: `action_move`
(Discrete(4)) and `action_use` (MultiBinary(16)). The latent network: inventory -> Dense [128]; screen ->
VGGConvDense [8, 16, 32] / [32]; concat; Dense [128]; LSTMLastStep 32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from perceptspec import Block, Concat, Dense, Graph, LinearOutput, LSTMLastStep, NormC, VGGConvDense

SCREEN, INVENTORY = "observation_screen", "observation_inventory"
LATENT_SCREEN = "latent_screen"


def screen_embedding(non_lin: str = "relu") -> Block:
    """observation_screen -> latent_screen: the part Example 4 shares between actor and critic."""
    return VGGConvDense(in_keys=SCREEN, out_keys=LATENT_SCREEN, hidden_channels=[8, 16, 32], hidden_units=[32],
                        non_lin=non_lin)


def latent_net(screen_key: str = LATENT_SCREEN, non_lin: str = "relu", hidden_units: Sequence[int] = (128,),
               recurrent_size: int = 32) -> Graph:
    """(latent_screen, observation_inventory) -> latent: the trunk below the heads (a sub-graph; nests)."""
    return Graph({
        "inventory": Dense(in_keys=INVENTORY, out_keys="latent_inventory", hidden_units=[128], non_lin=non_lin),
        "concat": Concat(in_keys=["latent_inventory", screen_key], out_keys="latent_concat", concat_dim=-1),
        "hidden": Dense(in_keys="latent_concat", out_keys="hidden_out", hidden_units=hidden_units, non_lin=non_lin),
        "recurrent": LSTMLastStep(in_keys="hidden_out", out_keys="latent", hidden_size=recurrent_size,
                                  num_layers=1, bidirectional=False, non_lin=non_lin),
    }, out_keys="latent")


def _heads(action_logits_shapes: Mapping[str, Sequence[int]]) -> dict[str, Block]:
    return {a: LinearOutput(in_keys="latent", out_keys=a, output_units=s[-1], init=NormC(0.01))
            for a, s in action_logits_shapes.items()}


def complex_policy(obs_shapes: Mapping[str, Sequence[int]], action_logits_shapes: Mapping[str, Sequence[int]],
                   non_lin: str = "relu", hidden_units: Sequence[int] = (128,)) -> Graph:
    """Example 2 policy: screen embedding and latent trunk, one logits head per action."""
    blocks: dict[str, Block] = {"screen": screen_embedding(non_lin), "trunk": latent_net(non_lin=non_lin,
                                                                                       hidden_units=hidden_units)}
    return Graph({**blocks, **_heads(action_logits_shapes)}, out_keys=list(action_logits_shapes), init=NormC(1.0))


def complex_critic(obs_shapes: Mapping[str, Sequence[int]], non_lin: str = "relu",
                   hidden_units: Sequence[int] = (128,)) -> Graph:
    """Example 2 state critic: the same structure as the policy with a one-unit 'value' head."""
    return Graph({
        "screen": screen_embedding(non_lin),
        "trunk": latent_net(non_lin=non_lin, hidden_units=hidden_units),
        "value": LinearOutput(in_keys="latent", out_keys="value", output_units=1, init=NormC(0.01)),
    }, out_keys="value", init=NormC(1.0))


def shared_policy(obs_shapes: Mapping[str, Sequence[int]], action_logits_shapes: Mapping[str, Sequence[int]],
                  non_lin: str = "relu", hidden_units: Sequence[int] = (128,)) -> Graph:
    """Example 4 policy: Example 2's, which also outputs `latent_screen` for the critic to share."""
    policy = complex_policy(obs_shapes, action_logits_shapes, non_lin, hidden_units)
    return Graph(policy.blocks, out_keys=[*policy.out_keys, LATENT_SCREEN], init=policy.init)


def shared_critic(obs_shapes: Mapping[str, Sequence[int]], non_lin: str = "relu",
                  hidden_units: Sequence[int] = (128,)) -> Graph:
    """Example 4 critic: reads the policy's `latent_screen` (it arrives in obs_shapes with the shape the fold
    inferred) instead of embedding the screen again."""
    if LATENT_SCREEN not in obs_shapes:
        raise ValueError(f"shared_critic needs the policy's {LATENT_SCREEN!r} among its inputs, got {list(obs_shapes)}")
    return Graph({
        "trunk": latent_net(non_lin=non_lin, hidden_units=hidden_units),
        "value": LinearOutput(in_keys="latent", out_keys="value", output_units=1, init=NormC(0.01)),
    }, out_keys="value", init=NormC(1.0))
