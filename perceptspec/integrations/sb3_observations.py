"""Observations Stable-Baselines3 cannot hold, behind one flat Dict: Tuple and nested Dict observation spaces.

SB3's rollout and replay buffers take a Box, Discrete, MultiDiscrete, MultiBinary or a Dict of those, and refuse a
Tuple or a Dict inside a Dict (`NotImplementedError` from its buffers). `FlatObservationWrapper` gives SB3 one flat
Dict whose keys are perceptspec's flattened names ('agent/cell', 'observation/0', docs/spaces.md) and whose entries are
the leaf spaces; the space (`FlatObservationSpace`) keeps the original structure, so the policies compose for it and
build the same networks, with the same names and the same conversion blocks, as `ps.compose` and the command line do
for the unwrapped env.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from perceptspec._observations import OBSERVATION, SEPARATOR, flat_spaces, flat_values

__all__ = ["FlatObservationSpace", "FlatObservationWrapper", "observation_structure"]


class FlatObservationSpace(gym.spaces.Dict):
    """A (nested) Dict or Tuple observation space as one flat Dict of its leaves, keyed by perceptspec's flattened
    names; `structure` is the original space, which the policies compose for.

    Examples:
        >>> import gymnasium as gym
        >>> from perceptspec.integrations.sb3 import FlatObservationSpace
        >>> nested = gym.spaces.Dict({"agent": gym.spaces.Dict({"cell": gym.spaces.Discrete(5)})})
        >>> list(FlatObservationSpace(nested).spaces)
        ['agent/cell']
        >>> list(FlatObservationSpace(gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3)))).spaces)
        ['observation/0', 'observation/1']
    """

    def __init__(self, structure: gym.Space[Any]) -> None:
        self.structure = structure
        super().__init__(flat_spaces(structure))

    def flatten(self, observation: Any) -> dict[str, Any]:
        """An observation of `structure` as one of this space: its leaves under their flattened names."""
        return flat_values(self.structure, observation)

    def __repr__(self) -> str:
        return f"FlatObservationSpace({self.structure!r})"


class FlatObservationWrapper(gym.ObservationWrapper[dict[str, Any], Any, Any]):
    """An env whose observations SB3 cannot hold (a Tuple, a Dict inside a Dict) behind one flat Dict
    (`FlatObservationSpace`): SB3 stores the leaves, the policies read them as the composed modules read the
    original env's.

    Examples:
        >>> import gymnasium as gym
        >>> from perceptspec.integrations.sb3 import FlatObservationWrapper
        >>> env = FlatObservationWrapper(gym.make("Blackjack-v1"))
        >>> sorted(env.reset(seed=0)[0])
        ['observation/0', 'observation/1', 'observation/2']
    """

    def __init__(self, env: gym.Env[Any, Any]) -> None:
        super().__init__(env)
        self.observation_space = FlatObservationSpace(env.observation_space)

    def observation(self, observation: Any) -> dict[str, Any]:
        assert isinstance(self.observation_space, FlatObservationSpace)
        return self.observation_space.flatten(observation)


def observation_structure(space: gym.Space[Any]) -> gym.Space[Any]:
    """The space the networks are composed for: a `FlatObservationSpace`'s original structure with its current entries
    (see `_with_leaves`), any other as it is.

    Examples:
        >>> import gymnasium as gym
        >>> from perceptspec.integrations.sb3 import FlatObservationSpace, observation_structure
        >>> tuple_space = gym.spaces.Tuple((gym.spaces.Discrete(2),))
        >>> observation_structure(FlatObservationSpace(tuple_space)) == tuple_space
        True
    """
    if not isinstance(space, FlatObservationSpace):
        return space
    return _with_leaves(space.structure, None, space.spaces)


def _with_leaves(node: gym.Space[Any], key: str | None, leaves: Mapping[str, gym.Space[Any]]) -> gym.Space[Any]:
    """`node` (at flattened name `key`; None: the top) with each leaf replaced by the flat space's entry of that name:
    a wrapper SB3 adds (VecTransposeImage makes a channel-last image channel-first) changes the entries, and the
    networks must be composed for what they are given."""
    if isinstance(node, gym.spaces.Dict):
        return gym.spaces.Dict({k: _with_leaves(sub, k if key is None else f"{key}{SEPARATOR}{k}", leaves)
                                for k, sub in node.spaces.items()})
    if isinstance(node, gym.spaces.Tuple):
        return gym.spaces.Tuple([_with_leaves(sub, f"{OBSERVATION if key is None else key}{SEPARATOR}{i}", leaves)
                                 for i, sub in enumerate(node.spaces)])
    return leaves[OBSERVATION if key is None else key]
