"""The custom model composer of the seed page: policy and critic networks from gymnasium spaces and a config.

The config (a dict, or a YAML file loaded safely) follows the seed's layout:

    policy:
      networks:                       # one entry for all sub-steps, or one per sub-step
        - _target_: perceptspec.examples.cartpole.cartpole_policy
          hidden_units: [16, 32]
      init: {body: {type: NormC, std: 1.0}, heads: {type: NormC, std: 0.01}}      # optional
      action_head_bias: {action: [0.3, 0.7]}                                      # optional
    critic:                           # optional; kind: state (default), shared_state, state_action or none
      kind: state
      networks:
        - _target_: perceptspec.examples.cartpole.cartpole_critic
    distribution_overrides: {Box: gaussian}                                       # optional
    distribution_mapper_config: [{action_space: gymnasium.spaces.Box, distribution: squashed_gaussian}]  # optional
    seed: 0                                                                       # optional
    check: always                     # optional: materialize's input checks, always | first | off
    check_finite: false               # optional: true raises NonFiniteError on NaN or inf (materialize's)
    observations: {discrete: one_hot} # optional: how observations are converted (perceptspec._observations)

A `_target_` is an import path of a module on the allow-list (see `perceptspec._trust`: perceptspec's examples
and integrations, `ps.allow(...)`, `compose(..., allow=[...])`), resolved by import only: either a spec function
`(obs_shapes, action_logits_shapes, **kwargs) -> spec` (critic: `(obs_shapes, **kwargs)`) or a plain
`torch.nn.Module` class with that constructor signature (seed Example 3). Keys a policy spec outputs besides its
actions (a shared embedding, seed Example 4) become critic inputs with the shapes the fold infers for them. A
`state_action` critic (a Q function, as SAC, TD3 and DDPG train) also reads the actions, one key per action
(`spaces.action_shapes`), and outputs its Q value under 'value'.
Observations: a target gets the shapes after conversion (one-hot Discrete, channel-first float images, ...) under
the observations' names; `perceptspec._observations` then adds the conversion blocks to its spec (or runs them before
a plain module), so the composed modules read the raw observations (`Models.obs_shapes`).
Unknown keys and values of the wrong type anywhere in the config are errors (`perceptspec._config`).
This module imports torch and gymnasium only when `compose` runs.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perceptspec._config import load_config
from perceptspec._errors import NotAllowedError, SpecError, did_you_mean
from perceptspec._fold._serialize import descriptor_from_dict
from perceptspec._fold._shapes import infer_shapes
from perceptspec._fold._state import StateLayout, network_states, with_state_inputs, without_state_outputs
from perceptspec._spec import BernoulliBias, Block, CategoricalBias, Graph, Initializer, LinearOutput
from perceptspec._trust import allowing, resolve_allowed

if TYPE_CHECKING:
    import gymnasium as gym
    from torch import nn

    from perceptspec._observations import Preprocessing

Shapes = dict[str, tuple[int, ...]]
StepKey = int | str
VALUE_KEY = "value"
STATE_ACTION = "state_action"
DELTA_STATE = "delta_state"
ACTION_VALUE_KINDS = (STATE_ACTION, "shared_state_action")
SHARED_KINDS = ("shared_state", "shared_state_action")
#: what a delta-state critic reads after the first sub-step (Maze's DeltaStateCriticComposer)
PREV_VALUE_KEY, PREV_VALUE_SHAPE = "prev_value", (1,)
#: a state-action critic's output in Maze's layout (its network takes `output_shapes`)
MAZE_Q_VALUE = "q_value"
#: what the composer passes a policy network that takes it: each action's distribution name
ACTION_DISTRIBUTIONS = "action_distributions"
SHARED_CRITIC = "shared"


@dataclasses.dataclass(frozen=True)
class Models:
    """What `compose` returns. Single-step envs use `policy`, `critic`, `actor_critic`; structured envs with
    several sub-steps use the dicts keyed by sub-step (a shared state critic sits under 'shared').

    Fields: `policies`, `critics`, `actor_critics` (modules by sub-step), `specs` (by network name: 'policy',
    'critic', 'policy[0]'; None for a plain nn.Module network), `in_shapes` (what each network reads),
    `obs_shapes`, `action_logits_shapes` (by sub-step), `critic_kind` ('state', 'shared_state', 'state_action',
    'shared_state_action', 'delta_state' or 'none') and `states` (recurrent state layouts by network name).

    Examples:
        >>> import gymnasium as gym
        >>> env = gym.make("CartPole-v1")
        >>> models = ps.compose("perceptspec/examples/cartpole.yaml", env.observation_space, env.action_space)
        >>> sorted(models.specs), models.in_shapes["policy"]
        (['critic', 'policy'], {'observation': (4,)})
    """

    policies: dict[StepKey, nn.Module]
    critics: dict[StepKey, nn.Module]
    actor_critics: dict[StepKey, nn.Module]
    specs: dict[str, Block | None]
    #: the input shapes of each network in `specs` (a critic's include keys shared from the policy)
    in_shapes: dict[str, Shapes]
    obs_shapes: dict[StepKey, Shapes]
    action_logits_shapes: dict[StepKey, Shapes]
    critic_kind: str
    #: the recurrent state of each network in `specs` that carries one (state keys, shapes, reset keys): inputs
    #: that are neither observations nor actions (`ps.initial_state(models.actor_critic, batch)` starts them)
    states: dict[str, StateLayout] = dataclasses.field(default_factory=dict)

    @property
    def policy(self) -> nn.Module:
        return _single(self.policies, "policies")

    @property
    def critic(self) -> nn.Module | None:
        return _single(self.critics, "critics") if self.critics else None

    @property
    def actor_critic(self) -> nn.Module:
        """One module computing action logits and the value in one call, shared embeddings computed once."""
        if self.critic_kind in ACTION_VALUE_KINDS:
            raise SpecError("Models", ["no actor_critic: a state-action critic reads the actions, which the policy "
                                       "samples from its logits; call models.policy, then models.critic"])
        if self.critic_kind == DELTA_STATE:
            raise SpecError("Models", ["no actor_critic: a delta-state critic reads the previous sub-step's value; "
                                       "call models.policies[step], then models.critics[step]"])
        return _single(self.actor_critics, "actor_critics")


def _single(modules: Mapping[StepKey, nn.Module], name: str) -> nn.Module:
    if not modules:
        raise SpecError("Models", [f"no {name}: a shared state critic spans all sub-steps; use models.policies[step] "
                                   f"and models.critics['{SHARED_CRITIC}']"])
    if len(modules) != 1:
        raise SpecError("Models", [f"this env has sub-steps {list(modules)}: use models.{name}[step]"])
    return next(iter(modules.values()))


def compose(config: Mapping[str, Any] | str | Path | None, observation_space: gym.Space[Any] | Mapping[Any, Any],
            action_space: gym.Space[Any] | Mapping[Any, Any], *, allow: Iterable[str] = ()) -> Models:
    """Build the policy (and critic) networks the config describes for the given spaces (Maze's custom model
    composer; the config's schema is in the module docstring above and on the site's "Composer config" page).

    Arguments:
        config: a mapping, or the path of a YAML file, in the seed's layout (`policy.networks`,
            `critic.networks`, `_target_` + keyword arguments), or a Maze model config as it is. None: the default
            networks (`perceptspec.templates.DEFAULT_CONFIG`), Stable-Baselines3's default actor and critic for these
            spaces (an MLP on vectors, a CNN per image, concatenation for dicts).
        observation_space: a gymnasium space; for a structured env a plain dict {sub-step: space} (a gymnasium
            Dict is one step).
        action_space: likewise.
        allow: modules (and their submodules) whose code the config's `_target_`s and TorchModel factories may
            import and call during this call, besides perceptspec's own and what `ps.allow` allowed.

    Returns:
        `Models`: `.policy`, `.critic`, `.actor_critic`, `.specs`, ...

    Raises:
        SpecError: an unknown config key (with a did-you-mean), a wrong value, a spec whose outputs do not fit
            the action space. NotAllowedError: a `_target_` outside the allow-list.

    Examples:
        >>> import gymnasium as gym, torch
        >>> env = gym.make("CartPole-v1")
        >>> models = ps.compose("perceptspec/examples/cartpole.yaml", env.observation_space, env.action_space)
        >>> out = models.actor_critic({"observation": torch.zeros(1, 4)})
        >>> out["action"].shape, out["value"].shape
        (torch.Size([1, 2]), torch.Size([1, 1]))
    """
    from perceptspec.templates import DEFAULT_CONFIG

    with allowing(allow, "compose(allow=...)"):
        return assemble_models(*_networks(load_config(DEFAULT_CONFIG if config is None else config),
                                          observation_space, action_space, materialize=True))


@dataclasses.dataclass(frozen=True)
class ComposedSpecs:
    """What `compose_specs` returns: the networks `compose` would build, worked out and checked (config, specs,
    shapes, heads) but not materialized. Fields as `Models`' (`specs` and `in_shapes` by network name):
    `policies` / `critics` hold the module of a plain `nn.Module` network, None for a spec."""

    policies: dict[StepKey, nn.Module | None]
    critics: dict[StepKey, nn.Module | None]
    specs: dict[str, Block | None]
    in_shapes: dict[str, Shapes]
    obs_shapes: dict[StepKey, Shapes]
    action_logits_shapes: dict[StepKey, Shapes]
    critic_kind: str
    states: dict[str, StateLayout] = dataclasses.field(default_factory=dict)


def compose_specs(config: Mapping[str, Any] | str | Path | None, observation_space: gym.Space[Any] | Mapping[Any, Any],
                  action_space: gym.Space[Any] | Mapping[Any, Any], *, allow: Iterable[str] = ()) -> ComposedSpecs:
    """`compose` without materializing: what the command line's summary, check and render read. Imports no torch
    unless a network is a plain `nn.Module` (or a TorchModel without declared out_shapes needs it to fold)."""
    from perceptspec.templates import DEFAULT_CONFIG

    with allowing(allow, "compose(allow=...)"):
        policies, critics, obs, logits, kind = _networks(load_config(DEFAULT_CONFIG if config is None else config),
                                                         observation_space, action_space, materialize=False)
    specs, in_shapes = _by_name(policies, critics)
    return ComposedSpecs({s: n.module for s, n in policies.items()}, {s: n.module for s, n in critics.items()},
                         specs, in_shapes, obs, logits, kind, network_states(specs))


def _networks(cfg: Mapping[str, Any], observation_space: gym.Space[Any] | Mapping[Any, Any],
              action_space: gym.Space[Any] | Mapping[Any, Any], materialize: bool
              ) -> tuple[dict[StepKey, Network], dict[StepKey, Network], dict[StepKey, Shapes],
                         dict[StepKey, Shapes], str]:
    """The policy and critic networks by sub-step (materialized, or specs only), the shapes the modules read by
    sub-step (raw observations), the logits shapes by sub-step, and the critic kind."""
    import gymnasium as gym

    from perceptspec import _observations as observations
    from perceptspec import spaces

    obs_spaces = _steps(observation_space, gym.Space)
    act_spaces = _steps(action_space, gym.Space)
    if set(obs_spaces) != set(act_spaces):
        raise SpecError("compose", [f"observation sub-steps {list(obs_spaces)} differ from action sub-steps "
                                    f"{list(act_spaces)}"])
    prep = observations.preprocessing(obs_spaces.values(), observations.Options.from_config(cfg.get("observations")))
    obs = {s: prep.shapes_of(space) for s, space in obs_spaces.items()}  # what the network functions are given
    overrides = _step_overrides(cfg.get("distribution_overrides") or {}, act_spaces)
    if cfg.get("distribution_mapper_config"):  # Maze's: one choice per action, overrides by action name win
        overrides = {s: {**spaces.from_maze_distribution_mapper(cfg["distribution_mapper_config"], act_spaces[s]),
                         **{k: v for k, v in overrides[s].items() if k in spaces.action_names(act_spaces[s])}}
                     for s in act_spaces}
    logits = {s: spaces.action_logits_shapes(act_spaces[s], overrides[s]) for s in obs}
    distributions = {s: spaces.distribution_names(act_spaces[s], overrides[s]) for s in obs}
    build = _Build(cfg.get("seed"), cfg.get("check", "always"), cfg.get("check_finite", False), prep, materialize)
    policy_cfg = cfg["policy"]
    critic_cfg = cfg.get("critic") or {"kind": "none"}
    kind = critic_cfg.get("kind", "state")

    policies = {step: _policy(policy_cfg, step, list(obs), obs[step], logits[step], distributions[step], build)
                for step in obs}
    plan = {} if kind == "none" else _critic_plan(kind, critic_cfg, obs, policies, act_spaces)
    critics = {step: _critic(critic_cfg, step, list(plan), inputs, outputs, build)
               for step, (inputs, outputs) in plan.items()}
    raw = {s: prep.raw_shapes_of(space) for s, space in obs_spaces.items()}  # what the modules read
    return policies, critics, raw, logits, kind


def _critic_plan(kind: str, section: Mapping[str, Any], obs: Mapping[StepKey, Shapes],
                 policies: Mapping[StepKey, Network], act_spaces: Mapping[StepKey, Any]
                 ) -> dict[StepKey, tuple[Shapes, Shapes | None]]:
    """Per critic network (per sub-step, or one shared): the shapes of its inputs, and for a state-action critic
    in Maze's layout the outputs it must give (None: 'value').

    Inputs are the observations plus the keys the policy shares (its extra outputs); a delta-state critic's after
    the first sub-step also read the previous sub-step's value ('prev_value', (1,)), as Maze's; a shared critic reads
    the union over sub-steps. A state-action critic reads the actions too (`spaces.action_shapes`: one-hot for
    Discrete) and outputs 'value' - unless its network takes `output_shapes` (Maze's layout): then it outputs
    'q_value', or, when every action it sees is Discrete, one '<action>_q_values' per action without reading them.
    """
    import gymnasium as gym

    from perceptspec import spaces

    inputs: dict[StepKey, Shapes] = {step: {**obs[step], **policies[step].exports} for step in obs}
    actions: dict[StepKey, dict[str, Any]] = {step: spaces.action_spaces(act_spaces[step]) for step in obs}
    if kind == DELTA_STATE:
        inputs = {step: {**shapes, PREV_VALUE_KEY: PREV_VALUE_SHAPE} if i else shapes
                  for i, (step, shapes) in enumerate(inputs.items())}
    if kind in SHARED_KINDS:
        inputs = {SHARED_CRITIC: _union(inputs)}
    if kind not in ACTION_VALUE_KINDS:
        return {step: (shapes, None) for step, shapes in inputs.items()}
    if kind in SHARED_KINDS:
        actions = {SHARED_CRITIC: _merged_actions(actions)}
    plan: dict[StepKey, tuple[Shapes, Shapes | None]] = {}
    for step, shapes in inputs.items():
        action_shapes = {name: spaces.action_shapes(space)["action"] for name, space in actions[step].items()}
        target, _ = _network(section, step, list(inputs), "critic")
        if not _takes(target, "output_shapes"):
            plan[step] = (_with_actions(shapes, action_shapes), None)
        elif all(isinstance(space, gym.spaces.Discrete) for space in actions[step].values()):
            plan[step] = (shapes, {f"{name}_q_values": shape for name, shape in action_shapes.items()})
        else:
            plan[step] = (_with_actions(shapes, action_shapes), {MAZE_Q_VALUE: (1,)})
    return plan


def _merged_actions(actions: Mapping[StepKey, Mapping[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for step, step_actions in actions.items():
        for name, space in step_actions.items():
            if merged.setdefault(name, space) != space:
                raise SpecError("shared state-action critic", [f"action {name!r} is {merged[name]} in one sub-step "
                                                               f"and {space} in sub-step {step}"])
    return merged


def _takes(target: str, parameter: str) -> bool:
    """Whether the network `target` names has a parameter the composer fills (`output_shapes`,
    `action_distributions`)."""
    try:
        return parameter in inspect.signature(resolve(target)).parameters
    except (TypeError, ValueError):
        return False  # `_build` reports a target without a signature


def assemble_models(policies: Mapping[StepKey, Network], critics: Mapping[StepKey, Network],
                    obs: dict[StepKey, Shapes], logits: dict[StepKey, Shapes], kind: str) -> Models:
    """The `Models` of built networks: the actor-critic of each sub-step, names and shapes (compose, `ps.load`)."""
    actor_critics: dict[StepKey, nn.Module] = {}
    specs, in_shapes = _by_name(policies, critics)
    states = network_states(specs)  # first: a state key shared by policy and critic would break the actor-critic
    for step in obs:
        critic = critics.get(SHARED_CRITIC if kind in SHARED_KINDS and len(obs) == 1 else step)
        if kind == "none":
            actor_critics[step] = policies[step].built
        elif critic is not None and kind not in (*ACTION_VALUE_KINDS, DELTA_STATE):
            actor_critics[step] = _actor_critic(policies[step], critic,  # state inputs besides observations
                                                {**obs[step], **policies[step].in_shapes, **critic.in_shapes})
    return Models({s: n.built for s, n in policies.items()}, {s: n.built for s, n in critics.items()},
                  actor_critics, specs, in_shapes, obs, logits, kind, states)


def _by_name(policies: Mapping[StepKey, Network], critics: Mapping[StepKey, Network]
             ) -> tuple[dict[str, Block | None], dict[str, Shapes]]:
    """The specs and input shapes of the networks by name ('policy', 'critic', 'policy[0]')."""
    named = {**{network_name("policy", s, len(policies)): n for s, n in policies.items()},
             **{network_name("critic", s, len(critics)): n for s, n in critics.items()}}
    return {name: n.spec for name, n in named.items()}, {name: n.in_shapes for name, n in named.items()}


@dataclasses.dataclass(frozen=True)
class Network:
    """One composed network: its module (None for a spec `compose_specs` did not materialize), its spec (None for
    a plain module), the shapes of what it reads, and for a policy the extra keys it outputs for the critic (a
    shared embedding) with their folded shapes."""

    module: nn.Module | None
    spec: Block | None
    in_shapes: Shapes
    exports: Shapes

    @property
    def built(self) -> nn.Module:
        assert self.module is not None, "compose materializes every network"
        return self.module


def _policy(section: Mapping[str, Any], step: StepKey, steps: list[StepKey], obs: Shapes, logits: Shapes,
            distributions: Mapping[str, str], build: _Build) -> Network:
    target, kwargs = _network(section, step, steps, "policy")
    where = f"policy network {target}"
    if _takes(target, ACTION_DISTRIBUTIONS):  # a network that builds its heads per distribution (the defaults)
        kwargs = {**kwargs, ACTION_DISTRIBUTIONS: dict(distributions)}
    built = _build(target, (obs, logits), kwargs, where)
    if not isinstance(built, Block):
        return _plain(built, obs, build, f"policy/{step}")
    graph, readable = build.observations.attach(_as_graph(built), obs, where)
    spec = _configure_policy(graph, section, logits, distributions)
    in_shapes = _used(spec, with_state_inputs(spec, readable, where), where)
    shapes = infer_shapes(spec, in_shapes)
    _check_outputs(spec, shapes, logits, where)
    exports = without_state_outputs(spec, {k: shapes[k] for k in spec.out_keys if k not in logits})
    return Network(_materialize(spec, in_shapes, build, f"policy/{step}"), spec, in_shapes, exports)


def _critic(section: Mapping[str, Any], step: StepKey, steps: list[StepKey], inputs: Shapes,
            outputs: Shapes | None, build: _Build) -> Network:
    target, kwargs = _network(section, step, steps, "critic")
    where = f"critic network {target}"
    if outputs is not None:
        kwargs = {**kwargs, "output_shapes": outputs}
    built = _build(target, (inputs,), kwargs, where)
    if not isinstance(built, Block):
        return _plain(built, inputs, build, f"critic/{step}")
    heads = set(outputs) if outputs is not None else {VALUE_KEY}
    graph, readable = build.observations.attach(_as_graph(built), inputs, where)
    spec = _apply_init(graph, section.get("init"), heads, "critic.init")
    in_shapes = _used(spec, with_state_inputs(spec, readable, where), where)
    shapes = infer_shapes(spec, in_shapes)
    if outputs is None:
        value_shape = shapes.get(VALUE_KEY)  # (1,) as Maze's LinearOutput(1) gives, or () once squeezed
        outputs = {VALUE_KEY: value_shape if value_shape == () else (1,)}
    _check_outputs(spec, shapes, outputs, where)
    return Network(_materialize(spec, in_shapes, build, f"critic/{step}"), spec, in_shapes, {})


def _plain(module: nn.Module, shapes: Shapes, build: _Build, scope: str) -> Network:
    """A plain nn.Module network; behind the observation conversion when it reads converted observations."""
    conversion = build.observations.conversion_graph(shapes)
    if conversion is None:
        return Network(module, None, dict(shapes), {})
    if not build.materialize:
        return Network(module, None, {**shapes, **conversion[2]}, {})
    from perceptspec._torch._converted import ConvertedInputs

    graph, names, raw = conversion
    converting = _materialize(graph, raw, build, f"{scope}/observations")
    assert converting is not None  # materialized: compose_specs returned above
    return Network(ConvertedInputs(converting, names, module), None, {**shapes, **raw}, {})


def _step_overrides(overrides: Mapping[str, Any], act_spaces: Mapping[StepKey, Any]) -> dict[StepKey, dict[str, Any]]:
    """The distribution overrides each sub-step's actions see: an override naming an action of another sub-step
    is left out (the spaces module refuses keys that name neither an action nor a space type)."""
    from perceptspec import spaces

    actions = {s: set(spaces.action_names(space)) for s, space in act_spaces.items()}
    every_action = set().union(*actions.values())
    return {s: {k: v for k, v in overrides.items() if k in actions[s] or k not in every_action} for s in act_spaces}


def _steps(space: Any, space_type: type) -> dict[StepKey, Any]:
    return {0: space} if isinstance(space, space_type) else dict(space)


def _network(section: Mapping[str, Any], step: StepKey, steps: list[StepKey], name: str) -> tuple[str, dict[str, Any]]:
    """The target and arguments of the network of `step`: `networks` is a list (one entry for all sub-steps, or
    one per sub-step in order) or a mapping by sub-step key (checked by load_config)."""
    networks = section["networks"]
    if isinstance(networks, Mapping):
        by_key = {str(k): entry for k, entry in networks.items()}  # YAML may give 0 where the env says '0', or back
        if sorted(by_key) != sorted(str(s) for s in steps):
            raise SpecError(f"config '{name}.networks'", [f"expected one network per sub-step {steps}, got networks "
                                                         f"for {list(networks)}"])
        entry = by_key[str(step)]
    elif len(networks) in (1, len(steps)):
        entry = networks[steps.index(step) if len(networks) == len(steps) else 0]
    else:
        raise SpecError(f"config '{name}.networks'", [f"expected 1 network or one per sub-step ({len(steps)}), "
                                                     f"got {len(networks)}"])
    kwargs = {k: v for k, v in entry.items() if k != "_target_"}
    return entry["_target_"], kwargs


_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


def resolve(target: str) -> Any:
    """The object an import path 'package.module.name' names, if the allow-list lets it be imported; nothing but
    importing happens."""
    if not _IMPORT_PATH.match(target):
        raise SpecError(f"_target_ {target!r}", ["expected an import path like 'package.module.function'"])
    module_name, _, attr = target.rpartition(".")
    try:
        return resolve_allowed(module_name, (attr,), target, f"_target_ {target!r}", "")
    except NotAllowedError:
        raise
    except (ImportError, AttributeError) as e:
        raise SpecError(f"_target_ {target!r}", [f"cannot be imported: {e}"]) from None


def _build(target: str, shapes: tuple[Shapes, ...], kwargs: dict[str, Any], where: str) -> Any:
    """Call a spec function or construct a plain nn.Module class with the shapes and the config's arguments."""
    fn = resolve(target)
    if not callable(fn):
        raise SpecError(where, [f"_target_ is not callable: {fn!r}"])
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        raise SpecError(where, [f"_target_ {target!r} has no signature to check the arguments against; wrap it in a "
                                f"function or nn.Module class of yours"]) from None
    _check_arguments(signature, shapes, kwargs, where)
    built = fn(*shapes, **kwargs)
    if isinstance(built, Block):
        return built
    from torch import nn  # a plain module's class imported torch already

    if not isinstance(built, nn.Module):
        raise SpecError(where, [f"expected a spec or an nn.Module, got {type(built).__name__}"])
    return built


def _check_arguments(signature: inspect.Signature, shapes: tuple[Shapes, ...], kwargs: Mapping[str, Any],
                     where: str) -> None:
    """The config's arguments fit the target's signature; a misspelt one gets a suggestion."""
    parameters = signature.parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        named = [n for n, p in parameters.items()
                 if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
        unknown = [k for k in kwargs if k not in named]
        if unknown:
            raise SpecError(where, [f"unknown argument {k!r}{did_you_mean(k, named[len(shapes):])}; it takes "
                                    f"{named[len(shapes):]}" for k in unknown])
    try:
        signature.bind(*shapes, **kwargs)
    except TypeError as e:
        raise SpecError(where, [f"arguments do not fit its signature: {e}"]) from None


def _as_graph(spec: Block) -> Graph:
    return spec if isinstance(spec, Graph) else Graph([spec], spec.out_keys)


def _check_outputs(spec: Block, shapes: Mapping[str, tuple[int, ...]], expected: Shapes, where: str) -> None:
    """The spec outputs every expected key with the expected shape (action logits, value)."""
    missing = [k for k in expected if k not in spec.out_keys]
    if missing:
        raise SpecError(where, [f"the spec's out_keys {list(spec.out_keys)} lack {missing}"])
    wrong = [f"out key '{k}' has shape {shapes[k]}, expected {s}" + (" (or () for a value)" if k == VALUE_KEY else "")
             for k, s in expected.items() if shapes[k] != s]
    if wrong:
        raise SpecError(where, wrong)


def _initializer(value: Any, where: str) -> Initializer:
    """An initialiser from the config: a descriptor, or a mapping such as {type: NormC, std: 0.01}."""
    init = value if isinstance(value, Initializer) else descriptor_from_dict(value, Initializer, where)
    assert isinstance(init, Initializer)
    return init


def _configure_policy(spec: Graph, section: Mapping[str, Any], logits: Shapes,
                      distributions: Mapping[str, str]) -> Block:
    """Apply the config's declarative init (body, heads) and action-head biases to a policy spec."""
    out: Block = _apply_init(spec, section.get("init"), set(logits), "policy.init")
    for action, value in (section.get("action_head_bias") or {}).items():
        if action not in logits:
            raise SpecError("policy.action_head_bias", [f"unknown action {action!r}; actions: {list(logits)}"])
        head = producer_of(out, action)
        if not isinstance(head, LinearOutput):
            raise SpecError("policy.action_head_bias", [f"action {action!r} is produced by "
                                                        f"{type(head).__name__}, not a LinearOutput"])
        biased = dataclasses.replace(head, bias=_bias(distributions[action], value, f"policy.action_head_bias.{action}"))
        out = replace_producer(out, action, biased)
    return out


def _bias(distribution: str, value: Any, where: str) -> CategoricalBias | BernoulliBias:
    if distribution == "categorical":
        return CategoricalBias(value)
    if distribution == "bernoulli":
        return BernoulliBias(value)
    raise SpecError(where, [f"head biasing needs a categorical or bernoulli action, this one is {distribution}"])


def _apply_init(spec: Graph, init_cfg: Any, head_keys: set[str], where: str) -> Block:
    if not init_cfg:
        return spec
    # a mapping with 'body' and/or 'heads' (checked by load_config), each an initialiser or null
    body = _initializer(init_cfg["body"], f"{where}.body") if init_cfg.get("body") is not None else None
    heads = _initializer(init_cfg["heads"], f"{where}.heads") if init_cfg.get("heads") is not None else None
    head_blocks = {id(producer_of(spec, k)) for k in head_keys}

    def edit(path: str, block: Block) -> Block:
        chosen = heads if id(block) in head_blocks else body
        return dataclasses.replace(block, init=chosen) if chosen is not None else block
    return map_blocks(spec, edit)


def _with_actions(inputs: Shapes, actions: Shapes) -> Shapes:
    """A state-action critic's inputs: the state's keys and one key per action."""
    clash = [k for k in actions if k in inputs]
    if clash:
        raise SpecError("state_action critic", [f"action key(s) {clash} are also observation keys; a Q critic reads "
                                                f"both, so their names must differ"])
    return {**inputs, **actions}


def _union(shapes: Mapping[StepKey, Shapes]) -> Shapes:
    out: Shapes = {}
    for step, step_shapes in shapes.items():
        for key, shape in step_shapes.items():
            if out.setdefault(key, shape) != shape:
                raise SpecError("shared state critic", [f"observation {key!r} has shape {out[key]} in one "
                                                        f"sub-step and {shape} in sub-step {step}"])
    return out


def _used(spec: Block, shapes: Shapes, where: str) -> Shapes:
    """The shapes of the inputs `spec` reads (a network may leave some observations unused)."""
    missing = [k for k in spec.in_keys if k not in shapes]
    if missing:
        raise SpecError(where, [f"reads {missing}, which are neither observations nor keys the policy outputs "
                                f"({list(shapes)})"])
    return {k: shapes[k] for k in spec.in_keys}


def network_name(role: str, step: StepKey, steps: int) -> str:
    return role if steps == 1 else f"{role}[{step}]"


@dataclasses.dataclass(frozen=True)
class _Build:
    """How the config asks every network to be materialized (and whether to, now: not for `compose_specs`)."""

    seed: int | None
    check: str
    check_finite: bool
    observations: Preprocessing  # the conversion blocks each network gets for what it reads
    materialize: bool


def _materialize(spec: Block, shapes: Shapes, build: _Build, scope: str) -> nn.Module | None:
    if not build.materialize:
        return None
    from perceptspec._torch import materialize

    return materialize(spec, shapes, seed=_scoped_seed(build.seed, scope), check=build.check,
                       check_finite=build.check_finite, allow_extra_keys=True)


def _scoped_seed(seed: int | None, scope: str) -> int | None:
    """Policy and critic draw from different streams even where their block paths coincide."""
    import hashlib

    if seed is None:
        return None
    return int.from_bytes(hashlib.sha256(f"{seed}/{scope}".encode()).digest()[:8], "little")


def _actor_critic(policy: Network, critic: Network, obs: Shapes) -> nn.Module:
    """One module for both (see `perceptspec._torch._actor_critic`)."""
    from perceptspec._torch._actor_critic import actor_critic

    return actor_critic(policy.built, policy.spec, critic.built, critic.spec, obs)


# --- functional edits of specs: new specs from old ones, never a mutation (updates go through the constructors) --

BlockEdit = Callable[[str, Block], Block]


def map_blocks(spec: Block, edit: BlockEdit) -> Block:
    """`spec` with `edit(path, block)` applied to every leaf block (paths as in errors: 'latent.dense')."""
    return _map(spec, edit, "")


def _map(spec: Block, edit: BlockEdit, prefix: str) -> Block:
    if isinstance(spec, Graph):
        blocks = {name: _map(block, edit, f"{prefix}{name}.") for name, block in spec.blocks.items()}
        return Graph(blocks, spec.out_keys, init=spec.init)
    return edit(prefix[:-1] or spec.out_keys[0], spec)


def producer_of(spec: Block, key: str) -> Block | None:
    """The leaf block that produces `key` (following nested graphs that export it), or None."""
    if not isinstance(spec, Graph):
        return spec if key in spec.out_keys else None
    for block in spec.blocks.values():
        if key in block.out_keys:
            return producer_of(block, key)
    return None


def replace_producer(spec: Block, key: str, replacement: Block) -> Block:
    """`spec` with the leaf block producing `key` replaced by `replacement`."""
    target = producer_of(spec, key)
    return map_blocks(spec, lambda path, block: replacement if block is target else block)

