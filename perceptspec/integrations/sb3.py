"""Stable-Baselines3 adapter: a perceptspec composer config as an SB3 actor-critic policy.

    from stable_baselines3 import PPO
    from perceptspec.integrations.sb3 import SpecActorCriticPolicy

    model = PPO(SpecActorCriticPolicy, "CartPole-v1", policy_kwargs={"config": "perceptspec/examples/cartpole.yaml"})
    model.learn(100_000)

`config` is anything `ps.compose` takes (a mapping or a YAML path, with a policy and a critic); `spec_config` in
`perceptspec.integrations` makes one from spec values. The policy composes the networks for the env's spaces and
uses the composer's `actor_critic` module: one forward gives the action logits and the value, a shared embedding
computed once. The weights are the composer's own (its initialisers, head biases and seed): SB3's orthogonal
re-initialisation is not applied, and SB3's MLP extractor, action net, log-std parameter and value net are not
built.

Observations are converted by the composed networks themselves, as `ps.compose` converts them for any env
(`perceptspec._observations`, docs/spaces.md): spec blocks one-hot encode a Discrete(n) (n,) and a
MultiDiscrete(nvec) (sum(nvec),), scale uint8 images to [0, 1] (not when `normalize_images=False`) and make them
channel-first, turn MultiBinary into floats; the network functions are given the shapes after conversion, as SB3's
`preprocess_obs` would make them. So the modules read the observations as the env gives them; the policy only
reshapes what SB3's buffers hold (a Discrete as (1,)) and casts what they store as float32 back (indices to int64).
A plain space is the input key 'observation', a Dict space gives one input key per entry.

Actions: where SB3 has the distribution, the 'action' head's logits feed SB3's own, so SB3's algorithms see exactly
the log-probs, entropies, samples and modes they expect: Discrete -> CategoricalDistribution, MultiBinary ->
BernoulliDistribution, MultiDiscrete -> MultiCategoricalDistribution, Box -> DiagGaussianDistribution with the
head's log standard deviations (the second half of the logits, state-dependent or a `StateIndependentLogStd`
parameter; the action is the flattened Box). These agree with `perceptspec.distributions.action_distribution` on the
same logits. Any other choice (a squashed Gaussian, a Beta, a log-std clamp, a class of yours) runs
`perceptspec.distributions` behind SB3's `Distribution` interface (`SpecDistribution`).

SB3's on-policy algorithms take only Box, Discrete, MultiDiscrete and MultiBinary(n) actions. Wrap an env with Tuple,
(nested) Dict or multi-dimensional MultiBinary actions in `FlatActionWrapper`: SB3 sees one flat Box
(`FlatActionSpace`: each action's entries in turn, a Discrete as its index), the policy composes one head per action
of the original space (`perceptspec.spaces` names them) and the wrapper hands the env its structured action. gSDE
(`use_sde=True`) is not supported. Likewise SB3's buffers refuse Tuple and nested Dict observations: wrap the env in
`FlatObservationWrapper` (one flat Dict under perceptspec's flattened names); the policies compose for the original
space, so the networks are those `ps.compose` and the command line build for the unwrapped env.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    MultiCategoricalDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule

from perceptspec import spaces
from perceptspec._composer import VALUE_KEY, Models, compose
from perceptspec._config import load_config
from perceptspec._errors import SpecError
from perceptspec._observations import OBSERVATION, flat_values, module_inputs, preprocessing
from perceptspec.templates import DEFAULT_CONFIG
from perceptspec.integrations.sb3_actions import FlatActionSpace, FlatActionWrapper, SpecDistribution
from perceptspec.integrations.sb3_observations import (FlatObservationSpace, FlatObservationWrapper,
                                                       observation_structure)

__all__ = ["ACTION", "OBSERVATION", "FlatActionSpace", "FlatActionWrapper", "FlatObservationSpace",
           "FlatObservationWrapper", "SpecActorCriticPolicy", "SpecDistribution", "network_inputs",
           "observation_structure", "with_image_scaling"]

ACTION = "action"  # the head name of a plain (non-Dict) action space, as `perceptspec.spaces` names it

#: the perceptspec distribution each SB3 distribution class matches (same logits layout and semantics)
_SB3_DISTRIBUTIONS: dict[type[Distribution], str] = {
    CategoricalDistribution: "categorical", BernoulliDistribution: "bernoulli",
    DiagGaussianDistribution: "gaussian", MultiCategoricalDistribution: "multi_categorical",
}


def with_image_scaling(config: Mapping[str, Any], normalize_images: bool) -> dict[str, Any]:
    """`config` with SB3's `normalize_images` as its `observations.normalize_images`, unless it sets that itself.

    Examples:
        >>> from perceptspec.integrations.sb3 import with_image_scaling
        >>> with_image_scaling({"policy": {}}, True)["observations"]
        {'normalize_images': True}
    """
    observations = dict(config.get("observations") or {})
    observations.setdefault("normalize_images", normalize_images)
    return {**config, "observations": observations}


def network_inputs(obs: PyTorchObs, observation_space: gym.Space[Any]) -> dict[str, torch.Tensor]:
    """SB3's observations (a tensor, or a dict of tensors, with one batch dim) keyed and shaped as the composed
    modules read them: each reshaped to (batch, *the raw shape of its entry), indices cast to int64 and float
    features to float32 (SB3's rollout buffers store every observation as float32).

    Examples:
        >>> import gymnasium as gym, torch
        >>> from perceptspec.integrations.sb3 import network_inputs
        >>> sorted(network_inputs(torch.zeros(2, 4), gym.spaces.Box(-1, 1, (4,))))
        ['observation']
    """
    named = obs if isinstance(obs, dict) else {OBSERVATION: obs}
    return module_inputs(preprocessing([observation_structure(observation_space)]),
                         flat_values(observation_space, named) if isinstance(observation_space, gym.spaces.Dict)
                         else named)


def _sb3_has(choice: spaces.DistributionChoice | None, sb3_distribution: type[Distribution]) -> bool:
    """Whether SB3's own distribution for the space is `choice` (same kind, no option SB3 lacks)."""
    return choice is not None and _SB3_DISTRIBUTIONS.get(sb3_distribution) == choice.name \
        and all(value is None for value in choice.options.values())


class SpecActorCriticPolicy(ActorCriticPolicy):
    """An SB3 actor-critic policy (PPO, A2C) whose networks come from a perceptspec composer config.

    config: what `ps.compose` takes: a mapping or a YAML path with a 'policy' section and a critic of kind
        'state' or 'shared_state', or None (the default) for perceptspec's default networks, SB3's own layout and
        initialisation (`perceptspec.templates.DEFAULT_CONFIG`). The policy's head must be 'action'. A path is read
        once, here: the loaded mapping is what `model.save` stores.
    allow: modules the config's `_target_`s and TorchModel factories may import, as `ps.compose`'s `allow`.
    normalize_images, optimizer_class, optimizer_kwargs: as for SB3's ActorCriticPolicy (the optimizer defaults to
        Adam with eps=1e-5, as SB3's).

    Attributes: `models` (the composer's `Models`: specs, in_shapes, policy, critic) and `actor_critic` (the one
    module computing logits and value; it holds every parameter).

    Examples:
        >>> from stable_baselines3 import PPO
        >>> from perceptspec.integrations.sb3 import SpecActorCriticPolicy
        >>> model = PPO(SpecActorCriticPolicy, "CartPole-v1", n_steps=64,
        ...             policy_kwargs={"config": "perceptspec/examples/cartpole.yaml"})
        >>> sorted(model.policy.models.specs)
        ['critic', 'policy']
    """

    models: Models
    actor_critic: torch.nn.Module

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.Space[Any], lr_schedule: Schedule,
                 config: Mapping[str, Any] | str | Path | None = None, *, use_sde: bool = False,
                 normalize_images: bool = True,
                 optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
                 optimizer_kwargs: dict[str, Any] | None = None, allow: Sequence[str] = ()) -> None:
        if use_sde:
            raise SpecError("SpecActorCriticPolicy", ["use_sde=True (gSDE) is not supported: the spec's 'action' head "
                                                      "gives the Gaussian's means and log standard deviations"])
        self.allow = tuple(allow)
        self.config = dict(load_config(DEFAULT_CONFIG if config is None else config))
        # ActorCriticPolicy.__init__ sets up spaces, the distribution and the optimizer settings, then calls
        # self._build, which composes the networks below instead of SB3's MLP extractor. Called by name: the
        # recurrent subclass (sb3_recurrent) must skip RecurrentActorCriticPolicy.__init__'s own LSTMs.
        ActorCriticPolicy.__init__(self, observation_space, action_space, lr_schedule, net_arch=[], ortho_init=False,
                                   use_sde=False, normalize_images=normalize_images, optimizer_class=optimizer_class,
                                   optimizer_kwargs=optimizer_kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        structure = self.action_space.structure if isinstance(self.action_space, FlatActionSpace) \
            else self.action_space
        models = compose(with_image_scaling(self.config, self.normalize_images),
                         observation_structure(self.observation_space), structure, allow=self.allow)
        if models.critic_kind == "none":
            raise SpecError("SpecActorCriticPolicy", ["the config has no critic: PPO and A2C need one "
                                                      "(critic.kind 'state' or 'shared_state')"])
        overrides = self.config.get("distribution_overrides") or {}
        choices = spaces.distribution_choices(structure, overrides)
        if not (structure is self.action_space and _sb3_has(choices.get(ACTION), type(self.action_dist))):
            # perceptspec's distributions behind SB3's interface, over the flat actions SB3 keeps
            self.action_dist = SpecDistribution(structure, overrides)
        self.models = models
        self.actor_critic = models.actor_critic
        critic_inputs = models.in_shapes.get("critic")
        # a critic reading a key the policy outputs (a shared embedding) can only run inside the actor-critic
        self._critic_alone = critic_inputs is not None and set(critic_inputs) <= set(models.obs_shapes[0])
        # Optimizer's own __init__ takes no lr, its subclasses do; SB3's _build ignores the same error
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = BasePolicy._get_constructor_parameters(self)  # spaces and normalize_images; not SB3's MLP settings
        data.update(lr_schedule=self._dummy_schedule, config=self.config, use_sde=False,
                    optimizer_class=self.optimizer_class, optimizer_kwargs=self.optimizer_kwargs, allow=self.allow)
        return data

    def network_inputs(self, obs: PyTorchObs) -> dict[str, torch.Tensor]:
        """The observations as the composed modules read them (`network_inputs`), one batch dim."""
        return network_inputs(obs, self.observation_space)

    def distribution(self, logits: torch.Tensor | Mapping[str, torch.Tensor]) -> Distribution:
        """The action distribution for the policy's outputs (or the 'action' head's logits (batch, *logits shape)):
        SB3's own where it has the distribution, else `SpecDistribution`."""
        if isinstance(self.action_dist, SpecDistribution):
            return self.action_dist.proba_distribution(logits if isinstance(logits, Mapping) else {ACTION: logits})
        if isinstance(logits, Mapping):
            logits = logits[ACTION]
        batch = logits.shape[:1]
        if isinstance(self.action_dist, DiagGaussianDistribution):
            mean, log_std = logits.chunk(2, dim=-1)
            return self.action_dist.proba_distribution(mean.reshape(*batch, -1), log_std.reshape(*batch, -1))
        assert isinstance(self.action_dist, (CategoricalDistribution, BernoulliDistribution,
                                             MultiCategoricalDistribution))  # checked in _build
        return self.action_dist.proba_distribution(logits.reshape(*batch, -1))

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor,
                                                                                torch.Tensor]:
        """Actions, values and log-probs of the actions, from one actor-critic forward."""
        out = self.actor_critic(self.network_inputs(obs))
        distribution = self.distribution(out)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        # gymnasium types a space's shape as optional; every SB3 action space has one (SB3's forward ignores this too)
        shape: tuple[int, ...] = self.action_space.shape  # type: ignore[assignment]
        return actions.reshape((-1, *shape)), out[VALUE_KEY].reshape(-1, 1), log_prob

    def evaluate_actions(self, obs: PyTorchObs, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                 torch.Tensor | None]:
        """Values, log-probs of `actions` and entropies, from one actor-critic forward."""
        out = self.actor_critic(self.network_inputs(obs))
        distribution = self.distribution(out)
        return out[VALUE_KEY].reshape(-1, 1), distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs: PyTorchObs) -> Distribution:
        """The action distribution; runs the policy network only."""
        return self.distribution(self.models.policy(self.network_inputs(obs)))

    def predict_values(self, obs: PyTorchObs) -> torch.Tensor:
        """The values; runs the critic alone unless it reads the policy's shared embedding."""
        inputs = self.network_inputs(obs)
        critic = self.models.critic
        module = critic if self._critic_alone and critic is not None else self.actor_critic
        value: torch.Tensor = module(inputs)[VALUE_KEY]
        return value.reshape(-1, 1)  # (batch, 1), as SB3's value net gives, also from a value of shape ()
