"""Maze's template and built-in models as spec functions: ordinary specs, so summaries, drawings and YAML work.

Template models (Maze's `TemplateModelComposer` with its `ConcatModelBuilder`) are built from a *modality config*
instead of hand-written networks:

    modality_config:                 # per modality a block type and its parameters; hidden / recurrence may be {}
      feature: {block_type: Dense, block_params: {hidden_units: [128], non_lin: tanh}}
      image: {block_type: maze.perception.blocks.StridedConvolutionDenseBlock, block_params: {...}}
      hidden: {block_type: Dense, block_params: {hidden_units: [128], non_lin: tanh}}
      recurrence: {}
    observation_modality_mapping: {observation: feature}

The perception net runs one block per mapped observation (named `<observation>_<BlockType>`, as Maze names them;
unmapped observations are not read, and a warning is logged as Maze prints one), concatenates their outputs ('concat'), then
the optional 'hidden' and 'recurrence' blocks; whichever comes last outputs 'latent'. Policy heads, the value head and
Q heads are `LinearOutput`s on 'latent'. Weights start as Maze's template composer starts them: NormC(1.0) for the
perception net (a recurrent cell keeps torch's default under NormC, as Maze leaves nn.LSTM), NormC(0.01) for the heads.
`block_type` is a perceptspec block name ('Dense') or Maze's class path
(`maze.perception.blocks.DenseBlock`), recognised by name, never imported.

Shared embedding (`shared_embedding_keys`): the policy also outputs those keys of its perception net, and the state
critic starts from them, building only the blocks the policy does not compute (Maze's shared embedding).

The built-in FlattenConcat family (Maze's `maze.perception.models.built_in`) takes the same arguments as Maze's
classes: observations flattened and concatenated, a Dense body, heads.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from perceptspec._errors import did_you_mean, refuse
from perceptspec._maze import maze_block_type
from perceptspec._spec import (ActionMasking, Block, Concat, Dense, Flatten, Functional, Graph, Initializer,
                               LinearOutput, NormC, Orthogonal, StateIndependentLogStd)

__all__ = ["concat_perception", "default_critic", "default_modalities", "default_policy", "template_policy",
           "template_state_value", "template_state_action_value",
           "flatten_concat_policy", "flatten_concat_state_value", "flatten_concat_state_action_value",
           "flatten_concat_categorical_state_value", "flatten_concat_shared_embedding_policy",
           "flatten_concat_shared_embedding_state_value", "flatten_concat_masked_policy"]

Shapes = Mapping[str, Sequence[int]]
ModalityConfig = Mapping[str, Mapping[str, Any]]

_log = logging.getLogger(__name__)
CONCAT, HIDDEN, RECURRENCE, LATENT = "concat", "hidden", "recurrence", "latent"
BODY_INIT, HEAD_INIT = NormC(std=1.0), NormC(std=0.01)


def concat_perception(obs_shapes: Shapes, modality_config: ModalityConfig,
                      observation_modality_mapping: Mapping[str, str]) -> Graph:
    """Maze's ConcatModelBuilder: one block per mapped observation, 'concat', then 'hidden' and 'recurrence' when
    configured; the last one outputs 'latent'.

    Examples:
        >>> from perceptspec.templates import concat_perception
        >>> modalities = {"feature": {"block_type": "Dense", "block_params": {"hidden_units": [32], "non_lin": "tanh"}},
        ...               "hidden": {"block_type": "maze.perception.blocks.DenseBlock",
        ...                          "block_params": {"hidden_units": [16], "non_lin": "torch.nn.ReLU"}},
        ...               "recurrence": {}}
        >>> net = concat_perception({"observation": (4,)}, modalities, {"observation": "feature"})
        >>> sorted(net.blocks), ps.infer_shapes(net, {"observation": (4,)})["latent"]
        (['concat', 'latent', 'observation_Dense'], (16,))
    """
    where = "modality_config"
    _check_modalities(modality_config, observation_modality_mapping)
    blocks: dict[str, Block] = {}
    for obs_key in obs_shapes:
        modality = observation_modality_mapping.get(obs_key)
        if modality is None:
            _log.warning("template model: observation %r is not in observation_modality_mapping (%s), so the network "
                         "does not read it", obs_key, sorted(observation_modality_mapping))
            continue
        name, block = _modality_block(modality_config[modality], obs_key, f"{where}.{modality}")
        blocks[f"{obs_key}_{name}"] = _renamed(block, f"{obs_key}_{name}")
    if not blocks:
        refuse("observation_modality_mapping", [
            f"maps none of the observations {list(obs_shapes)} to a modality, so the network reads nothing"])
    stages = [stage for stage in (HIDDEN, RECURRENCE) if modality_config.get(stage)]
    keys = [CONCAT, *stages]
    keys[-1] = LATENT
    blocks[keys[0]] = Concat(in_keys=list(blocks), out_keys=keys[0], concat_dim=-1)
    for stage, in_key, out_key in zip(stages, keys, keys[1:]):
        _, block = _modality_block(modality_config[stage], in_key, f"{where}.{stage}")
        blocks[out_key] = _renamed(block, out_key)
    return Graph(blocks, out_keys=LATENT, init=BODY_INIT)


def template_policy(obs_shapes: Shapes, action_logits_shapes: Shapes, modality_config: ModalityConfig,
                    observation_modality_mapping: Mapping[str, str],
                    shared_embedding_keys: Sequence[str] = ()) -> Graph:
    """The template composer's policy: the perception net, one LinearOutput head per action on 'latent'; with
    shared embedding keys the policy outputs them too (for the critic).

    Examples:
        >>> from perceptspec.templates import template_policy
        >>> modalities = {"feature": {"block_type": "Dense", "block_params": {"hidden_units": [32], "non_lin": "tanh"}},
        ...               "hidden": {"block_type": "maze.perception.blocks.DenseBlock",
        ...                          "block_params": {"hidden_units": [16], "non_lin": "torch.nn.ReLU"}},
        ...               "recurrence": {}}
        >>> policy = template_policy({"observation": (4,)}, {"action": (2,)}, modalities, {"observation": "feature"})
        >>> ps.infer_shapes(policy, {"observation": (4,)})["action"]
        (2,)
    """
    return _policy(concat_perception(obs_shapes, modality_config, observation_modality_mapping),
                   action_logits_shapes, shared_embedding_keys, BODY_INIT, HEAD_INIT)


def template_state_value(obs_shapes: Shapes, modality_config: ModalityConfig,
                         observation_modality_mapping: Mapping[str, str],
                         shared_embedding_keys: Sequence[str] = ()) -> Graph:
    """The template composer's state critic: the perception net and a 'value' head. With shared embedding keys (which
    the policy outputs and the composer passes in) only the blocks downstream of them are built: sharing 'latent'
    leaves the critic its value head alone, as in Maze. Inputs are read in sorted key order: Maze's critic composers
    hand the template a gymnasium Dict they build (the union over sub-steps; with the previous value; with the actions),
    which sorts its keys, so the per-key blocks and the concatenation follow that order.

    Examples:
        >>> from perceptspec.templates import template_state_value
        >>> modalities = {"feature": {"block_type": "Dense", "block_params": {"hidden_units": [32], "non_lin": "tanh"}},
        ...               "hidden": {"block_type": "maze.perception.blocks.DenseBlock",
        ...                          "block_params": {"hidden_units": [16], "non_lin": "torch.nn.ReLU"}},
        ...               "recurrence": {}}
        >>> critic = template_state_value({"observation": (4,)}, modalities, {"observation": "feature"})
        >>> sorted(critic.blocks), ps.count_parameters(critic, {"observation": (4,)})
        (['concat', 'latent', 'observation_Dense', 'value'], 705)
    """
    net = concat_perception({k: s for k, s in sorted(obs_shapes.items()) if k not in shared_embedding_keys},
                            modality_config, observation_modality_mapping)
    return _state_value(net, shared_embedding_keys, BODY_INIT, HEAD_INIT)


def _policy(net: Graph, action_logits_shapes: Shapes, shared_embedding_keys: Sequence[str], body_init: Initializer,
            head_init: Initializer) -> Graph:
    shared = _shared_keys(net, shared_embedding_keys)
    heads = {action: LinearOutput(in_keys=LATENT, out_keys=action, output_units=_units(shape, action),
                                  init=head_init) for action, shape in action_logits_shapes.items()}
    return Graph({**net.blocks, **heads}, out_keys=[*action_logits_shapes, *shared], init=body_init)


def _state_value(net: Graph, shared_embedding_keys: Sequence[str], body_init: Initializer,
                 head_init: Initializer) -> Graph:
    shared = _shared_keys(net, shared_embedding_keys)
    blocks = dict(net.blocks)
    for name in _upstream(net, shared):
        del blocks[name]
    value = LinearOutput(in_keys=LATENT, out_keys="value", output_units=1, init=head_init)
    return Graph({**blocks, "value": value}, out_keys="value", init=body_init)


def template_state_action_value(obs_shapes: Shapes, output_shapes: Shapes, modality_config: ModalityConfig,
                                observation_modality_mapping: Mapping[str, str]) -> Graph:
    """The template composer's Q critic: the perception net over the observations (and the actions the modality
    mapping names, for Q(s, a)), one head per output ('q_value', or '<action>_q_values' for discrete actions).
    Its inputs are read in sorted key order (see `template_state_value`).

    Examples:
        >>> from perceptspec.templates import template_state_action_value
        >>> modalities = {"feature": {"block_type": "Dense", "block_params": {"hidden_units": [32]}},
        ...               "hidden": {}, "recurrence": {}}
        >>> q = template_state_action_value({"observation": (3,), "action": (1,)}, {"q_value": (1,)}, modalities,
        ...                                 {"observation": "feature", "action": "feature"})
        >>> sorted(q.blocks)
        ['action_Dense', 'latent', 'observation_Dense', 'q_value']
    """
    net = concat_perception(dict(sorted(obs_shapes.items())), modality_config, observation_modality_mapping)
    heads = {key: LinearOutput(in_keys=LATENT, out_keys=key, output_units=_units(shape, key), init=HEAD_INIT)
             for key, shape in output_shapes.items()}
    return Graph({**net.blocks, **heads}, out_keys=list(output_shapes), init=BODY_INIT)


# --- default networks (SB3's defaults, as template models) ---------------------------------------------------------

#: Stable-Baselines3's on-policy defaults (ActorCriticPolicy): separate [64, 64] tanh MLPs for the policy and the
#: value on the concatenated features; orthogonal init, gain sqrt(2) for the body, 0.01 for the policy heads, 1 for
#: the value head
DEFAULT_NET_ARCH = (64, 64)
DEFAULT_NON_LIN = "tanh"
DEFAULT_BODY_INIT, DEFAULT_POLICY_HEAD_INIT, DEFAULT_VALUE_HEAD_INIT = (Orthogonal(gain=math.sqrt(2)),
                                                                        Orthogonal(gain=0.01), Orthogonal(gain=1.0))
#: SB3's NatureCNN (Mnih et al. 2015): 32 8x8 stride 4, 64 4x4 stride 2, 64 3x3 stride 1, ReLU, then Linear + ReLU to
#: 512 features for an image alone, 256 beside other observations (CombinedExtractor); it needs images of 36x36 and up
NATURE_CNN = {"hidden_channels": [32, 64, 64], "hidden_kernels": [8, 4, 3], "hidden_strides": [4, 2, 1],
              "non_lin": "relu"}
#: smaller images (MiniGrid's 7x7) are flattened like any other observation: SB3's CnnPolicy and MultiInputPolicy
#: fail on them (the NatureCNN's kernels do not fit), so its MlpPolicy, which flattens them, is the default that runs
NATURE_CNN_MIN_SIZE = 36


def default_modalities(obs_shapes: Shapes, net_arch: Sequence[int] | None = None,
                       non_lin: str = DEFAULT_NON_LIN) -> tuple[dict[str, Any], dict[str, str]]:
    """The modality config and observation mapping of the default networks: a (C, H, W) observation of 36x36 and
    more (an image, channels first, as perceptspec's observation preprocessing hands images to networks) goes
    through a NatureCNN, any other is flattened; then the concatenation, then the MLP (`net_arch`, None: SB3's
    choice) as 'hidden'.

    Examples:
        >>> from perceptspec.templates import default_modalities
        >>> config, mapping = default_modalities({"image": (3, 64, 64), "inventory": (10,), "view": (3, 7, 7)})
        >>> mapping
        {'image': 'nature_cnn', 'inventory': 'flat1', 'view': 'flat3'}
        >>> config["nature_cnn"]["block_type"], config["hidden"]["block_params"]["hidden_units"]
        ('StridedConvDense', [64, 64])
    """
    units = list(_net_arch(obs_shapes, net_arch))
    config: dict[str, Any] = {HIDDEN: {"block_type": "Dense", "block_params": {"hidden_units": units,
                                                                               "non_lin": non_lin}}
                              if units else {}, RECURRENCE: {}}
    mapping: dict[str, str] = {}
    for key, shape in obs_shapes.items():
        modality, block_type, block_params = _default_modality(tuple(shape), len(obs_shapes) == 1)
        config[modality] = {"block_type": block_type, "block_params": block_params}
        mapping[key] = modality
    return config, mapping


def _default_modality(shape: tuple[int, ...], alone: bool) -> tuple[str, str, dict[str, Any]]:
    if _is_image(shape):
        return "nature_cnn", "StridedConvDense", {**NATURE_CNN, "hidden_units": [512 if alone else 256]}
    return f"flat{len(shape)}", "Flatten", {"num_flatten_dims": len(shape)}


def _is_image(shape: Sequence[int]) -> bool:
    """A (C, H, W) observation the NatureCNN reads (smaller ones are flattened: `NATURE_CNN_MIN_SIZE`)."""
    return len(shape) == 3 and min(shape[1:]) >= NATURE_CNN_MIN_SIZE


def _net_arch(obs_shapes: Shapes, net_arch: Sequence[int] | None) -> Sequence[int]:
    """SB3's choice when None: no MLP after the CNN of an image alone (CnnPolicy), [64, 64] otherwise."""
    if net_arch is not None:
        return net_arch
    observations = [shape for key, shape in obs_shapes.items() if key not in (CONCAT, LATENT)]
    return () if len(observations) == 1 and _is_image(observations[0]) else DEFAULT_NET_ARCH


def default_policy(obs_shapes: Shapes, action_logits_shapes: Shapes, net_arch: Sequence[int] | None = None,
                   non_lin: str = DEFAULT_NON_LIN, action_distributions: Mapping[str, str] | None = None,
                   log_std_init: float = 0.0) -> Graph:
    """What `ps.compose(None, ...)` builds as the policy: SB3's default actor (a CNN per image, the rest flattened,
    concatenated, an MLP, one head per action; a Gaussian action's log stds a parameter, `StateIndependentLogStd`,
    started at `log_std_init`, as SB3's). With images the policy also outputs the concatenated features ('concat'),
    which the default critic reads: SB3's PPO shares its features extractor the same way. The composer passes
    `action_distributions`.

    Examples:
        >>> from perceptspec.templates import default_policy
        >>> policy = default_policy({"observation": (4,)}, {"action": (2,)})
        >>> sorted(policy.blocks), ps.count_parameters(policy, {"observation": (4,)})
        (['action', 'concat', 'latent', 'observation_Flatten'], 4610)
    """
    config, mapping = default_modalities(obs_shapes, net_arch, non_lin)
    net = concat_perception(obs_shapes, config, mapping)
    features = CONCAT if CONCAT in net.blocks else LATENT  # without an MLP the concatenation is 'latent'
    shared = [features] if any(_is_image(shape) for shape in obs_shapes.values()) else []
    policy = _policy(net, action_logits_shapes, shared, DEFAULT_BODY_INIT, DEFAULT_POLICY_HEAD_INIT)
    gaussian = [a for a, name in (action_distributions or {}).items() if name == "gaussian"]
    if not gaussian:
        return policy
    blocks = dict(policy.blocks)
    for action in gaussian:
        blocks[f"{action}_mean"] = LinearOutput(in_keys=LATENT, out_keys=f"{action}_mean", init=DEFAULT_POLICY_HEAD_INIT,
                                                output_units=_units(action_logits_shapes[action], action) // 2)
        blocks[action] = StateIndependentLogStd(in_keys=f"{action}_mean", out_keys=action, log_std_init=log_std_init)
    return Graph(blocks, out_keys=policy.out_keys, init=DEFAULT_BODY_INIT)


def default_critic(obs_shapes: Shapes, net_arch: Sequence[int] | None = None,
                   non_lin: str = DEFAULT_NON_LIN) -> Graph:
    """What `ps.compose(None, ...)` builds as the critic: SB3's default value network (its own MLP on the features;
    on the features of the policy's CNNs when it shares them: 'concat' before an MLP, 'latent' without one).

    Examples:
        >>> from perceptspec.templates import default_critic
        >>> critic = default_critic({"observation": (4,)})
        >>> ps.count_parameters(critic, {"observation": (4,)})
        4545
    """
    value = LinearOutput(in_keys=LATENT, out_keys="value", output_units=1, init=DEFAULT_VALUE_HEAD_INIT)
    if LATENT in obs_shapes:  # the policy's CNN features, with no MLP after them (SB3's CnnPolicy)
        return Graph({"value": value}, out_keys="value", init=DEFAULT_BODY_INIT)
    if CONCAT in obs_shapes:
        mlp = Dense(in_keys=CONCAT, out_keys=LATENT, hidden_units=_net_arch(obs_shapes, net_arch), non_lin=non_lin)
        return Graph({LATENT: mlp, "value": value}, out_keys="value", init=DEFAULT_BODY_INIT)
    config, mapping = default_modalities(obs_shapes, net_arch, non_lin)
    return _state_value(concat_perception(obs_shapes, config, mapping), (), DEFAULT_BODY_INIT,
                        DEFAULT_VALUE_HEAD_INIT)


#: the config `ps.compose(None, ...)` uses
DEFAULT_CONFIG = {"policy": {"networks": [{"_target_": "perceptspec.templates.default_policy"}]},
                  "critic": {"kind": "state", "networks": [{"_target_": "perceptspec.templates.default_critic"}]}}


# --- the built-in FlattenConcat family --------------------------------------------------------------------------

def _flatten_concat(obs_shapes: Shapes, hidden_units: Sequence[int], non_lin: str) -> dict[str, Block]:
    """Every observation flattened ('<obs>_flat'), concatenated ('concat'), a Dense body ('latent')."""
    blocks: dict[str, Block] = {f"{key}_flat": Flatten(in_keys=key, out_keys=f"{key}_flat",
                                                       num_flatten_dims=len(shape))
                                for key, shape in obs_shapes.items()}
    blocks[CONCAT] = Concat(in_keys=list(blocks), out_keys=CONCAT, concat_dim=-1)
    blocks[LATENT] = Dense(in_keys=CONCAT, out_keys=LATENT, hidden_units=hidden_units, non_lin=non_lin)
    return blocks


def _heads(shapes: Shapes, in_key: str) -> dict[str, Block]:
    return {key: LinearOutput(in_keys=in_key, out_keys=key, output_units=_units(shape, key), init=HEAD_INIT)
            for key, shape in shapes.items()}


def flatten_concat_policy(obs_shapes: Shapes, action_logits_shapes: Shapes, hidden_units: Sequence[int],
                          non_lin: str) -> Graph:
    """Maze's FlattenConcatPolicyNet: flatten and concatenate the observations, Dense body, one head per action.

    Examples:
        >>> from perceptspec.templates import flatten_concat_policy
        >>> policy = flatten_concat_policy({"a": (2, 3), "b": (4,)}, {"action": (5,)}, [32, 32], "relu")
        >>> shapes = ps.infer_shapes(policy, {"a": (2, 3), "b": (4,)})
        >>> shapes["concat"], shapes["action"]
        ((10,), (5,))
    """
    blocks = {**_flatten_concat(obs_shapes, hidden_units, non_lin), **_heads(action_logits_shapes, LATENT)}
    return Graph(blocks, out_keys=list(action_logits_shapes), init=BODY_INIT)


def flatten_concat_state_value(obs_shapes: Shapes, hidden_units: Sequence[int], non_lin: str) -> Graph:
    """Maze's FlattenConcatStateValueNet: the FlattenConcat body and a 'value' head.

    Examples:
        >>> from perceptspec.templates import flatten_concat_state_value
        >>> critic = flatten_concat_state_value({"observation": (4,)}, [32], "relu")
        >>> ps.infer_shapes(critic, {"observation": (4,)})["value"]
        (1,)
    """
    blocks = {**_flatten_concat(obs_shapes, hidden_units, non_lin), **_heads({"value": (1,)}, LATENT)}
    return Graph(blocks, out_keys="value", init=BODY_INIT)


def flatten_concat_state_action_value(obs_shapes: Shapes, output_shapes: Shapes, hidden_units: Sequence[int],
                                      non_lin: str) -> Graph:
    """Maze's FlattenConcatStateActionValueNet: the FlattenConcat body and one head per output ('q_value', or
    '<action>_q_values' when all actions are discrete).

    Examples:
        >>> from perceptspec.templates import flatten_concat_state_action_value
        >>> q = flatten_concat_state_action_value({"observation": (4,)}, {"action_q_values": (3,)}, [32], "relu")
        >>> ps.infer_shapes(q, {"observation": (4,)})["action_q_values"]
        (3,)
    """
    blocks = {**_flatten_concat(obs_shapes, hidden_units, non_lin), **_heads(output_shapes, LATENT)}
    return Graph(blocks, out_keys=list(output_shapes), init=BODY_INIT)


def flatten_concat_categorical_state_value(obs_shapes: Shapes, hidden_units: Sequence[int], non_lin: str,
                                           support_range: Sequence[int]) -> Graph:
    """Maze's FlattenConcatCategoricalStateValueNet: logits over the integer supports of `support_range` (inclusive)
    under 'probabilities', and 'value', their softmax-weighted sum.

    Examples:
        >>> from perceptspec.templates import flatten_concat_categorical_state_value
        >>> critic = flatten_concat_categorical_state_value({"observation": (4,)}, [32], "relu", [-5, 5])
        >>> shapes = ps.infer_shapes(critic, {"observation": (4,)})
        >>> shapes["probabilities"], shapes["value"]
        ((11,), ())
    """
    low, high = _support_range(support_range)
    blocks = {**_flatten_concat(obs_shapes, hidden_units, non_lin),
              **_heads({"probabilities": (high - low + 1,)}, LATENT),
              "value": Functional(in_keys="probabilities", out_keys="value", func="support_to_scalar",
                                  params={"support_range": (low, high)})}
    return Graph(blocks, out_keys=["probabilities", "value"], init=BODY_INIT)


def flatten_concat_shared_embedding_policy(obs_shapes: Shapes, action_logits_shapes: Shapes,
                                           hidden_units: Sequence[int], head_units: Sequence[int],
                                           non_lin: str) -> Graph:
    """Maze's FlattenConcatSharedEmbeddingPolicyNet: the FlattenConcat body ('latent', also output for the critic),
    a Dense 'head', one head per action.

    Examples:
        >>> from perceptspec.templates import flatten_concat_shared_embedding_policy
        >>> policy = flatten_concat_shared_embedding_policy({"observation": (4,)}, {"action": (2,)}, [32], [16], "relu")
        >>> policy.out_keys
        ('action', 'latent')
    """
    blocks = {**_flatten_concat(obs_shapes, hidden_units, non_lin),
              "head": Dense(in_keys=LATENT, out_keys="head", hidden_units=head_units, non_lin=non_lin),
              **_heads(action_logits_shapes, "head")}
    return Graph(blocks, out_keys=[*action_logits_shapes, LATENT], init=BODY_INIT)


def flatten_concat_shared_embedding_state_value(obs_shapes: Shapes, head_units: Sequence[int],
                                                non_lin: str) -> Graph:
    """Maze's FlattenConcatSharedEmbeddingStateValueNet: a Dense 'head' on the policy's 'latent', a 'value' head.

    Examples:
        >>> from perceptspec.templates import flatten_concat_shared_embedding_state_value
        >>> critic = flatten_concat_shared_embedding_state_value({"latent": (32,)}, [16], "relu")
        >>> ps.infer_shapes(critic, {"latent": (32,)})["value"]
        (1,)
    """
    if LATENT not in obs_shapes:
        refuse("flatten_concat_shared_embedding_state_value", [
            f"reads the policy's shared 'latent', which is not among its inputs {list(obs_shapes)}; use it with "
            f"flatten_concat_shared_embedding_policy"])
    blocks = {"head": Dense(in_keys=LATENT, out_keys="head", hidden_units=head_units, non_lin=non_lin),
              **_heads({"value": (1,)}, "head")}
    return Graph(blocks, out_keys="value", init=BODY_INIT)


def flatten_concat_masked_policy(obs_shapes: Shapes, action_logits_shapes: Shapes, hidden_units: Sequence[int],
                                 remove_mask_from_obs: bool, non_lin: str) -> Graph:
    """Maze's FlattenConcatMaskedPolicyNet: as flatten_concat_policy, but an action with a '<action>_mask'
    observation gets its logits ('<action>_logits') masked by it (ActionMasking). With `remove_mask_from_obs` the
    masks are not part of the body's input.

    Examples:
        >>> from perceptspec.templates import flatten_concat_masked_policy
        >>> policy = flatten_concat_masked_policy({"observation": (4,), "action_mask": (3,)}, {"action": (3,)}, [32],
        ...                                       remove_mask_from_obs=True, non_lin="relu")
        >>> sorted(policy.blocks)
        ['action', 'action_logits', 'concat', 'latent', 'observation_flat']
    """
    masks = {action: f"{action}_mask" for action in action_logits_shapes if f"{action}_mask" in obs_shapes}
    body_obs = {k: s for k, s in obs_shapes.items() if not (remove_mask_from_obs and k in masks.values())}
    blocks = _flatten_concat(body_obs, hidden_units, non_lin)
    for action, shape in action_logits_shapes.items():
        if action in masks:
            logits = f"{action}_logits"
            blocks[logits] = LinearOutput(in_keys=LATENT, out_keys=logits, output_units=_units(shape, action),
                                          init=HEAD_INIT)
            blocks[action] = ActionMasking(in_keys=[logits, masks[action]], out_keys=action)
        else:
            blocks.update(_heads({action: shape}, LATENT))
    return Graph(blocks, out_keys=list(action_logits_shapes), init=BODY_INIT)


# --- helpers -----------------------------------------------------------------------------------------------------

def _check_modalities(modality_config: ModalityConfig, mapping: Mapping[str, str]) -> None:
    problems = [f"modality_config: '{stage}' is required (a block, or {{}} for none), as in Maze's "
                f"ConcatModelBuilder" for stage in (HIDDEN, RECURRENCE) if stage not in modality_config]
    for name, entry in modality_config.items():
        if not isinstance(entry, Mapping) or (entry and set(entry) != {"block_type", "block_params"}):
            problems.append(f"modality_config.{name}: expected {{}} or a mapping with exactly 'block_type' and "
                            f"'block_params', got {entry!r}")
    for obs_key, modality in mapping.items():
        if modality in (HIDDEN, RECURRENCE) or not modality_config.get(modality):
            known = [m for m, e in modality_config.items() if e and m not in (HIDDEN, RECURRENCE)]
            problems.append(f"observation_modality_mapping.{obs_key}: modality {modality!r} has no block in "
                            f"modality_config{did_you_mean(modality, known)}; modalities: {known}")
    if problems:
        refuse("template model", problems)


def _modality_block(entry: Mapping[str, Any], in_key: str, where: str) -> tuple[str, Block]:
    """The block a modality entry describes, reading `in_key`, and its type's name (Maze's class name if given)."""
    from perceptspec._fold._serialize import descriptor_from_dict

    block_type = entry["block_type"]
    params = entry["block_params"] or {}
    if not isinstance(block_type, str) or not isinstance(params, Mapping):
        refuse(where, [f"expected block_type a name and block_params a mapping, got {block_type!r} and "
                                f"{params!r}"])
    name, type_name = maze_block_type(block_type, where)
    reserved = [k for k in ("in_keys", "out_keys", "in_shapes", "type") if k in params]
    if reserved:
        refuse(where, [f"block_params: {reserved} are set by the template (keys from the observation "
                                f"mapping, shapes by the fold); remove them"])
    block = descriptor_from_dict({"type": type_name, "in_keys": in_key, "out_keys": "out", **params}, Block, where)
    assert isinstance(block, Block)
    return name, block


def _renamed(block: Block, out_key: str) -> Block:
    import dataclasses

    return dataclasses.replace(block, out_keys=(out_key,))


def _shared_keys(net: Graph, keys: Sequence[str]) -> tuple[str, ...]:
    names = [name for name, _ in net.blocks_in_order]
    unknown = [k for k in keys if k not in names]
    if unknown:
        refuse("shared_embedding_keys", [f"{k!r} is not a key of the template perception net{did_you_mean(k, names)}; "
                                         f"keys: {names}" for k in unknown])
    return tuple(keys)


def _upstream(net: Graph, keys: Sequence[str]) -> set[str]:
    """The names of the blocks that `keys` are computed from (their producers included)."""
    producer = {key: name for name, block in net.blocks.items() for key in block.out_keys}
    seen: set[str] = set()
    stack = [producer[k] for k in keys]
    while stack:
        name = stack.pop()
        if name not in seen:
            seen.add(name)
            stack.extend(producer[k] for k in net.blocks[name].in_keys if k in producer)
    return seen


def _units(shape: Sequence[int], key: str) -> int:
    if len(shape) != 1:
        refuse(f"head {key!r}", [f"a LinearOutput head gives a flat vector, but {key!r} needs shape "
                                          f"{tuple(shape)}"])
    return int(shape[0])


def _support_range(value: Sequence[int]) -> tuple[int, int]:
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in value) \
            or value[0] >= value[1]:
        refuse("support_range", [f"expected two ints [low, high] with low < high, got {list(value)}"])
    return int(value[0]), int(value[1])
