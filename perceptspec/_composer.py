"""The custom model composer of the seed page: policy and critic networks from gymnasium spaces and a config.

The config (a dict, or a YAML file loaded safely) follows the seed's layout:

    policy:
      networks:                       # one entry for all sub-steps, or one per sub-step
        - _target_: perceptspec.examples.cartpole.cartpole_policy
          hidden_units: [16, 32]
      init: {body: {type: NormC, std: 1.0}, heads: {type: NormC, std: 0.01}}      # optional
      action_head_bias: {action: [0.3, 0.7]}                                      # optional
    critic:                           # optional; kind: state (default), shared_state or none
      kind: state
      networks:
        - _target_: perceptspec.examples.cartpole.cartpole_critic
    distribution_overrides: {Box: gaussian}                                       # optional
    seed: 0                                                                       # optional
    check: always                     # optional: materialize's input checks, always | first | off
    check_finite: false               # optional: true raises NonFiniteError on NaN or inf (materialize's)

A `_target_` is an import path, resolved by import only: either a spec function
`(obs_shapes, action_logits_shapes, **kwargs) -> spec` (critic: `(obs_shapes, **kwargs)`) or a plain
`torch.nn.Module` class with that constructor signature (seed Example 3). Keys a policy spec outputs besides its
actions (a shared embedding, seed Example 4) become critic inputs with the shapes the fold infers for them.
This module imports torch and gymnasium only when `compose` runs.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from perceptspec._errors import SpecError
from perceptspec._fold._serialize import descriptor_from_dict
from perceptspec._fold._shapes import infer_shapes
from perceptspec._spec import BernoulliBias, Block, CategoricalBias, Graph, Initializer, LinearOutput

if TYPE_CHECKING:
    import gymnasium as gym
    from torch import nn

Shapes = dict[str, tuple[int, ...]]
StepKey = int | str
CRITIC_KINDS = ("state", "shared_state", "none")
VALUE_KEY = "value"
SHARED_CRITIC = "shared"


@dataclasses.dataclass(frozen=True)
class Models:
    """What `compose` returns. Single-step envs use `policy`, `critic`, `actor_critic`; structured envs with
    several sub-steps use the dicts keyed by sub-step (a shared state critic sits under 'shared')."""

    policies: dict[StepKey, nn.Module]
    critics: dict[StepKey, nn.Module]
    actor_critics: dict[StepKey, nn.Module]
    specs: dict[str, Block | None]
    #: the input shapes of each network in `specs` (a critic's include keys shared from the policy)
    in_shapes: dict[str, Shapes]
    obs_shapes: dict[StepKey, Shapes]
    action_logits_shapes: dict[StepKey, Shapes]
    critic_kind: str

    @property
    def policy(self) -> nn.Module:
        return _single(self.policies, "policies")

    @property
    def critic(self) -> nn.Module | None:
        return _single(self.critics, "critics") if self.critics else None

    @property
    def actor_critic(self) -> nn.Module:
        """One module computing action logits and the value in one call, shared embeddings computed once."""
        return _single(self.actor_critics, "actor_critics")


def _single(modules: Mapping[StepKey, nn.Module], name: str) -> nn.Module:
    if not modules:
        raise SpecError("Models", [f"no {name}: a shared state critic spans all sub-steps; use models.policies[step] "
                                   f"and models.critics['{SHARED_CRITIC}']"])
    if len(modules) != 1:
        raise SpecError("Models", [f"this env has sub-steps {list(modules)}: use models.{name}[step]"])
    return next(iter(modules.values()))


def compose(config: Mapping[str, Any] | str | Path, observation_space: gym.Space[Any] | Mapping[Any, Any],
            action_space: gym.Space[Any] | Mapping[Any, Any]) -> Models:
    """Build the policy (and critic) networks the config describes for the given spaces.

    For a structured env pass a plain dict {sub-step: space} for both spaces (a gymnasium Dict is one step).
    """
    import gymnasium as gym

    from perceptspec import spaces

    cfg = _load(config)
    obs_spaces = _steps(observation_space, gym.Space)
    act_spaces = _steps(action_space, gym.Space)
    if set(obs_spaces) != set(act_spaces):
        raise SpecError("compose", [f"observation sub-steps {list(obs_spaces)} differ from action sub-steps "
                                    f"{list(act_spaces)}"])
    overrides = cfg.get("distribution_overrides") or {}
    obs = {s: spaces.obs_shapes(space) for s, space in obs_spaces.items()}
    logits = {s: spaces.action_logits_shapes(act_spaces[s], overrides) for s in obs}
    distributions = {s: spaces.distribution_names(act_spaces[s], overrides) for s in obs}
    build = _Build(cfg.get("seed"), cfg.get("check", "always"), cfg.get("check_finite", False))
    policy_cfg = _section(cfg, "policy")
    critic_cfg = cfg.get("critic") or {"kind": "none"}
    kind = critic_cfg.get("kind", "state")
    if kind not in CRITIC_KINDS:
        raise SpecError("critic.kind", [f"expected one of {list(CRITIC_KINDS)}, got {kind!r}"])

    policies = {step: _policy(policy_cfg, i, len(obs), obs[step], logits[step], distributions[step], build, step)
                for i, step in enumerate(obs)}
    critic_inputs = {step: {**obs[step], **policies[step].exports} for step in obs}
    if kind == "shared_state":
        critic_inputs = {SHARED_CRITIC: _union(critic_inputs)}
    critics = {} if kind == "none" else {
        step: _critic(critic_cfg, i, len(critic_inputs), shapes, build, step)
        for i, (step, shapes) in enumerate(critic_inputs.items())}

    actor_critics: dict[StepKey, nn.Module] = {}
    for step in obs:
        critic = critics.get(SHARED_CRITIC if kind == "shared_state" and len(obs) == 1 else step)
        if kind == "none":
            actor_critics[step] = policies[step].module
        elif critic is not None:
            actor_critics[step] = _actor_critic(policies[step], critic, obs[step])
    specs = {**{_name("policy", s, len(policies)): n.spec for s, n in policies.items()},
             **{_name("critic", s, len(critics)): n.spec for s, n in critics.items()}}
    in_shapes = {**{_name("policy", s, len(policies)): n.in_shapes for s, n in policies.items()},
                 **{_name("critic", s, len(critics)): n.in_shapes for s, n in critics.items()}}
    return Models({s: n.module for s, n in policies.items()}, {s: n.module for s, n in critics.items()},
                  actor_critics, specs, in_shapes, obs, logits, kind)


@dataclasses.dataclass(frozen=True)
class _Network:
    """One composed network: its module, its spec (None for a plain module), the shapes of what it reads, and
    for a policy the extra keys it outputs for the critic (a shared embedding) with their folded shapes."""

    module: nn.Module
    spec: Block | None
    in_shapes: Shapes
    exports: Shapes


def _policy(section: Mapping[str, Any], index: int, steps: int, obs: Shapes, logits: Shapes,
            distributions: Mapping[str, str], build: _Build, step: StepKey) -> _Network:
    target, kwargs = _network(section, index, steps, "policy")
    where = f"policy network {target}"
    built = _build(target, (obs, logits), kwargs, where)
    if not isinstance(built, Block):
        return _Network(built, None, dict(obs), {})
    spec = _configure_policy(_as_graph(built), section, logits, distributions)
    in_shapes = _used(spec, obs, where)
    shapes = infer_shapes(spec, in_shapes)
    _check_outputs(spec, shapes, logits, where)
    exports = {k: shapes[k] for k in spec.out_keys if k not in logits}
    return _Network(_materialize(spec, in_shapes, build, f"policy/{step}"), spec, in_shapes, exports)


def _critic(section: Mapping[str, Any], index: int, steps: int, inputs: Shapes, build: _Build,
            step: StepKey) -> _Network:
    target, kwargs = _network(section, index, steps, "critic")
    where = f"critic network {target}"
    built = _build(target, (inputs,), kwargs, where)
    if not isinstance(built, Block):
        return _Network(built, None, dict(inputs), {})
    spec = _configure_critic(_as_graph(built), section)
    in_shapes = _used(spec, inputs, where)
    _check_outputs(spec, infer_shapes(spec, in_shapes), {VALUE_KEY: (1,)}, where)
    return _Network(_materialize(spec, in_shapes, build, f"critic/{step}"), spec, in_shapes, {})


def _load(config: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    if isinstance(config, Mapping):
        return config
    try:
        data = yaml.safe_load(Path(config).read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"config {config}", [" ".join(str(e).split())]) from None
    if not isinstance(data, Mapping):
        raise SpecError(f"config {config}", [f"expected a mapping at the top level, got {type(data).__name__}"])
    return data


def _steps(space: Any, space_type: type) -> dict[StepKey, Any]:
    return {0: space} if isinstance(space, space_type) else dict(space)


def _section(cfg: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = cfg.get(name)
    if not isinstance(section, Mapping) or not section.get("networks"):
        raise SpecError(f"config '{name}'", ["expected a mapping with a non-empty 'networks' list"])
    return section


def _network(section: Mapping[str, Any], index: int, steps: int, name: str) -> tuple[str, dict[str, Any]]:
    networks = section.get("networks")
    if not isinstance(networks, Sequence) or not networks:
        raise SpecError(f"config '{name}.networks'", ["expected a non-empty list of networks"])
    if len(networks) not in (1, steps):
        raise SpecError(f"config '{name}.networks'", [f"expected 1 network or one per sub-step ({steps}), "
                                                     f"got {len(networks)}"])
    entry = networks[index if len(networks) == steps else 0]
    if not isinstance(entry, Mapping) or not isinstance(entry.get("_target_"), str):
        raise SpecError(f"config '{name}.networks[{index}]'", ["expected a mapping with a '_target_' import path"])
    kwargs = {k: v for k, v in entry.items() if k != "_target_"}
    return entry["_target_"], kwargs


_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


def resolve(target: str) -> Any:
    """The object an import path 'package.module.name' names; nothing but importing happens."""
    if not _IMPORT_PATH.match(target):
        raise SpecError(f"_target_ {target!r}", ["expected an import path like 'package.module.function'"])
    module_name, _, attr = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise SpecError(f"_target_ {target!r}", [f"cannot be imported: {e}"]) from None


def _build(target: str, shapes: tuple[Shapes, ...], kwargs: dict[str, Any], where: str) -> Any:
    """Call a spec function or construct a plain nn.Module class with the shapes and the config's arguments."""
    from torch import nn

    fn = resolve(target)
    if not callable(fn):
        raise SpecError(where, [f"_target_ is not callable: {fn!r}"])
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        raise SpecError(where, [f"_target_ {target!r} has no signature to check the arguments against; wrap it in a "
                                f"function or nn.Module class of yours"]) from None
    try:
        signature.bind(*shapes, **kwargs)
    except TypeError as e:
        raise SpecError(where, [f"arguments do not fit its signature: {e}"]) from None
    built = fn(*shapes, **kwargs)
    if not isinstance(built, (Block, nn.Module)):
        raise SpecError(where, [f"expected a spec or an nn.Module, got {type(built).__name__}"])
    return built


def _as_graph(spec: Block) -> Graph:
    return spec if isinstance(spec, Graph) else Graph([spec], spec.out_keys)


def _check_outputs(spec: Block, shapes: Mapping[str, tuple[int, ...]], expected: Shapes, where: str) -> None:
    """The spec outputs every expected key with the expected shape (action logits, value)."""
    missing = [k for k in expected if k not in spec.out_keys]
    if missing:
        raise SpecError(where, [f"the spec's out_keys {list(spec.out_keys)} lack {missing}"])
    wrong = [f"out key '{k}' has shape {shapes[k]}, expected {s}" for k, s in expected.items() if shapes[k] != s]
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


def _configure_critic(spec: Graph, section: Mapping[str, Any]) -> Block:
    return _apply_init(spec, section.get("init"), {VALUE_KEY}, "critic.init")


def _apply_init(spec: Graph, init_cfg: Any, head_keys: set[str], where: str) -> Block:
    if not init_cfg:
        return spec
    if not isinstance(init_cfg, Mapping) or not set(init_cfg) <= {"body", "heads"}:
        raise SpecError(where, [f"expected a mapping with 'body' and/or 'heads', got {init_cfg!r}"])
    body = _initializer(init_cfg["body"], f"{where}.body") if "body" in init_cfg else None
    heads = _initializer(init_cfg["heads"], f"{where}.heads") if "heads" in init_cfg else None
    head_blocks = {id(producer_of(spec, k)) for k in head_keys}

    def edit(path: str, block: Block) -> Block:
        chosen = heads if id(block) in head_blocks else body
        return dataclasses.replace(block, init=chosen) if chosen is not None else block
    return map_blocks(spec, edit)


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


def _name(role: str, step: StepKey, steps: int) -> str:
    return role if steps == 1 else f"{role}[{step}]"


@dataclasses.dataclass(frozen=True)
class _Build:
    """How the config asks every network to be materialized."""

    seed: int | None
    check: str
    check_finite: bool


def _materialize(spec: Block, shapes: Shapes, build: _Build, scope: str) -> nn.Module:
    from perceptspec._torch import materialize

    return materialize(spec, shapes, seed=_scoped_seed(build.seed, scope), check=build.check,
                       check_finite=build.check_finite, allow_extra_keys=True)


def _scoped_seed(seed: int | None, scope: str) -> int | None:
    """Policy and critic draw from different streams even where their block paths coincide."""
    import hashlib

    if seed is None:
        return None
    return int.from_bytes(hashlib.sha256(f"{seed}/{scope}".encode()).digest()[:8], "little")


def _actor_critic(policy: _Network, critic: _Network, obs: Shapes) -> nn.Module:
    """One module for both (see `perceptspec._torch._actor_critic`)."""
    from perceptspec._torch._actor_critic import actor_critic

    return actor_critic(policy.module, policy.spec, critic.module, critic.spec, obs)


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

