"""Action distributions over a dict of heads: a policy's logits become actions (`sample`, `log_prob`, `entropy`).

One torch distribution per action, chosen as in `perceptspec.spaces` (defaults per space kind, overrides by action
name or space type, options such as a log-std clamp): Categorical for Discrete, independent Bernoullis for
MultiBinary, a diagonal Gaussian (means and log stds) for Box, one Categorical per entry for MultiDiscrete; on request
a tanh-squashed Gaussian or a Beta mapped onto the Box's bounds, the 'deterministic' head of TD3 and DDPG, or a class
of yours. Every head's logits are a flat vector; the distribution reshapes them to the action's shape. Samples are
env-ready: Discrete and MultiDiscrete `start` offsets are added, and `ps.spaces.nest` arranges the per-action
samples of a nested Dict / Tuple space as `env.step` takes them.

Log-probs and entropies are those of the joint distribution of an action (summed over its dims, as SB3 and TorchRL
compute them; Maze averages over the dims instead).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Beta, Categorical, Distribution, Independent, Normal
from torch.types import _size

from perceptspec._errors import SignatureError, SpecError
from perceptspec.spaces import DISTRIBUTIONS, Override, action_logits_shapes, action_spaces, distribution_choices, \
    distribution_class, nest

__all__ = ["BoundedBeta", "Deterministic", "DictDistribution", "MultiCategorical", "SquashedGaussian",
           "action_distribution", "env_action"]


def _event_shape(space: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in space.shape or ())


def _as_event(flat: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """(*batch, prod(shape)) -> (*batch, *shape)."""
    return flat.reshape(flat.shape[:-1] + shape)


def _independent(base: Distribution, event_dims: int) -> Distribution:
    return Independent(base, event_dims) if event_dims else base


def _bounds(space: gym.spaces.Box, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    low = torch.as_tensor(space.low, dtype=like.dtype, device=like.device).reshape(_event_shape(space))
    high = torch.as_tensor(space.high, dtype=like.dtype, device=like.device).reshape(_event_shape(space))
    return low, high


class _OwnDistribution(Distribution):
    """What perceptspec's own distributions share: no argument validation, and TorchRL's `deterministic_sample`."""

    arg_constraints: dict[str, Any] = {}

    @property
    def deterministic_sample(self) -> torch.Tensor:
        """The mode, under TorchRL's name for the action of a deterministic interaction."""
        return self.mode


class MultiCategorical(_OwnDistribution):
    """Independent categoricals over the entries of a MultiDiscrete space; logits concatenated on the last dim.

    Examples:
        >>> import gymnasium as gym, torch
        >>> dist = ps.distributions.action_distribution({"action": torch.zeros(1, 5)}, gym.spaces.MultiDiscrete([2, 3]))
        >>> dist.sample()["action"].shape
        torch.Size([1, 2])
    """

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


class SquashedGaussian(_OwnDistribution):
    """A diagonal Gaussian squashed by tanh onto a Box's bounds: `low + (tanh(u) + 1) / 2 * (high - low)`, u ~
    N(loc, scale) (SB3's SquashedDiagGaussianDistribution on [-1, 1], TorchRL's TanhNormal with low/high, Maze's
    SquashedGaussianProbabilityDistribution).

    The log-prob is the Gaussian's minus the log-Jacobian of the squashing, `log(1 - tanh(u)^2)` computed stably as
    `2 * (log 2 - u - softplus(-2u))`, and of the affine map, `log((high - low) / 2)`, summed over the action's
    dims. A value `rsample` returned is scored with the u it came from (no atanh round trip, as SAC needs); any
    other value is un-squashed with atanh, clamped a float epsilon inside (-1, 1). The entropy has no closed form:
    `entropy()` is the one-sample estimate `-log_prob(rsample())` (what SB3's PPO uses when a distribution has none).

    Examples:
        >>> import gymnasium as gym, torch
        >>> space = gym.spaces.Box(-2, 2, (3,))
        >>> logits = {"action": torch.zeros(1, 6)}
        >>> dist = ps.distributions.action_distribution(logits, space, {"Box": "squashed_gaussian"})
        >>> bool(dist.sample()["action"].abs().max() <= 2)
        True
    """
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> None:
        self.base: Distribution = Normal(loc, scale, validate_args=False)
        self.low, self.high = low, high
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None  # (sample, the u it came from)
        dims = low.dim()
        super().__init__(loc.shape[:loc.dim() - dims], loc.shape[loc.dim() - dims:], validate_args=False)

    def _squash(self, u: torch.Tensor) -> torch.Tensor:
        return self.low + (torch.tanh(u) + 1.0) * 0.5 * (self.high - self.low)

    def rsample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        u = self.base.rsample(sample_shape)
        value = self._squash(u)
        self._last = (value, u)
        return value

    def sample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    @property
    def mode(self) -> torch.Tensor:
        return self._squash(self.base.mean)

    def unsquash(self, value: torch.Tensor) -> torch.Tensor:
        """The Gaussian value u behind `value`: the one it was sampled from, else atanh of it (clamped inside)."""
        if self._last is not None and value is self._last[0]:
            return self._last[1]
        eps = torch.finfo(value.dtype).eps
        y = (value - self.low) / (self.high - self.low) * 2.0 - 1.0
        return torch.atanh(y.clamp(-1.0 + eps, 1.0 - eps))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        u = self.unsquash(value)
        log_jacobian = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u)) + torch.log((self.high - self.low) / 2.0)
        per_dim = self.base.log_prob(u) - log_jacobian
        return per_dim.sum(tuple(range(-len(self.event_shape), 0))) if self.event_shape else per_dim

    def entropy(self) -> torch.Tensor:
        return -self.log_prob(self.rsample())


class BoundedBeta(_OwnDistribution):
    """Independent Betas mapped onto a Box's bounds, `low + x * (high - low)`, as Maze's BetaProbabilityDistribution
    reads its logits: the first half gives the alphas, the second the betas, each clamped to [log 1e-6, -log 1e-6]
    then `softplus(.) + 1` (so both exceed 1 and the density is unimodal). The mode is Maze's deterministic action,
    the mean; log-prob and entropy include the affine map's `log(high - low)`.

    Examples:
        >>> import gymnasium as gym, torch
        >>> space = gym.spaces.Box(0, 5, (2,))
        >>> dist = ps.distributions.action_distribution({"action": torch.zeros(1, 4)}, space, {"Box": "beta"})
        >>> dist.mode()["action"]
        tensor([[2.5000, 2.5000]])
    """
    has_rsample = True
    EPSILON = 1e-6  # Maze's

    def __init__(self, logits: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> None:
        bound = -math.log(self.EPSILON)
        concentrations = F.softplus(logits.clamp(-bound, bound)) + 1.0
        alpha, beta = concentrations.chunk(2, dim=-1)
        shape = tuple(low.shape)
        self.base: Distribution = Beta(_as_event(alpha, shape), _as_event(beta, shape), validate_args=False)
        self.low, self.high = low, high
        batch = alpha.shape[:-1]
        super().__init__(batch, torch.Size(shape), validate_args=False)

    def _sum(self, per_dim: torch.Tensor) -> torch.Tensor:
        return per_dim.sum(tuple(range(-len(self.event_shape), 0))) if self.event_shape else per_dim

    def rsample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        return self.low + self.base.rsample(sample_shape) * (self.high - self.low)

    def sample(self, sample_shape: _size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    @property
    def mode(self) -> torch.Tensor:
        return self.low + self.base.mean * (self.high - self.low)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        tiny = torch.finfo(value.dtype).tiny
        x = ((value - self.low) / (self.high - self.low)).clamp(tiny, 1.0 - torch.finfo(value.dtype).eps)
        return self._sum(self.base.log_prob(x) - torch.log(self.high - self.low))

    def entropy(self) -> torch.Tensor:
        return self._sum(self.base.entropy() + torch.log(self.high - self.low))


class Deterministic(_OwnDistribution):
    """The 'deterministic' head of a Box action (TD3's and DDPG's actors): the logits are the action itself. Sampling
    and the mode give it; its log-prob is 0 where an action equals it and -inf elsewhere; its entropy 0.

    Examples:
        >>> import gymnasium as gym, torch
        >>> space = gym.spaces.Box(-1, 1, (2,))
        >>> logits = {"action": torch.tensor([[0.5, -0.5]])}
        >>> dist = ps.distributions.action_distribution(logits, space, {"Box": "deterministic"})
        >>> dist.sample()["action"]
        tensor([[ 0.5000, -0.5000]])
    """

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


def _categorical(logits: torch.Tensor, space: Any) -> Distribution:
    return Categorical(logits=logits)


def _bernoulli(logits: torch.Tensor, space: Any) -> Distribution:
    shape = _event_shape(space)
    return _independent(Bernoulli(logits=_as_event(logits, shape)), len(shape))


def _mean_and_std(logits: torch.Tensor, shape: tuple[int, ...], log_std_min: float | None,
                  log_std_max: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    mean, log_std = logits.chunk(2, dim=-1)
    if log_std_min is not None or log_std_max is not None:
        log_std = log_std.clamp(log_std_min, log_std_max)
    return _as_event(mean, shape), _as_event(log_std, shape).exp()


def _gaussian(logits: torch.Tensor, space: Any, log_std_min: float | None = None,
              log_std_max: float | None = None) -> Distribution:
    shape = _event_shape(space)
    mean, std = _mean_and_std(logits, shape, log_std_min, log_std_max)
    return _independent(Normal(mean, std), len(shape))


def _squashed_gaussian(logits: torch.Tensor, space: Any, log_std_min: float | None = None,
                       log_std_max: float | None = None) -> Distribution:
    mean, std = _mean_and_std(logits, _event_shape(space), log_std_min, log_std_max)
    return SquashedGaussian(mean, std, *_bounds(space, logits))


def _beta(logits: torch.Tensor, space: Any) -> Distribution:
    return BoundedBeta(logits, *_bounds(space, logits))


def _multi_categorical(logits: torch.Tensor, space: Any) -> Distribution:
    return MultiCategorical(logits, tuple(int(n) for n in space.nvec.flatten()), tuple(space.nvec.shape))


def _deterministic(logits: torch.Tensor, space: Any) -> Distribution:
    shape = _event_shape(space)
    return Deterministic(_as_event(logits, shape), len(shape))


#: kind name -> `(logits, space, **options) -> torch Distribution`
DISTRIBUTION_BUILDERS: dict[str, Callable[..., Distribution]] = {
    "categorical": _categorical, "bernoulli": _bernoulli, "gaussian": _gaussian,
    "squashed_gaussian": _squashed_gaussian, "beta": _beta, "multi_categorical": _multi_categorical,
    "deterministic": _deterministic,
}
assert set(DISTRIBUTION_BUILDERS) == set(DISTRIBUTIONS), "every distribution kind has a builder"


def head_distribution(name: str, options: Mapping[str, Any], logits: torch.Tensor, space: gym.Space[Any],
                      where: str) -> Distribution:
    """The torch distribution of one action: a kind of `perceptspec.spaces.DISTRIBUTIONS` or an allowed class."""
    builder = DISTRIBUTION_BUILDERS.get(name)
    if builder is not None:
        return builder(logits, space, **options)
    built = distribution_class(name, where)(logits, space, **options)
    if not isinstance(built, Distribution):
        raise SpecError(where, [f"distribution {name!r} built a {type(built).__name__}, expected a "
                                f"torch.distributions.Distribution"])
    return built


class DictDistribution:
    """Independent distributions, one per action head; joint log-prob and entropy are sums over heads.

    offsets: per head, the space's `start` (Discrete, MultiDiscrete) added to samples and taken off actions before
    scoring them; heads without one are absent, so a Box head scores the very tensor it sampled (a squashed
    Gaussian then reuses the pre-tanh value).

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

    def _shifted(self, action: str, value: torch.Tensor, sign: int) -> torch.Tensor:
        offset = self.offsets.get(action)
        return value if offset is None else value + sign * offset

    def sample(self) -> dict[str, torch.Tensor]:
        return {a: self._shifted(a, d.sample(), 1) for a, d in self.heads.items()}

    def rsample(self) -> dict[str, torch.Tensor]:
        """Reparameterised samples (gradients flow to the logits); only heads over a Box have them."""
        return {a: self._shifted(a, d.rsample(), 1) for a, d in self.heads.items()}

    def mode(self) -> dict[str, torch.Tensor]:
        """The most likely action of each head (a deterministic policy; a Beta's is its mean, as Maze's)."""
        return {a: self._shifted(a, d.mode, 1) for a, d in self.heads.items()}

    def log_probs(self, actions: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {a: d.log_prob(self._shifted(a, actions[a], -1)) for a, d in self.heads.items()}

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
    choices = distribution_choices(action_space, overrides)
    shapes = action_logits_shapes(action_space, overrides)
    spaces = action_spaces(action_space)
    heads, offsets = {}, {}
    for action, choice in choices.items():
        if action not in logits:
            raise SignatureError(action, f"logits for every action {list(choices)}", f"keys {list(logits)}")
        value = logits[action]
        if tuple(value.shape[value.dim() - len(shapes[action]):]) != shapes[action]:
            raise SignatureError(action, f"logits of shape (*batch, {', '.join(map(str, shapes[action]))})",
                                 f"shape {tuple(value.shape)}")
        heads[action] = head_distribution(choice.name, choice.options, value, spaces[action], f"action '{action}'")
        start = getattr(spaces[action], "start", None)
        if start is not None and np.any(start != 0):
            offsets[action] = torch.as_tensor(start, device=value.device)
    return DictDistribution(heads, offsets)


def env_action(actions: Mapping[str, torch.Tensor], action_space: gym.Space[Any]) -> Any:
    """One env step's action from per-action samples of one state (no batch dim): numpy values of each space's
    dtype (a Discrete's as an int), arranged as the (nested) Dict / Tuple space holds them (`ps.spaces.nest`).

    Examples:
        >>> import gymnasium as gym, torch
        >>> space = gym.spaces.Dict({"move": gym.spaces.Discrete(4)})
        >>> ps.distributions.env_action({"move": torch.tensor(2)}, space)
        {'move': 2}
    """
    leaves = action_spaces(action_space)
    values: dict[str, Any] = {}
    for action, space in leaves.items():
        value = actions[action].detach().cpu().numpy().astype(space.dtype)
        values[action] = int(value) if isinstance(space, gym.spaces.Discrete) else value
    return nest(action_space, values, "action")
