"""Shapes from gymnasium spaces: what a policy reads (`obs_shapes`) and what its heads must emit
(`action_logits_shapes`). Pure: no torch. Imported on first use of `perceptspec.spaces` (it imports gymnasium).

A plain (non-Dict) space is named 'observation' / 'action', as Maze's gym wrapper names it. Each action space
kind has a default distribution, which fixes its logits shape; `overrides` choose another distribution per
action name or per space type.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import gymnasium as gym

from perceptspec._errors import SpecError, did_you_mean

__all__ = ["DistributionKind", "action_logits_shapes", "action_names", "action_shapes", "distribution_names",
           "obs_shapes"]

Shape = tuple[int, ...]
#: distribution name per action name, per space type, or per space type name ('Box'); a mapping or pairs
Override = Mapping[str, str] | Mapping[type, str] | Mapping[str | type, str] | Iterable[tuple[str | type, str]]


@dataclasses.dataclass(frozen=True)
class DistributionKind:
    """A distribution family: which action spaces it serves and the logits shape it needs for a space.

    Examples:
        >>> from perceptspec.spaces import DISTRIBUTIONS
        >>> import gymnasium as gym
        >>> DISTRIBUTIONS["gaussian"].logits_shape(gym.spaces.Box(-1, 1, (3,)))
        (6,)
    """

    name: str
    spaces: tuple[type[gym.Space[Any]], ...]
    logits_shape: Callable[[Any], Shape]


def _gaussian_logits(space: gym.spaces.Box) -> Shape:
    shape = tuple(space.shape) or (1,)
    return (*shape[:-1], 2 * shape[-1])  # means, then log standard deviations


DISTRIBUTIONS: dict[str, DistributionKind] = {d.name: d for d in (
    DistributionKind("categorical", (gym.spaces.Discrete,), lambda s: (int(s.n),)),
    DistributionKind("bernoulli", (gym.spaces.MultiBinary,), lambda s: tuple(s.shape)),
    DistributionKind("gaussian", (gym.spaces.Box,), _gaussian_logits),  # means, then log standard deviations
    DistributionKind("multi_categorical", (gym.spaces.MultiDiscrete,), lambda s: (int(s.nvec.sum()),)),
)}

def _box_shape(space: gym.spaces.Box) -> Shape:
    return tuple(space.shape) or (1,)


DISTRIBUTIONS["deterministic"] = DistributionKind("deterministic", (gym.spaces.Box,), _box_shape)

DEFAULT_DISTRIBUTION: dict[type[gym.Space[Any]], str] = {
    gym.spaces.Discrete: "categorical", gym.spaces.MultiBinary: "bernoulli", gym.spaces.Box: "gaussian",
    gym.spaces.MultiDiscrete: "multi_categorical",
}


def obs_shapes(space: gym.Space[Any]) -> dict[str, Shape]:
    """Observation key -> shape for a Box (key 'observation') or a Dict of Boxes / MultiBinaries.

    Examples:
        >>> import gymnasium as gym
        >>> space = gym.spaces.Dict({"screen": gym.spaces.Box(0, 1, (3, 64, 64)),
        ...                         "inventory": gym.spaces.Box(0, 1, (16,))})
        >>> ps.spaces.obs_shapes(space)
        {'inventory': (16,), 'screen': (3, 64, 64)}
    """
    return {key: _obs_shape(key, sub) for key, sub in _named(space, "observation").items()}


def _obs_shape(key: str, space: gym.Space[Any]) -> Shape:
    if isinstance(space, (gym.spaces.Box, gym.spaces.MultiBinary)) and space.shape:
        return tuple(int(d) for d in space.shape)
    raise SpecError(f"observation '{key}'", [
        f"expected a Box or MultiBinary space with a non-empty shape, got {space!r} (one-hot encode Discrete "
        f"observations, e.g. with gymnasium.wrappers, or flatten nested spaces)"])


def distribution_names(space: gym.Space[Any], overrides: Override = ()) -> dict[str, str]:
    """Action name -> distribution name: an override by action name wins over one by space type (the class, or its
    name such as 'Box' as YAML writes it), which wins over the default of the space's kind.

    Examples:
        >>> import gymnasium as gym
        >>> ps.spaces.distribution_names(gym.spaces.Box(-1, 1, (2,)), {"Box": "deterministic"})
        {'action': 'deterministic'}
    """
    chosen: dict[str | type, str] = dict(overrides.items() if isinstance(overrides, Mapping) else overrides)
    actions = _named(space, "action")
    space_types = {t.__name__: t for t in vars(gym.spaces).values() if isinstance(t, type) and issubclass(t, gym.Space)}
    for key in chosen:
        if not (key in actions or key in space_types or isinstance(key, type) and issubclass(key, gym.Space)):
            raise SpecError("distribution_overrides", [
                f"{key!r} is neither an action ({list(actions)}) nor a space type such as 'Box'"
                f"{did_you_mean(key, [*actions, *space_types])}"])
    names = {}
    for action, sub in actions.items():
        by_type = (chosen.get(t, chosen.get(t.__name__)) for t in type(sub).__mro__)
        name = chosen.get(action) or next((n for n in by_type if n is not None), None) \
            or DEFAULT_DISTRIBUTION.get(type(sub))
        if name is None:
            raise SpecError(f"action '{action}'", [f"no distribution for {sub!r}; supported spaces: "
                                                   f"{', '.join(t.__name__ for t in DEFAULT_DISTRIBUTION)}"])
        kind = DISTRIBUTIONS.get(name)
        if kind is None:
            raise SpecError(f"action '{action}'", [f"unknown distribution {name!r}; known: {sorted(DISTRIBUTIONS)}"])
        if not isinstance(sub, kind.spaces):
            raise SpecError(f"action '{action}'", [f"distribution {name!r} cannot serve {sub!r}"])
        names[action] = name
    return names


def action_logits_shapes(space: gym.Space[Any], overrides: Override = ()) -> dict[str, Shape]:
    """Action name -> the logits shape its head must output: Discrete(n) -> (n,), MultiBinary(n) -> (n,),
    Box(shape) -> shape with the last dim doubled (means and log stds), MultiDiscrete(nvec) -> (sum(nvec),).

    Examples:
        >>> import gymnasium as gym
        >>> space = gym.spaces.Dict({"move": gym.spaces.Discrete(4), "aim": gym.spaces.Box(-1, 1, (2,))})
        >>> ps.spaces.action_logits_shapes(space)
        {'aim': (4,), 'move': (4,)}
    """
    actions = _named(space, "action")
    return {a: DISTRIBUTIONS[d].logits_shape(actions[a]) for a, d in distribution_names(space, overrides).items()}


def action_shapes(space: gym.Space[Any]) -> dict[str, Shape]:
    """Action name -> the shape of the action as a network reads it (a state-action critic's action inputs): a Box
    or MultiBinary its own shape ((1,) for a scalar Box), Discrete(n) one-hot (n,), MultiDiscrete the concatenated
    one-hots (sum(nvec),).

    Examples:
        >>> import gymnasium as gym
        >>> ps.spaces.action_shapes(gym.spaces.Discrete(3))
        {'action': (3,)}
    """
    shapes = {}
    for action, sub in _named(space, "action").items():
        if isinstance(sub, gym.spaces.Box):
            shapes[action] = _box_shape(sub)
        elif isinstance(sub, gym.spaces.MultiBinary):
            shapes[action] = tuple(int(d) for d in sub.shape)
        elif isinstance(sub, gym.spaces.Discrete):
            shapes[action] = (int(sub.n),)
        elif isinstance(sub, gym.spaces.MultiDiscrete):
            shapes[action] = (int(sub.nvec.sum()),)
        else:
            raise SpecError(f"action '{action}'", [f"no action shape for {sub!r}; supported spaces: "
                                                   f"{', '.join(t.__name__ for t in DEFAULT_DISTRIBUTION)}"])
    return shapes


def action_spaces(space: gym.Space[Any]) -> dict[str, gym.Space[Any]]:
    """Action name -> the space of that action."""
    return _named(space, "action")


def action_names(space: gym.Space[Any]) -> list[str]:
    """The names of the actions of an action space: a Dict's keys, else 'action'.

    Examples:
        >>> import gymnasium as gym
        >>> ps.spaces.action_names(gym.spaces.Discrete(3))
        ['action']
    """
    return list(_named(space, "action"))


def _named(space: gym.Space[Any], default: str) -> dict[str, gym.Space[Any]]:
    if isinstance(space, gym.spaces.Dict):
        return dict(space.spaces.items())
    return {default: space}
