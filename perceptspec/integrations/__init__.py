"""Adapters that let perceptspec models train inside existing RL frameworks.

Each adapter is imported explicitly, so `import perceptspec` stays free of torch and of every framework:

- `perceptspec.integrations.sb3`: `SpecActorCriticPolicy`, a Stable-Baselines3 policy built from a composer config
  (`pip install 'perceptspec[sb3]'`).
- `perceptspec.integrations.tensordict`: a materialized module as a `TensorDictModule` for TorchRL's actors and
  losses (`pip install 'perceptspec[torchrl]'`, or `[tensordict]` for the module alone).

This package itself only holds `spec_config`, which turns spec values (rather than import paths of spec functions)
into a composer config, and the two composer targets it names. It imports no torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from perceptspec._errors import SpecError
from perceptspec._fold import from_dict
from perceptspec._spec import Block

__all__ = ["critic_from_spec", "policy_from_spec", "spec_config"]

#: a spec value, or its `ps.to_dict` form (what a YAML config holds)
SpecLike = Block | Mapping[str, Any]


def _as_spec(spec: SpecLike, where: str) -> Block:
    if isinstance(spec, Block):
        return spec
    if isinstance(spec, Mapping):
        return from_dict(dict(spec))
    raise SpecError(where, [f"spec: expected a spec or its to_dict form, got {type(spec).__name__}"])


def policy_from_spec(obs_shapes: Mapping[str, Sequence[int]], action_logits_shapes: Mapping[str, Sequence[int]],
                     spec: SpecLike) -> Block:
    """Composer policy target returning a fixed spec; the composer checks its heads against the action space.

    Examples:
        >>> from perceptspec.integrations import policy_from_spec
        >>> policy = ps.Graph([ps.Dense(in_keys="observation", out_keys="h", hidden_units=[16]),
        ...                    ps.LinearOutput(in_keys="h", out_keys="action", output_units=2)], out_keys="action")
        >>> policy_from_spec({"observation": (4,)}, {"action": (2,)}, spec=policy) == policy
        True
    """
    return _as_spec(spec, "policy_from_spec")


def critic_from_spec(obs_shapes: Mapping[str, Sequence[int]], spec: SpecLike) -> Block:
    """Composer critic target returning a fixed spec; the composer checks that it outputs 'value' of shape (1,).

    Examples:
        >>> from perceptspec.integrations import critic_from_spec
        >>> critic = ps.LinearOutput(in_keys="observation", out_keys="value", output_units=1)
        >>> critic_from_spec({"observation": (4,)}, spec=ps.to_dict(critic)) == critic
        True
    """
    return _as_spec(spec, "critic_from_spec")


def spec_config(policy: SpecLike, critic: SpecLike | None = None, *, seed: int | None = None,
                critic_kind: str = "state", **policy_section: Any) -> dict[str, Any]:
    """A composer config (`ps.compose`'s layout) that uses these spec values as the policy and critic networks.

    policy: the policy spec, one head per action (SB3: the head 'action').
    critic: the critic spec with a 'value' head of shape (1,); it may read keys the policy outputs besides its
        actions (a shared embedding). None: no critic.
    seed: the composer's seed (same seed, same weights, in any process).
    policy_section: further keys of the 'policy' section, e.g. `init=...` or `action_head_bias={'action': [...]}`.

    Examples:
        >>> from perceptspec.integrations import spec_config
        >>> policy = ps.Graph([ps.Dense(in_keys="observation", out_keys="h", hidden_units=[16]),
        ...                    ps.LinearOutput(in_keys="h", out_keys="action", output_units=2)], out_keys="action")
        >>> config = spec_config(policy, seed=0)
        >>> config["policy"]["networks"][0]["_target_"]
        'perceptspec.integrations.policy_from_spec'
    """
    config: dict[str, Any] = {"policy": {"networks": [{"_target_": f"{__name__}.policy_from_spec", "spec": policy}],
                                         **policy_section}}
    if critic is not None:
        config["critic"] = {"kind": critic_kind,
                            "networks": [{"_target_": f"{__name__}.critic_from_spec", "spec": critic}]}
    if seed is not None:
        config["seed"] = seed
    return config
