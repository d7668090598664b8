"""Maze's model configs, read as data: Maze's class paths are recognised *names* (never imported) and a Maze model
config (`CustomModelComposer` or `TemplateModelComposer`) is translated into perceptspec's composer config.

What the translation maps (everything else in a Maze model config is an error naming the key):
- `_target_` of the config: Maze's CustomModelComposer (networks given) or TemplateModelComposer (a `model_builder`);
- `policy._target_`: Maze's ProbabilisticPolicyComposer (the only policy composer Maze has);
  `policy.substeps_with_separate_agent_nets`: must be empty (perceptspec builds one network per sub-step);
- `critic._target_`: Maze's critic composers, as critic kinds (`StateCriticComposer` and `StepStateCriticComposer`
  -> 'state', `SharedStateCriticComposer` -> 'shared_state' (`stack_observations: false`), `DeltaStateCriticComposer`
  -> 'delta_state', `StateActionCriticComposer` and `StepStateActionCriticComposer` -> 'state_action',
  `SharedStateActionCriticComposer` -> 'shared_state_action'); `critic: ~` means no critic;
- network `_target_`s naming Maze's built-in nets (`maze.perception.models.built_in...`) -> perceptspec.templates;
  any other `_target_` is the user's own network (a perceptspec spec function or nn.Module class, allow-listed);
- `model_builder` (Maze's ConcatModelBuilder) -> perceptspec.templates' template networks;
- `distribution_mapper_config` is kept: the composer resolves it per sub-step (`spaces.from_maze_distribution_mapper`,
  Maze's distribution classes by name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perceptspec._errors import SpecError, did_you_mean, refuse

#: Maze's perception block classes -> perceptspec block types (same parameter names)
MAZE_BLOCKS = {
    "DenseBlock": "Dense", "LinearOutputBlock": "LinearOutput", "StridedConvolutionBlock": "StridedConv",
    "StridedConvolutionDenseBlock": "StridedConvDense", "VGGConvolutionBlock": "VGGConv",
    "VGGConvolutionDenseBlock": "VGGConvDense", "VGGConvolutionGAPBlock": "VGGConvGAP",
    "FlattenDenseBlock": "FlattenDense", "LSTMBlock": "LSTM", "LSTMLastStepBlock": "LSTMLastStep",
    "GraphConvBlock": "GraphConv", "GraphAttentionBlock": "GraphAttention", "ActionMaskingBlock": "ActionMasking",
    "ConcatenationBlock": "Concat", "CorrelationBlock": "Correlation", "FlattenBlock": "Flatten",
    "GlobalAveragePoolingBlock": "GlobalAveragePooling", "MaskedGlobalPoolingBlock": "MaskedGlobalPooling",
    "MultiIndexSlicingBlock": "MultiIndexSlicing", "RepeatToMatchBlock": "RepeatToMatch",
    "SelfAttentionConvBlock": "SelfAttentionConv", "SelfAttentionSeqBlock": "SelfAttentionSeq",
    "MultiHeadAttentionBlock": "MultiHeadAttention", "SliceBlock": "Slice",
}
#: Maze blocks that hold code (a callable, a module) and so cannot be data, with what to write instead
MAZE_CODE_BLOCKS = {
    "FunctionalBlock": "Functional with a function registered by name (ps.register_function), params as data",
    "TorchModelBlock": "TorchModel naming an allow-listed module factory ('package.module:Factory')",
}
MAZE_BLOCKS_PACKAGE = "maze.perception.blocks."

CUSTOM_COMPOSER = "maze.perception.models.custom_model_composer.CustomModelComposer"
TEMPLATE_COMPOSER = "maze.perception.models.template_model_composer.TemplateModelComposer"
POLICY_COMPOSERS = ("maze.perception.models.policies.ProbabilisticPolicyComposer",
                    "maze.perception.models.policies.probabilistic_policy_composer.ProbabilisticPolicyComposer")
CONCAT_BUILDERS = ("maze.perception.builders.ConcatModelBuilder",
                   "maze.perception.builders.concat.ConcatModelBuilder")
_CRITICS = "maze.perception.models.critics."
CRITIC_KINDS = {
    "StateCriticComposer": "state", "StepStateCriticComposer": "state", "SharedStateCriticComposer": "shared_state",
    "DeltaStateCriticComposer": "delta_state", "StateActionCriticComposer": "state_action",
    "StepStateActionCriticComposer": "state_action", "SharedStateActionCriticComposer": "shared_state_action",
}
CRITIC_MODULES = {
    "StateCriticComposer": "", "StepStateCriticComposer": "step_state_critic_composer.",
    "SharedStateCriticComposer": "shared_state_critic_composer.",
    "DeltaStateCriticComposer": "delta_state_critic_composer.", "StateActionCriticComposer": "",
    "StepStateActionCriticComposer": "step_state_action_critic_composer.",
    "SharedStateActionCriticComposer": "shared_state_action_critics_composer.",
}
_BUILT_IN = "maze.perception.models.built_in."
BUILT_IN_NETWORKS = {
    f"{_BUILT_IN}flatten_concat.FlattenConcatPolicyNet": "flatten_concat_policy",
    f"{_BUILT_IN}flatten_concat.FlattenConcatStateValueNet": "flatten_concat_state_value",
    f"{_BUILT_IN}flatten_concat.FlattenConcatStateActionValueNet": "flatten_concat_state_action_value",
    f"{_BUILT_IN}flatten_concat.FlattenConcatCategoricalStateValueNet": "flatten_concat_categorical_state_value",
    f"{_BUILT_IN}flatten_concat_shared_embedding.FlattenConcatSharedEmbeddingPolicyNet":
        "flatten_concat_shared_embedding_policy",
    f"{_BUILT_IN}flatten_concat_shared_embedding.FlattenConcatSharedEmbeddingStateValueNet":
        "flatten_concat_shared_embedding_state_value",
    f"{_BUILT_IN}flatten_concat_masked.FlattenConcatMaskedPolicyNet": "flatten_concat_masked_policy",
}
TEMPLATES = "perceptspec.templates."
def is_maze_config(cfg: Mapping[str, Any]) -> bool:
    """Whether `cfg` is a Maze model config (its `_target_` names a Maze model composer)."""
    target = cfg.get("_target_")
    return isinstance(target, str) and target.startswith("maze.")


def maze_block_type(block_type: str, where: str) -> tuple[str, str]:
    """(the name blocks of this type are named after, the perceptspec block type) for a perceptspec block type
    ('Dense') or a Maze block class path ('maze.perception.blocks.DenseBlock', any module path under
    maze.perception.blocks)."""
    from perceptspec._spec import Block
    from perceptspec._spec._descriptor import descriptor_kind

    if block_type.startswith("maze."):
        name = block_type.rpartition(".")[2]
        if block_type.startswith(MAZE_BLOCKS_PACKAGE) and name in MAZE_BLOCKS:
            return name, MAZE_BLOCKS[name]
        if block_type.startswith(MAZE_BLOCKS_PACKAGE) and name in MAZE_CODE_BLOCKS:
            refuse(where, [f"block_type {block_type!r} holds code, which a config cannot; use "
                                    f"{MAZE_CODE_BLOCKS[name]}"])
        refuse(where, [f"block_type {block_type!r} is not one of Maze's perception blocks"
                                f"{did_you_mean(name, list(MAZE_BLOCKS))}; known: {sorted(MAZE_BLOCKS)}"])
    try:
        kind = descriptor_kind(block_type)
    except SpecError:
        kind = None
    if kind is None or not issubclass(kind, Block):
        refuse(where, [f"block_type {block_type!r} is neither a perceptspec block type nor a Maze block "
                                f"path{did_you_mean(block_type, list(MAZE_BLOCKS.values()))}"])
    return block_type, block_type


def translate(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """perceptspec's composer config for a Maze model config (see the module docstring)."""
    target = cfg["_target_"]
    if target not in (CUSTOM_COMPOSER, TEMPLATE_COMPOSER):
        refuse("config '_target_'", [
            f"{target!r} is not a Maze model composer perceptspec reads; expected {CUSTOM_COMPOSER!r} or "
            f"{TEMPLATE_COMPOSER!r}"])
    template = target == TEMPLATE_COMPOSER
    known = {"_target_", "policy", "critic", "distribution_mapper_config", *(("model_builder",) if template else ())}
    problems = [f"unknown key {k!r} in a Maze {target.rpartition('.')[2]} config{did_you_mean(k, known)}; known "
                f"keys: {sorted(known)}" for k in cfg if k not in known and k not in _NATIVE_KEYS]
    if problems:
        refuse("config", problems)
    native: dict[str, Any] = {k: v for k, v in cfg.items() if k in _NATIVE_KEYS}
    builder = _model_builder(cfg.get("model_builder")) if template else None
    native["policy"] = _policy(cfg.get("policy"), builder)
    critic = _critic(cfg.get("critic"), builder)
    if critic is not None:
        native["critic"] = critic
    if cfg.get("distribution_mapper_config"):  # resolved per sub-step by `spaces.from_maze_distribution_mapper`
        native["distribution_mapper_config"] = cfg["distribution_mapper_config"]
    return native


#: perceptspec's own top-level keys, which a Maze config may carry alongside Maze's
_NATIVE_KEYS = ("seed", "check", "check_finite")


def _policy(section: object, builder: Mapping[str, Any] | None) -> dict[str, Any]:
    where = "config 'policy'"
    if not isinstance(section, Mapping):
        refuse(where, [f"expected a mapping with Maze's policy composer as '_target_', got {section!r}"])
    if section.get("_target_") not in POLICY_COMPOSERS:
        refuse(where, [f"_target_ {section.get('_target_')!r} is not Maze's policy composer; expected "
                                f"{POLICY_COMPOSERS[0]!r}"])
    known = ("_target_", "networks", "substeps_with_separate_agent_nets")
    _unknown_keys(section, known, where)
    if section.get("substeps_with_separate_agent_nets"):
        refuse(where, [
            f"substeps_with_separate_agent_nets {list(section['substeps_with_separate_agent_nets'])}: perceptspec "
            f"builds one network per sub-step, shared by its agents; for separate networks give each agent its own "
            f"sub-step (and network)"])
    if builder is not None:
        if "networks" in section:
            refuse(where, ["a TemplateModelComposer builds the networks from 'model_builder'; remove "
                                    "'networks' (Maze refuses them too)"])
        return {"networks": _template_networks("template_policy", builder, shared=True)}
    if "networks" not in section:
        refuse(where, ["a CustomModelComposer needs 'networks' (one per sub-step, or one for all)"])
    return {"networks": _networks(section["networks"], "config 'policy.networks'")}


def _critic(section: object, builder: Mapping[str, Any] | None) -> dict[str, Any] | None:
    where = "config 'critic'"
    if section is None:
        return None
    if not isinstance(section, Mapping):
        refuse(where, [f"expected a mapping with a Maze critic composer as '_target_' (or null), got "
                                f"{section!r}"])
    kind = _critic_kind(section.get("_target_"), where)
    known = ("_target_", "networks", *(("stack_observations",) if kind == "shared_state" else ()))
    _unknown_keys(section, known, where)
    if section.get("stack_observations"):
        refuse(where, ["stack_observations: true stacks the observations of a sub-step's agents; "
                                "perceptspec composes one agent per sub-step, so set it to false"])
    if builder is not None:
        if "networks" in section:
            refuse(where, ["a TemplateModelComposer builds the networks from 'model_builder'; remove "
                                    "'networks' (Maze refuses them too)"])
        if builder.get("shared_embedding_keys") and kind not in ("state", "delta_state"):
            refuse(where, [f"a {kind} critic cannot share the policy's embedding (Maze refuses it too); "
                                    f"set model_builder.shared_embedding_keys to ~ or use a state critic"])
        action_value = kind in ("state_action", "shared_state_action")
        function = "template_state_action_value" if action_value else "template_state_value"
        return {"kind": kind, "networks": _template_networks(function, builder, shared=kind in ("state",
                                                                                                 "delta_state"))}
    if "networks" not in section:
        refuse(where, ["a CustomModelComposer critic needs 'networks'"])
    return {"kind": kind, "networks": _networks(section["networks"], "config 'critic.networks'")}


def _critic_kind(target: object, where: str) -> str:
    for name, kind in CRITIC_KINDS.items():
        if target in (f"{_CRITICS}{name}", f"{_CRITICS}{CRITIC_MODULES[name]}{name}"):
            return kind
    name = str(target).rpartition(".")[2]
    refuse(where, [f"_target_ {target!r} is not one of Maze's critic composers"
                            f"{did_you_mean(name, list(CRITIC_KINDS))}; known: "
                            f"{[_CRITICS + n for n in CRITIC_KINDS]}"])


def _networks(networks: object, where: str) -> list[Any] | dict[Any, Any]:
    """Maze's networks (a list, or a mapping by sub-step) with built-in net paths mapped to perceptspec's."""
    if isinstance(networks, Mapping):
        return {step: _network(entry, f"{where}[{step!r}]") for step, entry in networks.items()}
    if isinstance(networks, list):
        return [_network(entry, f"{where}[{i}]") for i, entry in enumerate(networks)]
    refuse(where, [f"expected a list of networks or a mapping of sub-steps to networks, got {networks!r}"])


def _network(entry: object, where: str) -> object:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("_target_"), str):
        return entry  # the composer's schema reports it
    target = entry["_target_"]
    if target in BUILT_IN_NETWORKS:
        return {**entry, "_target_": TEMPLATES + BUILT_IN_NETWORKS[target]}
    if target.startswith("maze."):
        name = target.rpartition(".")[2]
        refuse(where, [
            f"_target_ {target!r} is a Maze class perceptspec does not know"
            f"{did_you_mean(name, [p.rpartition('.')[2] for p in BUILT_IN_NETWORKS])}; Maze's built-in nets map to "
            f"perceptspec.templates, your own nets need a perceptspec spec function or nn.Module class as _target_"])
    return entry


def _model_builder(section: object) -> dict[str, Any]:
    where = "config 'model_builder'"
    if not isinstance(section, Mapping):
        refuse(where, [f"a TemplateModelComposer needs a model_builder mapping, got {section!r}"])
    if section.get("_target_") not in CONCAT_BUILDERS:
        refuse(where, [f"_target_ {section.get('_target_')!r} is not Maze's ConcatModelBuilder (the one "
                                f"template builder Maze has); expected {CONCAT_BUILDERS[0]!r}"])
    known = ("_target_", "modality_config", "observation_modality_mapping", "shared_embedding_keys")
    _unknown_keys(section, known, where)
    missing = [k for k in known[1:3] if not isinstance(section.get(k), Mapping)]
    if missing:
        refuse(where, [f"{k}: required, a mapping" for k in missing])
    return {k: section.get(k) for k in known[1:]}


def _template_networks(function: str, builder: Mapping[str, Any], shared: bool) -> list[Any] | dict[Any, Any]:
    """The network entries of a template policy or critic: one for all sub-steps, or one per sub-step when the
    shared embedding keys differ by sub-step."""
    base = {"_target_": TEMPLATES + function, "modality_config": builder["modality_config"],
            "observation_modality_mapping": builder["observation_modality_mapping"]}
    keys = builder.get("shared_embedding_keys") or []
    if not shared:
        return [base]
    if isinstance(keys, Mapping):
        return {step: {**base, "shared_embedding_keys": list(step_keys or [])} for step, step_keys in keys.items()}
    return [{**base, "shared_embedding_keys": list(keys)}] if keys else [base]


def _unknown_keys(section: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = [k for k in section if k not in known]
    if unknown:
        refuse(where, [f"unknown key {k!r}{did_you_mean(k, known)}; known keys: {list(known)}"
                                for k in unknown])
