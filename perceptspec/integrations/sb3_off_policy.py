"""Stable-Baselines3's off-policy algorithms with perceptspec networks: SAC, TD3, DDPG and DQN.

    from stable_baselines3 import SAC
    from perceptspec.integrations.sb3_off_policy import SpecSACPolicy

    model = SAC(SpecSACPolicy, "Pendulum-v1", policy_kwargs={"config": "perceptspec/examples/pendulum_sac.yaml"})

The config is a composer config (`ps.compose`'s layout), as for `SpecActorCriticPolicy`:

- SAC, TD3, DDPG: `policy.networks` is the actor, `critic` a `state_action` critic: it reads the observations and
  the action (key 'action', the Box's shape) and outputs its Q value under 'value'. SAC's actor head 'action' gives
  means and log standard deviations (2 x the action dims; a `StateIndependentLogStd` block may give the latter),
  squashed by SB3's own tanh Gaussian: its distribution is 'squashed_gaussian' (the default) or 'gaussian', whose
  log-std clamp options SB3 applies ([-20, 2], SB3's, when unset); TD3's and DDPG's give the action itself (the
  'deterministic' distribution: the action dims), squashed by tanh as SB3's own actor does.
- DQN: `policy.networks` is the Q network: its 'action' head gives one Q value per discrete action; no critic.

SB3 asks for target copies and for `n_critics` Q networks: a target is a copy of its network (SB3 then copies the
weights over, and updates them as it always does); the first Q network is the composer's critic, the others are the
same spec materialized with seeds of their own (SAC's and TD3's twin critics start different). Observations are
converted by the networks themselves, as `ps.compose` converts them (`network_inputs` only reshapes and casts what
SB3's buffers hold), Dict observations included (MultiInputPolicy's role).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.distributions import SquashedDiagGaussianDistribution
from stable_baselines3.common.policies import BaseModel, BasePolicy
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.dqn.policies import DQNPolicy
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, SACPolicy
from stable_baselines3.td3.policies import TD3Policy
from torch import nn

from perceptspec._composer import STATE_ACTION, VALUE_KEY, Models, compose
from perceptspec._config import load_config
from perceptspec._errors import SpecError
from perceptspec._materialize import materialize
from perceptspec._torch import SpecModule
from perceptspec.spaces import action_shapes, as_choice, distribution_choices
from perceptspec.integrations.sb3 import ACTION, network_inputs, observation_structure, with_image_scaling

__all__ = ["SpecDQNPolicy", "SpecQNetwork", "SpecSACActor", "SpecSACPolicy", "SpecStateActionCritic",
           "SpecTD3Actor", "SpecTD3Policy"]

Config = Mapping[str, Any] | str | Path


def compose_networks(config: Mapping[str, Any], observation_space: gym.Space[Any], action_space: gym.Space[Any],
                     allow: Sequence[str], heads: tuple[str, ...], critic: bool, where: str) -> Models:
    """The composer's networks for an off-policy algorithm: the 'action' head as one of the `heads` distributions
    (the first by default), and a state-action critic when `critic`."""
    overrides = dict(config.get("distribution_overrides") or {})
    name = as_choice(overrides.setdefault(ACTION, heads[0]), f"distribution_overrides.{ACTION}").name
    if name not in heads:
        expected = " or ".join(f"'{h}'" for h in heads)
        raise SpecError(where, [f"distribution_overrides: the 'action' head of this policy is {expected}, not "
                                f"{name!r}"])
    kind = (config.get("critic") or {}).get("kind", "state" if config.get("critic") else "none")
    if critic and kind != STATE_ACTION:
        raise SpecError(where, [f"critic.kind: expected '{STATE_ACTION}' (a Q critic reading the observations and "
                                f"the action), got {kind!r}"])
    if not critic and kind != "none":
        raise SpecError(where, [f"critic: expected none (the policy's Q network is the 'action' head), got kind "
                                f"{kind!r}"])
    models = compose({**config, "distribution_overrides": overrides}, observation_structure(observation_space),
                     action_space, allow=allow)
    if not isinstance(models.policy, SpecModule) or (critic and not isinstance(models.critic, SpecModule)):
        raise SpecError(where, ["the networks must be built from specs (plain nn.Module targets cannot be "
                                "replicated for the twin critics and targets SB3 needs)"])
    return models


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _seed(seed: int | None, index: int) -> int | None:
    """The seed of the `index`-th extra Q network: derived from the config's, so all differ and none is global."""
    if seed is None:
        return None
    return int.from_bytes(hashlib.sha256(f"{seed}/q/{index}".encode()).digest()[:8], "little")


class _SpecNetwork(BasePolicy):
    """A module built from a spec behind SB3's model interface: SB3 preprocesses the observations."""

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.Space[Any], module: nn.Module,
                 normalize_images: bool, squash_output: bool) -> None:
        super().__init__(observation_space, action_space, normalize_images=normalize_images,
                         squash_output=squash_output)
        self.module = module

    def head(self, obs: PyTorchObs) -> torch.Tensor:
        """The 'action' head's output for a batch of observations."""
        inputs = network_inputs(obs, self.observation_space)
        out: torch.Tensor = self.module(inputs)[ACTION]
        return out.reshape(out.shape[0], -1)


class SpecSACActor(_SpecNetwork):
    """SAC's actor: SB3's squashed Gaussian over the head's means and log standard deviations, clamped to
    `log_std_bounds` (SB3's [-20, 2] by default).

    Examples:
        >>> from stable_baselines3 import SAC
        >>> from perceptspec.integrations.sb3_off_policy import SpecSACActor, SpecSACPolicy
        >>> sac = SAC(SpecSACPolicy, "Pendulum-v1", policy_kwargs={"config": "perceptspec/examples/pendulum.yaml"})
        >>> isinstance(sac.actor, SpecSACActor), sac.actor.action_dist.__class__.__name__
        (True, 'SquashedDiagGaussianDistribution')
    """

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.Space[Any], module: nn.Module,
                 normalize_images: bool,
                 log_std_bounds: tuple[float | None, float | None] = (LOG_STD_MIN, LOG_STD_MAX)) -> None:
        super().__init__(observation_space, action_space, module, normalize_images, squash_output=True)
        self.action_dist = SquashedDiagGaussianDistribution(get_action_dim(action_space))
        self.log_std_bounds = log_std_bounds

    def get_action_dist_params(self, obs: PyTorchObs) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        mean, log_std = self.head(obs).chunk(2, dim=-1)
        return mean, torch.clamp(log_std, *self.log_std_bounds), {}

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        mean, log_std, _ = self.get_action_dist_params(obs)
        return self.action_dist.actions_from_params(mean, log_std, deterministic=deterministic)

    def action_log_prob(self, obs: PyTorchObs) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std, _ = self.get_action_dist_params(obs)
        return self.action_dist.log_prob_from_params(mean, log_std)

    def reset_noise(self, batch_size: int = 1) -> None:
        """No gSDE noise to reset (SB3's SAC calls this only with use_sde=True, which the policy refuses)."""

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        action: torch.Tensor = self(observation, deterministic)
        return action


class SpecTD3Actor(_SpecNetwork):
    """TD3's and DDPG's actor: tanh of the head's action, as SB3's own actor squashes it into [-1, 1].

    Examples:
        >>> import stable_baselines3 as sb3
        >>> from perceptspec.integrations import sb3_off_policy
        >>> pendulum = {"config": "perceptspec/examples/pendulum.yaml"}
        >>> td3 = sb3.TD3(sb3_off_policy.SpecTD3Policy, "Pendulum-v1", policy_kwargs=pendulum)
        >>> td3.actor.__class__ is sb3_off_policy.SpecTD3Actor
        True
    """

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.Space[Any], module: nn.Module,
                 normalize_images: bool) -> None:
        super().__init__(observation_space, action_space, module, normalize_images, squash_output=True)

    def forward(self, obs: PyTorchObs) -> torch.Tensor:
        return torch.tanh(self.head(obs))

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        action: torch.Tensor = self(observation)
        return action


class SpecQNetwork(_SpecNetwork):
    """DQN's Q network: the head's one Q value per discrete action; the greedy action is the largest.

    Examples:
        >>> from stable_baselines3 import DQN
        >>> from perceptspec.integrations.sb3_off_policy import SpecDQNPolicy
        >>> config = {"policy": {"networks": [{"_target_": "perceptspec.examples.continuous.mlp_actor"}]}}
        >>> q_net = DQN(SpecDQNPolicy, "CartPole-v1", policy_kwargs={"config": config}).q_net
        >>> type(q_net).__name__
        'SpecQNetwork'
    """

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.Space[Any], module: nn.Module,
                 normalize_images: bool) -> None:
        super().__init__(observation_space, action_space, module, normalize_images, squash_output=False)

    def forward(self, obs: PyTorchObs) -> torch.Tensor:
        return self.head(obs)

    def _predict(self, observation: PyTorchObs, deterministic: bool = True) -> torch.Tensor:
        q_values: torch.Tensor = self(observation)
        return q_values.argmax(dim=1).reshape(-1)


class SpecStateActionCritic(BaseModel):
    """SB3's continuous critic: `n` Q networks over (observations, action), each a module built from the critic's
    spec; `forward` gives their Q values, `q1_forward` the first's (TD3's and DDPG's actor loss).

    Examples:
        >>> from stable_baselines3 import SAC
        >>> from perceptspec.integrations.sb3_off_policy import SpecSACPolicy
        >>> kwargs = {"config": "perceptspec/examples/pendulum.yaml"}
        >>> critic = SAC(SpecSACPolicy, "Pendulum-v1", policy_kwargs=kwargs).critic
        >>> type(critic).__name__, len(critic.q_networks)
        ('SpecStateActionCritic', 2)
    """

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.Space[Any],
                 q_networks: Sequence[nn.Module], normalize_images: bool) -> None:
        super().__init__(observation_space, action_space, normalize_images=normalize_images)
        self.q_networks = nn.ModuleList(q_networks)
        self.action_shape = action_shapes(action_space)[ACTION]
        self.share_features_extractor = False

    def _inputs(self, obs: PyTorchObs, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        inputs = network_inputs(obs, self.observation_space)
        inputs[ACTION] = actions.reshape(actions.shape[0], *self.action_shape)  # SB3's buffers keep it flat
        return inputs

    def forward(self, obs: PyTorchObs, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inputs = self._inputs(obs, actions)
        return tuple(q(inputs)[VALUE_KEY] for q in self.q_networks)

    def q1_forward(self, obs: PyTorchObs, actions: torch.Tensor) -> torch.Tensor:
        value: torch.Tensor = self.q_networks[0](self._inputs(obs, actions))[VALUE_KEY]
        return value


class _OffPolicyNetworks:
    """What the three policies share: the composed networks, copies for targets, twin Q networks."""

    models: Models
    config: dict[str, Any]
    allow: tuple[str, ...]
    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]
    normalize_images: bool
    _copies: dict[str, int]
    n_critics: int

    def _compose(self, config: Config, observation_space: gym.Space[Any], action_space: gym.Space[Any],
                 allow: Sequence[str], heads: tuple[str, ...], critic: bool, use_sde: bool,
                 normalize_images: bool) -> None:
        name = type(self).__name__
        if use_sde:
            raise SpecError(name, ["use_sde=True (gSDE) is not supported: the actor's head gives its log standard "
                                   "deviations"])
        self.allow = tuple(allow)
        self.config = dict(load_config(config))
        self.models = compose_networks(with_image_scaling(self.config, normalize_images), observation_space,
                                       action_space, self.allow, heads, critic, name)
        self._copies = {}

    def _fresh(self, role: str, module: nn.Module) -> nn.Module:
        """`module` for the first request of `role`, a copy for every later one (SB3's target networks, which it
        then loads the weights of the first into)."""
        count = self._copies[role] = self._copies.get(role, 0) + 1
        return module if count == 1 else copy.deepcopy(module)

    def _q_networks(self, n_critics: int) -> list[nn.Module]:
        critic = self.models.critic
        assert isinstance(critic, SpecModule)  # checked by compose_networks
        extra = [materialize(critic.spec, critic.in_shapes, seed=_seed(self.config.get("seed"), i),
                             check=critic.check, check_finite=critic.check_finite) for i in range(1, n_critics)]
        return [critic, *extra]

    def _state_action_critic(self, n_critics: int) -> SpecStateActionCritic:
        """SAC's and TD3's critic (and its target): `n_critics` Q networks."""
        networks = self._q_networks(n_critics)
        return SpecStateActionCritic(self.observation_space, self.action_space,
                                     [self._fresh(f"q{i}", q) for i, q in enumerate(networks)],
                                     self.normalize_images)

    def _saved_parameters(self, policy: BasePolicy, **extra: Any) -> dict[str, Any]:
        """What `model.save` stores to build the policy again: the spaces and settings, the config, the allow-list
        (not SB3's MLP settings, which these policies do not use)."""
        data = BasePolicy._get_constructor_parameters(policy)
        data.update(lr_schedule=policy._dummy_schedule, config=self.config, optimizer_class=policy.optimizer_class,
                    optimizer_kwargs=policy.optimizer_kwargs, allow=self.allow, **extra)
        return data


class SpecSACPolicy(_OffPolicyNetworks, SACPolicy):
    """SB3's `SACPolicy` (also for Dict observations) whose actor and Q critics come from a composer config.

    config: a composer config with a policy (head 'action': means and log stds) and a `state_action` critic.
    n_critics: how many Q networks (SB3's default 2); allow: as `ps.compose`'s.

    Examples:
        >>> from stable_baselines3 import SAC
        >>> from perceptspec.integrations.sb3_off_policy import SpecSACPolicy
        >>> model = SAC(SpecSACPolicy, "Pendulum-v1", buffer_size=1000,
        ...             policy_kwargs={"config": "perceptspec/examples/pendulum.yaml"})
        >>> model.policy.actor is model.actor
        True
    """

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.spaces.Box, lr_schedule: Schedule,
                 config: Config, *, n_critics: int = 2, use_sde: bool = False, normalize_images: bool = True,
                 optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
                 optimizer_kwargs: dict[str, Any] | None = None, allow: Sequence[str] = ()) -> None:
        self._compose(config, observation_space, action_space, allow, ("squashed_gaussian", "gaussian"), critic=True,
                      use_sde=use_sde, normalize_images=normalize_images)
        self.n_critics = n_critics
        super().__init__(observation_space, action_space, lr_schedule, net_arch=[], n_critics=n_critics,
                         normalize_images=normalize_images, optimizer_class=optimizer_class,
                         optimizer_kwargs=optimizer_kwargs, share_features_extractor=False)

    def make_actor(self, features_extractor: Any = None) -> SpecSACActor:  # type: ignore[override]
        overrides = {ACTION: "squashed_gaussian", **(self.config.get("distribution_overrides") or {})}
        options = distribution_choices(self.action_space, overrides)[ACTION].options
        bounds = (_or(options["log_std_min"], LOG_STD_MIN), _or(options["log_std_max"], LOG_STD_MAX))
        return SpecSACActor(self.observation_space, self.action_space, self._fresh("actor", self.models.policy),
                            self.normalize_images, bounds)

    def make_critic(self, features_extractor: Any = None) -> SpecStateActionCritic:  # type: ignore[override]
        return self._state_action_critic(self.n_critics)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return self._saved_parameters(self, n_critics=self.n_critics)


class SpecTD3Policy(_OffPolicyNetworks, TD3Policy):
    """SB3's `TD3Policy` (TD3 and DDPG) whose actor and Q critics come from a composer config.

    config: a composer config with a policy (head 'action': the action, before tanh) and a `state_action` critic.
    n_critics: how many Q networks (TD3: 2, DDPG: 1 — SB3's DDPG passes n_critics=1 itself); allow: as compose's.

    Examples:
        >>> from stable_baselines3 import DDPG
        >>> from perceptspec.integrations.sb3_off_policy import SpecTD3Policy
        >>> ddpg = DDPG(SpecTD3Policy, "Pendulum-v1", buffer_size=1000,
        ...             policy_kwargs={"config": "perceptspec/examples/pendulum.yaml"})
        >>> len(ddpg.critic.q_networks), ddpg.policy.critic_target is ddpg.critic_target  # DDPG: one Q network
        (1, True)
    """

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.spaces.Box, lr_schedule: Schedule,
                 config: Config, *, n_critics: int = 2, normalize_images: bool = True,
                 optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
                 optimizer_kwargs: dict[str, Any] | None = None, allow: Sequence[str] = ()) -> None:
        self._compose(config, observation_space, action_space, allow, ("deterministic",), critic=True, use_sde=False,
                      normalize_images=normalize_images)
        self.n_critics = n_critics
        super().__init__(observation_space, action_space, lr_schedule, net_arch=[], n_critics=n_critics,
                         normalize_images=normalize_images, optimizer_class=optimizer_class,
                         optimizer_kwargs=optimizer_kwargs, share_features_extractor=False)

    def make_actor(self, features_extractor: Any = None) -> SpecTD3Actor:  # type: ignore[override]
        return SpecTD3Actor(self.observation_space, self.action_space, self._fresh("actor", self.models.policy),
                            self.normalize_images)

    def make_critic(self, features_extractor: Any = None) -> SpecStateActionCritic:  # type: ignore[override]
        return self._state_action_critic(self.n_critics)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return self._saved_parameters(self, n_critics=self.n_critics)


class SpecDQNPolicy(_OffPolicyNetworks, DQNPolicy):
    """SB3's `DQNPolicy` whose Q network is a composer config's policy: its 'action' head gives the Q values.

    Examples:
        >>> from stable_baselines3 import DQN
        >>> from perceptspec.integrations.sb3_off_policy import SpecDQNPolicy
        >>> config = {"policy": {"networks": [{"_target_": "perceptspec.examples.continuous.mlp_actor",
        ...                                    "hidden_units": [64, 64]}]}}
        >>> model = DQN(SpecDQNPolicy, "CartPole-v1", buffer_size=1000, policy_kwargs={"config": config})
        >>> model.policy.q_net_target is model.q_net_target
        True
    """

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.spaces.Discrete, lr_schedule: Schedule,
                 config: Config, *, normalize_images: bool = True,
                 optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
                 optimizer_kwargs: dict[str, Any] | None = None, allow: Sequence[str] = ()) -> None:
        self._compose(config, observation_space, action_space, allow, ("categorical",), critic=False, use_sde=False,
                      normalize_images=normalize_images)
        super().__init__(observation_space, action_space, lr_schedule, net_arch=[], normalize_images=normalize_images,
                         optimizer_class=optimizer_class, optimizer_kwargs=optimizer_kwargs)

    def make_q_net(self) -> SpecQNetwork:  # type: ignore[override]
        return SpecQNetwork(self.observation_space, self.action_space, self._fresh("q", self.models.policy),
                            self.normalize_images)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return self._saved_parameters(self)
