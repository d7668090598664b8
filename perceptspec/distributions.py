"""Action distributions over a dict of heads: a policy's logits become actions (`sample`, `log_prob`, `entropy`).

One torch distribution per action, chosen as in `perceptspec.spaces` (defaults per space kind, overrides by action
name or space type): Categorical for Discrete, independent Bernoullis for MultiBinary, a diagonal Gaussian
(means and log stds) for Box, one Categorical per entry for MultiDiscrete. Samples are env-ready: Discrete and
MultiDiscrete `start` offsets are added.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import torch
from torch.distributions import Bernoulli, Categorical, Distribution, Independent, Normal
from torch.types import _size

from perceptspec._errors import SignatureError
from perceptspec.spaces import Override, _named, action_logits_shapes, distribution_names

__all__ = ["Deterministic", "DictDistribution", "MultiCategorical", "action_distribution"]


class MultiCategorical(Distribution):
    """Independent categoricals over the entries of a MultiDiscrete space; logits concatenated on the last dim.

    Examples:
        >>> import gymnasium as gym, torch
        >>> dist = ps.distributions.action_distribution({"action": torch.zeros(1, 5)}, gym.spaces.MultiDiscrete([2, 3]))
        >>> dist.sample()["action"].shape
        torch.Size([1, 2])
    """

    arg_constraints: dict[str, Any] = {}

    def __init__(self, logits: torch.Tensor, nvec: tuple[int, ...], shape: tuple[int, ...]) -> None:
        self.parts: list[Distribution] = [Categorical(logits=part) for part in torch.split(logits, list(nvec), -1)]
        self.entry_shape = shape
        super().__init__(batch_shape=logits.shape[:-1], event_shape=torch.Size(shape), validate_args=False)

    def sample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        flat = torch.stack([p.sample(sample_shape) for p in self.parts], dim=-1)
        return flat.reshape(*flat.shape[:-1], *self.entry_shape)

    def _flat(self, value: torch.Tensor) -> list[torch.Tensor]:
        return list(value.reshape(*value.shape[:value.dim() - len(self.entry_shape)], -1).unbind(-1))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return torch.stack([p.log_prob(v) for p, v in zip(self.parts, self._flat(value))], -1).sum(-1)

    def entropy(self) -> torch.Tensor:
        return torch.stack([p.entropy() for p in self.parts], -1).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        flat = torch.stack([p.mode for p in self.parts], dim=-1)
        return flat.reshape(*flat.shape[:-1], *self.entry_shape)


def _categorical(logits: torch.Tensor, space: Any) -> Distribution:
    return Categorical(logits=logits)


def _bernoulli(logits: torch.Tensor, space: Any) -> Distribution:
    return Independent(Bernoulli(logits=logits), len(space.shape))


def _gaussian(logits: torch.Tensor, space: Any) -> Distribution:
    mean, log_std = logits.chunk(2, dim=-1)
    if not space.shape:  # a scalar Box: one mean, one log std
        return Normal(mean.squeeze(-1), log_std.squeeze(-1).exp())
    return Independent(Normal(mean, log_std.exp()), len(space.shape))


def _multi_categorical(logits: torch.Tensor, space: Any) -> Distribution:
    return MultiCategorical(logits, tuple(int(n) for n in space.nvec.flatten()), tuple(space.nvec.shape))


class Deterministic(Distribution):
    """The 'deterministic' head of a Box action (TD3's and DDPG's actors): the logits are the action itself. Sampling
    and the mode give it; its log-prob is 0 where an action equals it and -inf elsewhere; its entropy 0.

    Examples:
        >>> import gymnasium as gym, torch
        >>> space = gym.spaces.Box(-1, 1, (2,))
        >>> dist = ps.distributions.action_distribution({"action": torch.tensor([[0.5, -0.5]])}, space, {"Box": "deterministic"})
        >>> dist.sample()["action"]
        tensor([[ 0.5000, -0.5000]])
    """

    arg_constraints: dict[str, Any] = {}

    def __init__(self, action: torch.Tensor, event_dims: int) -> None:
        self.action = action
        batch = action.shape[:action.dim() - event_dims]
        super().__init__(batch, action.shape[action.dim() - event_dims:], validate_args=False)

    def sample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        return self.action.expand(*sample_shape, *self.action.shape)

    @property
    def mode(self) -> torch.Tensor:
        return self.action

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(-len(self.event_shape), 0))
        equal = (value == self.action).all(dim=dims) if dims else value == self.action
        return torch.where(equal, 0.0, -torch.inf).to(self.action.dtype)

    def entropy(self) -> torch.Tensor:
        return torch.zeros(self.batch_shape, dtype=self.action.dtype, device=self.action.device)


def _deterministic(logits: torch.Tensor, space: Any) -> Distribution:
    if not space.shape:  # a scalar Box: one output
        return Deterministic(logits.squeeze(-1), 0)
    return Deterministic(logits, len(space.shape))


DISTRIBUTION_BUILDERS: dict[str, Callable[[torch.Tensor, Any], Distribution]] = {
    "categorical": _categorical, "bernoulli": _bernoulli, "gaussian": _gaussian,
    "multi_categorical": _multi_categorical, "deterministic": _deterministic,
}


class DictDistribution:
    """Independent distributions, one per action head; joint log-prob and entropy are sums over heads.

    Examples:
        >>> import gymnasium as gym, torch
        >>> space = gym.spaces.Dict({"move": gym.spaces.Discrete(4), "fire": gym.spaces.MultiBinary(2)})
        >>> dist = ps.distributions.action_distribution({"move": torch.zeros(1, 4), "fire": torch.zeros(1, 2)}, space)
        >>> dist.log_prob(dist.sample()).shape, dist.entropy().shape
        (torch.Size([1]), torch.Size([1]))
    """

    def __init__(self, heads: Mapping[str, Distribution], offsets: Mapping[str, torch.Tensor]) -> None:
        self.heads = dict(heads)
        self.offsets = dict(offsets)

    def sample(self) -> dict[str, torch.Tensor]:
        return {a: d.sample() + self.offsets[a] for a, d in self.heads.items()}

    def mode(self) -> dict[str, torch.Tensor]:
        """The most likely action of each head (a deterministic policy)."""
        return {a: d.mode + self.offsets[a] for a, d in self.heads.items()}

    def log_probs(self, actions: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {a: d.log_prob(actions[a] - self.offsets[a]) for a, d in self.heads.items()}

    def log_prob(self, actions: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(self.log_probs(actions).values())).sum(0)

    def entropies(self) -> dict[str, torch.Tensor]:
        return {a: d.entropy() for a, d in self.heads.items()}

    def entropy(self) -> torch.Tensor:
        return torch.stack(list(self.entropies().values())).sum(0)


def action_distribution(logits: Mapping[str, torch.Tensor], action_space: gym.Space[Any],
                        overrides: Override = ()) -> DictDistribution:
    """The distribution over actions that a policy's `logits` (one tensor per action head) describe.

    Examples:
        >>> import gymnasium as gym, torch
        >>> dist = ps.distributions.action_distribution({"action": torch.tensor([[0.0, 10.0]])}, gym.spaces.Discrete(2))
        >>> dist.mode()["action"]
        tensor([1])
    """
    names = distribution_names(action_space, overrides)
    shapes = action_logits_shapes(action_space, overrides)
    spaces = _named(action_space, "action")
    heads, offsets = {}, {}
    for action, name in names.items():
        if action not in logits:
            raise SignatureError(action, f"logits for every action {list(names)}", f"keys {list(logits)}")
        value = logits[action]
        if tuple(value.shape[value.dim() - len(shapes[action]):]) != shapes[action]:
            raise SignatureError(action, f"logits of shape (*batch, {', '.join(map(str, shapes[action]))})",
                                 f"shape {tuple(value.shape)}")
        heads[action] = DISTRIBUTION_BUILDERS[name](value, spaces[action])
        start = getattr(spaces[action], "start", 0)
        offsets[action] = torch.as_tensor(start, device=value.device)
    return DictDistribution(heads, offsets)
