"""Actions beyond SB3's own: structured action spaces as one flat Box, and perceptspec's distributions behind SB3's
`Distribution` interface (see `perceptspec.integrations.sb3`).

SB3's on-policy algorithms and buffers take one Box, Discrete, MultiDiscrete or MultiBinary(n). `FlatActionWrapper`
shows SB3 a `FlatActionSpace`: a Box of every action's entries in turn, in `perceptspec.spaces.action_names` order
(a Discrete as its index, a MultiDiscrete its indices, a MultiBinary its bits, a Box its values, each flattened),
whose bounds are the actions' own; it keeps the original space as `structure`. `SpecDistribution` splits such a
flat action (or the single action of a plain space) into the policy's heads and back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.distributions import Distribution

from perceptspec import spaces
from perceptspec._errors import SpecError
from perceptspec.distributions import DictDistribution, action_distribution

__all__ = ["FlatActionSpace", "FlatActionWrapper", "SpecDistribution"]

_Self = TypeVar("_Self", bound="SpecDistribution")
#: the spaces whose actions a distribution scores as int64 indices
_INDEX_SPACES = (gym.spaces.Discrete, gym.spaces.MultiDiscrete)


def _entry_shape(space: gym.Space[Any]) -> tuple[int, ...]:
    """The shape of one action of `space` as a distribution samples it (a MultiDiscrete's nvec's shape)."""
    if isinstance(space, gym.spaces.MultiDiscrete):
        return tuple(int(d) for d in space.nvec.shape)
    return tuple(int(d) for d in space.shape or ())


def _bounds(space: gym.Space[Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The lowest and highest value of each entry, flattened."""
    if isinstance(space, gym.spaces.Box):
        return space.low.reshape(-1), space.high.reshape(-1)
    if isinstance(space, gym.spaces.Discrete):
        return np.array([space.start]), np.array([space.start + space.n - 1])
    if isinstance(space, gym.spaces.MultiDiscrete):
        return space.start.reshape(-1), (space.start + space.nvec - 1).reshape(-1)
    if isinstance(space, gym.spaces.MultiBinary):
        return np.zeros(math.prod(_entry_shape(space))), np.ones(math.prod(_entry_shape(space)))
    raise SpecError("FlatActionSpace", [f"action space {space!r}: expected Box, Discrete, MultiDiscrete or "
                                               f"MultiBinary entries in the (nested) Dict or Tuple"])


class FlatActionSpace(gym.spaces.Box):
    """A (nested) Dict / Tuple action space, or a multi-dimensional MultiBinary, as the flat Box SB3 handles;
    `structure` is the original space, `unflatten` gives the action of it for a flat action.

    Examples:
        >>> import gymnasium as gym
        >>> from perceptspec.integrations.sb3 import FlatActionSpace
        >>> flat = FlatActionSpace(gym.spaces.Tuple((gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,)))))
        >>> flat.shape, flat.unflatten([2, 0.5, -0.5])[0]
        ((3,), 2)
    """

    def __init__(self, structure: gym.Space[Any]) -> None:
        self.structure = structure
        leaves = spaces.action_spaces(structure)
        bounds = [_bounds(leaf) for leaf in leaves.values()]
        self.entries = {name: _entry_shape(leaf) for name, leaf in leaves.items()}
        super().__init__(np.concatenate([low for low, _ in bounds]).astype(np.float32),
                         np.concatenate([high for _, high in bounds]).astype(np.float32), dtype=np.float32)

    def unflatten(self, flat: np.ndarray[Any, Any]) -> Any:
        """The action of `structure` that the flat Box action `flat` stands for (integers rounded)."""
        leaves = spaces.action_spaces(self.structure)
        values, start = {}, 0
        for name, shape in self.entries.items():
            size = math.prod(shape)
            part = np.asarray(flat[start:start + size]).reshape(shape)
            leaf = leaves[name]
            values[name] = np.rint(part).astype(leaf.dtype) if isinstance(leaf, (*_INDEX_SPACES, gym.spaces.MultiBinary)) \
                else part.astype(leaf.dtype)
            if isinstance(leaf, gym.spaces.Discrete):
                values[name] = int(values[name])
            start += size
        return spaces.nest(self.structure, values, "action")

    def __repr__(self) -> str:
        return f"FlatActionSpace({self.structure!r})"


class FlatActionWrapper(gym.ActionWrapper[Any, Any, Any]):
    """An env whose actions SB3 cannot hold (Tuple, nested Dict, multi-dimensional MultiBinary) behind one flat Box
    (`FlatActionSpace`); the policy composes for the original space, the env receives its structured actions.

    Examples:
        >>> import gymnasium as gym
        >>> from perceptspec.integrations.sb3 import FlatActionWrapper
        >>> env = FlatActionWrapper(gym.make("CartPole-v1"))
        >>> env.action_space.shape
        (1,)
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self.action_space = FlatActionSpace(env.action_space)

    def action(self, action: Any) -> Any:
        assert isinstance(self.action_space, FlatActionSpace)
        return self.action_space.unflatten(np.asarray(action).reshape(-1))


class SpecDistribution(Distribution):
    """perceptspec's distributions over a policy's heads behind SB3's `Distribution` interface: an action is one
    flat float vector per sample (each head's entries in turn, as `FlatActionSpace` lays them out, or the single
    head's action flattened), so SB3's buffers keep it as they keep a Box's. `heads` is the distribution of the last
    `proba_distribution` call, as SB3's `distribution` is.

    Examples:
        >>> import gymnasium as gym, torch
        >>> from perceptspec.integrations.sb3 import SpecDistribution
        >>> dist = SpecDistribution(gym.spaces.Discrete(3)).proba_distribution({"action": torch.zeros(4, 3)})
        >>> dist.get_actions().shape
        torch.Size([4, 1])
    """

    heads: DictDistribution

    def __init__(self, action_space: gym.Space[Any], overrides: spaces.Override = ()) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # SB3's is untyped
        self.action_space = action_space
        self.overrides = overrides
        leaves = spaces.action_spaces(action_space)
        self.entries = {name: _entry_shape(leaf) for name, leaf in leaves.items()}
        self.integer = {name: isinstance(leaf, _INDEX_SPACES) for name, leaf in leaves.items()}

    def proba_distribution_net(self, *args: Any, **kwargs: Any) -> torch.nn.Module:
        raise NotImplementedError("the spec's heads give the logits: SpecDistribution builds no network")

    def proba_distribution(self: _Self, logits: Mapping[str, torch.Tensor]) -> _Self:
        self.heads = action_distribution(logits, self.action_space, self.overrides)
        return self

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Flat actions (batch, entries) -> one action per head, (batch, *its shape); integers as int64."""
        flat = flat.reshape(flat.shape[0], -1)
        parts = torch.split(flat, [math.prod(s) for s in self.entries.values()], dim=-1)
        return {name: (part.round().long() if self.integer[name] else part).reshape(flat.shape[0], *shape)
                for (name, shape), part in zip(self.entries.items(), parts)}

    def join(self, actions: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """One action per head -> flat float actions (batch, entries)."""
        return torch.cat([actions[name].reshape(actions[name].shape[0], -1).float() for name in self.entries], -1)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.heads.log_prob(self.split(actions))

    def entropy(self) -> torch.Tensor:
        return self.heads.entropy()

    def sample(self) -> torch.Tensor:
        return self.join(self.heads.sample())

    def mode(self) -> torch.Tensor:
        return self.join(self.heads.mode())

    def actions_from_params(self, logits: Mapping[str, torch.Tensor],
                            deterministic: bool = False) -> torch.Tensor:
        return self.proba_distribution(logits).get_actions(deterministic=deterministic)

    def log_prob_from_params(self, logits: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        actions = self.actions_from_params(logits)
        return actions, self.log_prob(actions)
