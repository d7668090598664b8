"""Shapes from gymnasium spaces: what a policy reads (`obs_shapes`) and what its heads must emit
(`action_logits_shapes`). Pure: no torch. Imported on first use of `perceptspec.spaces` (it imports gymnasium).

A plain (non-Dict) space is named 'observation' / 'action', as Maze's gym wrapper names it. Nested Dict and Tuple
spaces are flattened into one key per leaf space (`flatten_space`): the levels joined by '/', a Tuple's entries named
by their index ('arm/joint', 'tools/0'; a top-level Tuple action gives 'action/0', 'action/1'). '.' cannot join
them: it separates the levels of nested graphs in spec keys.

Each action space kind has a default distribution, which fixes its logits shape; `overrides` choose another
distribution (a name, Maze's class path, an allowed class of yours, or a mapping with options) per action name or
per space type. Every head outputs a flat vector: the distribution reshapes it to the action's shape, so a Box or
MultiBinary of any rank needs no reshaping block.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from perceptspec._errors import NotAllowedError, SpecError, did_you_mean

__all__ = ["DistributionChoice", "DistributionKind", "action_logits_shapes", "action_names", "action_shapes",
           "action_spaces", "distribution_choices", "distribution_names", "obs_shapes"]

Shape = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class DistributionChoice:
    """The distribution of one action: a kind's name (or an allowed class's import path) and its options.

    Examples:
        >>> import gymnasium as gym
        >>> ps.spaces.distribution_choices(gym.spaces.Box(-1, 1, (2,)), {"Box": "deterministic"})["action"].name
        'deterministic'
    """

    name: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


#: what an override names: a distribution name ('squashed_gaussian'), Maze's class path, the import path of an allowed
#: class of yours, or a mapping {distribution: <one of those>, <option>: <value>, ...}
Choice = str | Mapping[str, Any] | DistributionChoice
#: distribution per action name, per space type, or per space type name ('Box'); a mapping or pairs
Override = Mapping[str, Choice] | Mapping[type, Choice] | Mapping[str | type, Choice] | Iterable[tuple[str | type, Choice]]


@dataclasses.dataclass(frozen=True)
class DistributionKind:
    """A distribution family: which action spaces it serves, the logits shape it needs for a space, its options
    (name -> default) and whether it needs a Box with finite bounds (it maps its support onto them).

    Examples:
        >>> from perceptspec.spaces import DISTRIBUTIONS
        >>> import gymnasium as gym
        >>> DISTRIBUTIONS["gaussian"].logits_shape(gym.spaces.Box(-1, 1, (3,)))
        (6,)
    """

    name: str
    spaces: tuple[type[gym.Space[Any]], ...]
    logits_shape: Callable[[Any], Shape]
    options: Mapping[str, float | None] = dataclasses.field(default_factory=dict)
    bounded: bool = False


def _size(space: gym.Space[Any]) -> int:
    return math.prod(int(d) for d in space.shape or ())


def _two_halves(space: gym.Space[Any]) -> Shape:
    return (2 * _size(space),)  # e.g. means then log standard deviations of the flattened action


#: a Gaussian's log standard deviations clamped to [log_std_min, log_std_max] (None: no bound)
_LOG_STD_BOUNDS: dict[str, float | None] = {"log_std_min": None, "log_std_max": None}
#: SB3's and Maze's bounds for the squashed Gaussian (LOG_STD_MIN, LOG_STD_MAX; MIN/MAX_LOG_NN_OUTPUT)
_SQUASHED_LOG_STD_BOUNDS: dict[str, float | None] = {"log_std_min": -20.0, "log_std_max": 2.0}

DISTRIBUTIONS: dict[str, DistributionKind] = {d.name: d for d in (
    DistributionKind("categorical", (gym.spaces.Discrete,), lambda s: (int(s.n),)),
    DistributionKind("bernoulli", (gym.spaces.MultiBinary,), lambda s: (_size(s),)),
    DistributionKind("gaussian", (gym.spaces.Box,), _two_halves, _LOG_STD_BOUNDS),  # means, then log stds
    DistributionKind("squashed_gaussian", (gym.spaces.Box,), _two_halves, _SQUASHED_LOG_STD_BOUNDS, bounded=True),
    DistributionKind("beta", (gym.spaces.Box,), _two_halves, bounded=True),  # alphas, then betas (before softplus)
    DistributionKind("multi_categorical", (gym.spaces.MultiDiscrete,), lambda s: (int(s.nvec.sum()),)),
    DistributionKind("deterministic", (gym.spaces.Box,), lambda s: (_size(s),)),  # the action itself
)}

#: gymnasium's space classes by name ('Box'), as overrides and Maze's configs name them
_SPACE_TYPES = {t.__name__: t for t in vars(gym.spaces).values() if isinstance(t, type) and issubclass(t, gym.Space)}

DEFAULT_DISTRIBUTION: dict[type[gym.Space[Any]], str] = {
    gym.spaces.Discrete: "categorical", gym.spaces.MultiBinary: "bernoulli", gym.spaces.Box: "gaussian",
    gym.spaces.MultiDiscrete: "multi_categorical",
}

#: Maze's distribution classes (its `distribution_mapper_config` names them) -> the perceptspec kind that builds the
#: same distribution from the same logits; recognised by name, never imported
MAZE_DISTRIBUTIONS: dict[str, str] = {
    "maze.distributions.categorical.CategoricalProbabilityDistribution": "categorical",
    "maze.distributions.bernoulli.BernoulliProbabilityDistribution": "bernoulli",
    "maze.distributions.gaussian.DiagonalGaussianProbabilityDistribution": "gaussian",
    "maze.distributions.squashed_gaussian.SquashedGaussianProbabilityDistribution": "squashed_gaussian",
    "maze.distributions.beta.BetaProbabilityDistribution": "beta",
    "maze.distributions.multi_categorical.MultiCategoricalProbabilityDistribution": "multi_categorical",
}


def obs_shapes(space: gym.Space[Any]) -> dict[str, Shape]:
    """Observation key -> the shape a network reads, after the composer's conversions (`perceptspec._observations`):
    a Box as it is (uint8 images channel-first), Discrete(n) one-hot (n,), MultiDiscrete(nvec) (sum(nvec),),
    MultiBinary as it is; Dict and Tuple entries flattened to keys joined by '/' ('agent/position').

    Examples:
        >>> import gymnasium as gym
        >>> space = gym.spaces.Dict({"screen": gym.spaces.Box(0, 1, (3, 64, 64)),
        ...                         "inventory": gym.spaces.Box(0, 1, (16,)), "room": gym.spaces.Discrete(5)})
        >>> ps.spaces.obs_shapes(space)
        {'inventory': (16,), 'room': (5,), 'screen': (3, 64, 64)}
    """
    from perceptspec._observations import preprocessing

    return preprocessing([space]).shapes_of(space)


def raw_obs_shapes(space: gym.Space[Any]) -> dict[str, Shape]:
    """Observation key -> the shape the env gives, which the composed modules read (Discrete: ())."""
    from perceptspec._observations import preprocessing

    return preprocessing([space]).raw_shapes_of(space)


def distribution_choices(space: gym.Space[Any], overrides: Override = ()) -> dict[str, DistributionChoice]:
    """Action name -> its distribution and options: an override by action name wins over one by space type (the
    class, or its name such as 'Box' as YAML writes it), which wins over the default of the space's kind.

    Examples:
        >>> import gymnasium as gym
        >>> choice = ps.spaces.distribution_choices(gym.spaces.Box(-1, 1, (2,)), {"Box": "squashed_gaussian"})
        >>> choice["action"].name
        'squashed_gaussian'
    """
    chosen: dict[str | type, Choice] = dict(overrides.items() if isinstance(overrides, Mapping) else overrides)
    actions = action_spaces(space)
    for key in chosen:
        if not (key in actions or key in _SPACE_TYPES or isinstance(key, type) and issubclass(key, gym.Space)):
            raise SpecError("distribution_overrides", [
                f"{key!r} is neither an action ({list(actions)}) nor a space type such as 'Box'"
                f"{did_you_mean(key, [*actions, *_SPACE_TYPES])}"])
    choices = {}
    for action, sub in actions.items():
        by_type = (chosen.get(t, chosen.get(t.__name__)) for t in type(sub).__mro__)
        raw = chosen.get(action) or next((n for n in by_type if n is not None), None) \
            or DEFAULT_DISTRIBUTION.get(type(sub))
        where = f"action '{action}'"
        if raw is None:
            raise _no_distribution(action, sub)
        choices[action] = _checked_choice(as_choice(raw, where), sub, where)
    return choices


def _no_distribution(action: str, space: gym.Space[Any]) -> SpecError:
    return SpecError(f"action '{action}'", [f"no distribution for {space!r}; supported spaces: "
                                            f"{', '.join(t.__name__ for t in DEFAULT_DISTRIBUTION)}"])


def distribution_names(space: gym.Space[Any], overrides: Override = ()) -> dict[str, str]:
    """Action name -> distribution name (an allowed class's import path for a class of yours); see
    `distribution_choices`.

    Examples:
        >>> import gymnasium as gym
        >>> ps.spaces.distribution_names(gym.spaces.Box(-1, 1, (2,)), {"Box": "deterministic"})
        {'action': 'deterministic'}
    """
    return {action: choice.name for action, choice in distribution_choices(space, overrides).items()}


def as_choice(value: Choice, where: str) -> DistributionChoice:
    """An override's value as a `DistributionChoice`: a name, a class path, or {distribution: ..., **options}; Maze's
    class paths become the kind that builds the same distribution."""
    if isinstance(value, DistributionChoice):
        return value
    if isinstance(value, str):
        return DistributionChoice(MAZE_DISTRIBUTIONS.get(value, value))
    name = value.get("distribution") if isinstance(value, Mapping) else None
    if isinstance(value, Mapping) and isinstance(name, str):
        options = {k: v for k, v in value.items() if k != "distribution"}
        return DistributionChoice(MAZE_DISTRIBUTIONS.get(name, name), options)
    raise SpecError(where, [f"expected a distribution name or a mapping {{distribution: name, <option>: value}}, "
                            f"got {value!r}"])


def distribution_kind(name: str, where: str) -> DistributionKind:
    """The kind `name` names: one of `DISTRIBUTIONS`, or an allowed class of yours given by its import path."""
    kind = DISTRIBUTIONS.get(name)
    if kind is not None:
        return kind
    if "." not in name:
        raise SpecError(where, [f"unknown distribution {name!r}{did_you_mean(name, DISTRIBUTIONS)}; known: "
                                f"{sorted(DISTRIBUTIONS)}, Maze's distribution classes, or the import path of an "
                                f"allowed class of yours"])
    cls = distribution_class(name, where)
    return DistributionKind(name, (gym.Space,), lambda s: tuple(int(d) for d in cls.required_logits_shape(s)))


def distribution_class(path: str, where: str) -> Any:
    """A distribution class of yours by import path ('mypkg.dists.Spiky'), imported only from allowed modules
    (`ps.allow`): a `torch.distributions.Distribution` subclass with a classmethod `required_logits_shape(space)`
    (Maze's name for it) and a constructor `(logits, action_space, **options)`."""
    from perceptspec._trust import resolve_allowed

    module, _, attr = path.rpartition(".")
    if not module or maze_prefix(path):
        raise SpecError(where, [f"unknown distribution {path!r}: Maze's distributions are "
                                f"{sorted(MAZE_DISTRIBUTIONS)}"])
    try:
        cls = resolve_allowed(module, (attr,), path, where, "distribution")
    except NotAllowedError:
        raise
    except (ImportError, AttributeError) as e:
        raise SpecError(where, [f"distribution {path!r} cannot be imported: {e}"]) from None
    if not isinstance(cls, type) or not callable(getattr(cls, "required_logits_shape", None)):
        raise SpecError(where, [f"distribution {path!r}: expected a class with a classmethod "
                                f"required_logits_shape(action_space), got {cls!r}"])
    return cls


def maze_prefix(path: str) -> bool:
    """Whether `path` is inside Maze's package (its names are recognised, never imported)."""
    return path == "maze" or path.startswith("maze.")


def _checked_choice(choice: DistributionChoice, space: gym.Space[Any], where: str) -> DistributionChoice:
    """`choice` with its options' defaults filled in, checked against the kind and the space."""
    kind = distribution_kind(choice.name, where)
    if not isinstance(space, kind.spaces):
        raise SpecError(where, [f"distribution {choice.name!r} cannot serve {space!r}"])
    low, high = getattr(space, "low", 0.0), getattr(space, "high", 0.0)  # a bounded kind serves Boxes only
    if kind.bounded and not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
        raise SpecError(where, [f"distribution {choice.name!r} maps its support onto the Box's bounds, which must be "
                                f"finite with high > low; got {space!r}"])
    if kind.name not in DISTRIBUTIONS:  # a class of yours takes its own options
        return choice
    problems = [f"unknown option {k!r} of {choice.name!r}{did_you_mean(k, kind.options)}; its options: "
                f"{list(kind.options)}" for k in choice.options if k not in kind.options]
    options = {**kind.options, **choice.options}
    for key in kind.options:
        value = options[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            problems.append(f"option {key!r}: expected a finite number or null, got {value!r}")
    least, most = options.get("log_std_min"), options.get("log_std_max")
    if not problems and least is not None and most is not None and least >= most:
        problems.append(f"options: expected log_std_min < log_std_max, got {least} and {most}")
    if problems:
        raise SpecError(where, problems)
    return DistributionChoice(choice.name, {k: None if v is None else float(v) for k, v in options.items()})


def from_maze_distribution_mapper(entries: Iterable[Mapping[str, Any]], action_space: gym.Space[Any]
                                  ) -> dict[str, DistributionChoice]:
    """Maze's `distribution_mapper_config` (a list of `{action_space: gymnasium.spaces.Box, distribution: ...}` and
    `{action_head: name, distribution: ..., args: {...}}` entries) as perceptspec's overrides for `action_space`,
    one per action, resolved as Maze's DistributionMapper resolves it: every action starts at its space's default,
    then each entry in turn sets the distribution of the action it names, or of every action whose space is an
    instance of its space type; a later entry wins. Maze's class paths are recognised by name (never imported); a
    class of yours is imported from allowed modules only; `args` are the distribution's options."""
    where = "distribution_mapper_config"
    actions = action_spaces(action_space)
    chosen: dict[str, Choice | None] = {a: DEFAULT_DISTRIBUTION.get(type(sub)) for a, sub in actions.items()}
    if not isinstance(entries, Iterable) or isinstance(entries, (str, Mapping)):
        raise SpecError(where, [f"expected a list of entries, got {entries!r}"])
    for i, entry in enumerate(entries):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise SpecError(at, [f"expected a mapping with 'distribution' and 'action_space' or 'action_head', got "
                                 f"{entry!r}"])
        keys = ("distribution", "action_space", "action_head", "args")
        problems = [f"unknown key {k!r}{did_you_mean(k, keys)}; known keys: {list(keys)}" for k in entry
                    if k not in keys]
        if not isinstance(entry.get("distribution"), str):
            problems.append(f"'distribution': expected a class path or a distribution name, got "
                            f"{entry.get('distribution')!r}")
        if ("action_space" in entry) == ("action_head" in entry):
            problems.append("expected exactly one of 'action_space' and 'action_head'")
        args = entry.get("args") or {}
        if not isinstance(args, Mapping):
            problems.append(f"'args': expected a mapping, got {args!r}")
        if problems:
            raise SpecError(at, problems)
        name: str = entry["distribution"]
        choice = DistributionChoice(MAZE_DISTRIBUTIONS.get(name, name), dict(args))
        if "action_head" in entry:
            head = entry["action_head"]
            if head not in actions:
                raise SpecError(at, [f"action_head {head!r} is not an action{did_you_mean(head, actions)}; actions: "
                                     f"{list(actions)}"])
            chosen[head] = choice
        else:
            space_type = _gym_space_type(entry["action_space"], at)
            chosen.update({a: choice for a, sub in actions.items() if isinstance(sub, space_type)})
    choices = {}
    for action, raw in chosen.items():
        if raw is None:
            raise _no_distribution(action, actions[action])
        choices[action] = _checked_choice(as_choice(raw, f"action '{action}'"), actions[action], f"action '{action}'")
    return choices


def _gym_space_type(path: object, where: str) -> type[gym.Space[Any]]:
    """The gymnasium space class a Maze config names: 'gymnasium.spaces.Box', 'gym.spaces.Box' or
    'gymnasium.spaces.box.Box' (recognised, not imported)."""
    if isinstance(path, str):
        module, _, name = path.rpartition(".")
        space_type = _SPACE_TYPES.get(name)
        modules = {"gym.spaces", "gymnasium.spaces"}
        if space_type is not None and module in modules | {m + "." + space_type.__module__.rpartition(".")[2]
                                                           for m in modules}:
            return space_type
    raise SpecError(where, [f"action_space: expected a gymnasium space class such as 'gymnasium.spaces.Box', got "
                            f"{path!r}{did_you_mean(path, [f'gymnasium.spaces.{n}' for n in _SPACE_TYPES])}"])


def action_logits_shapes(space: gym.Space[Any], overrides: Override = ()) -> dict[str, Shape]:
    """Action name -> the logits shape its head must output, always a flat vector (the distribution reshapes it to
    the action's shape): Discrete(n) -> (n,), MultiBinary(shape) -> (prod(shape),), Box(shape) -> (2 * prod(shape),)
    (means then log stds; (2,) for a scalar Box), MultiDiscrete(nvec) -> (sum(nvec),).

    Examples:
        >>> import gymnasium as gym
        >>> space = gym.spaces.Dict({"move": gym.spaces.Discrete(4), "aim": gym.spaces.Box(-1, 1, (2,))})
        >>> ps.spaces.action_logits_shapes(space)
        {'aim': (4,), 'move': (4,)}
    """
    actions = action_spaces(space)
    return {a: distribution_kind(c.name, f"action '{a}'").logits_shape(actions[a])
            for a, c in distribution_choices(space, overrides).items()}


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
    for action, sub in action_spaces(space).items():
        if isinstance(sub, (gym.spaces.Box, gym.spaces.MultiBinary)):
            shapes[action] = tuple(int(d) for d in sub.shape) or (1,)
        elif isinstance(sub, gym.spaces.Discrete):
            shapes[action] = (int(sub.n),)
        elif isinstance(sub, gym.spaces.MultiDiscrete):
            shapes[action] = (int(sub.nvec.sum()),)
        else:
            raise SpecError(f"action '{action}'", [f"no action shape for {sub!r}; supported spaces: "
                                                   f"{', '.join(t.__name__ for t in DEFAULT_DISTRIBUTION)}"])
    return shapes


def action_spaces(space: gym.Space[Any]) -> dict[str, gym.Space[Any]]:
    """Action name -> leaf space: a plain space is 'action', nested Dicts and Tuples are flattened
    (`flatten_space`).

    Examples:
        >>> import gymnasium as gym
        >>> space = gym.spaces.Dict({"move": gym.spaces.Discrete(4)})
        >>> ps.spaces.action_spaces(space)
        {'move': Discrete(4)}
    """
    return flatten_space(space, "action")


def action_names(space: gym.Space[Any]) -> list[str]:
    """The names of the actions of an action space: the flattened keys of a (nested) Dict or Tuple, else
    'action'.

    Examples:
        >>> import gymnasium as gym
        >>> ps.spaces.action_names(gym.spaces.Discrete(3))
        ['action']
    """
    return list(action_spaces(space))


def _named(space: gym.Space[Any], default: str) -> dict[str, gym.Space[Any]]:
    if isinstance(space, gym.spaces.Dict):
        return dict(space.spaces.items())
    return {default: space}


#: joins the levels of a nested Dict / Tuple space into one flat key: 'arm/joint', 'tools/0'
KEY_SEPARATOR = "/"


def flatten_space(space: gym.Space[Any], root: str) -> dict[str, gym.Space[Any]]:
    """Flat key -> leaf space of a (nested) Dict / Tuple space, in the space's order (observations and actions name
    their keys so): a Dict's keys, a Tuple's indices, levels joined by '/'. A top-level Dict gives its keys as they
    are, a top-level Tuple `root/0`, `root/1`, ..., any other space `{root: space}`."""
    if not isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)):
        return {root: space}
    leaves: dict[str, gym.Space[Any]] = {}
    stack: list[tuple[str | None, gym.Space[Any]]] = [(None if isinstance(space, gym.spaces.Dict) else root, space)]
    while stack:
        prefix, node = stack.pop()
        if not isinstance(node, (gym.spaces.Dict, gym.spaces.Tuple)):
            assert prefix is not None
            leaves[prefix] = node
            continue
        children = _children(node, root, prefix)
        if not children:
            raise SpecError(f"{root} space", [f"{prefix or root!r} is an empty {type(node).__name__}: it has no "
                                              f"entries to name"])
        stack.extend((key if prefix is None else f"{prefix}{KEY_SEPARATOR}{key}", child)
                     for key, child in reversed(children))
    return leaves


def _children(node: gym.spaces.Dict | gym.spaces.Tuple[Any], root: str,
              prefix: str | None) -> list[tuple[str, gym.Space[Any]]]:
    if isinstance(node, gym.spaces.Tuple):
        return [(str(i), child) for i, child in enumerate(node.spaces)]
    for key in node.spaces:
        if not isinstance(key, str) or not key or KEY_SEPARATOR in key or "." in key:
            raise SpecError(f"{root} space", [
                f"Dict key {key!r}{'' if prefix is None else f' in {prefix!r}'}: a key must be a non-empty string without '{KEY_SEPARATOR}' (which joins the "
                f"levels of nested spaces) or '.' (which separates the levels of nested graphs)"])
    return list(node.spaces.items())


def nest(space: gym.Space[Any], flat: Mapping[str, Any], root: str) -> Any:
    """The inverse of `flatten_space` on values: per-key values (actions a distribution sampled, as tensors or
    arrays) arranged as the (nested) Dict / Tuple space holds them, for `env.step`."""
    if isinstance(space, gym.spaces.Dict):
        return {key: _nest(child, flat, key) for key, child in space.spaces.items()}
    return _nest(space, flat, root)


def _nest(space: gym.Space[Any], flat: Mapping[str, Any], prefix: str) -> Any:
    if isinstance(space, gym.spaces.Dict):
        return {key: _nest(child, flat, f"{prefix}{KEY_SEPARATOR}{key}") for key, child in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(_nest(child, flat, f"{prefix}{KEY_SEPARATOR}{i}") for i, child in enumerate(space.spaces))
    return flat[prefix]
