"""Maze's own model configs build Maze's networks in perceptspec (issue #16).

Each case is a model config as a Maze user has it (Maze's class paths; only the user's own network classes
point at perceptspec spec functions or modules), with gymnasium spaces chosen for it. The configs are those Maze
ships (its `conf/model` and `conf/critic`, the model pages of its docs, its tutorials and its composer tests),
written out here in our own words.

`MAZE` pins what Maze's own composer builds from the same config and spaces: per network, the parameter count
and the shape of every output. They were measured with Maze (enlite-ai/maze 3cf14b2, its composer instantiated
from the config as its training runner does, with torch 2.13 and gymnasium 1.4); the slow test measures them again
when `maze` is importable, and checks more: the same parameters block by block, the same outputs once Maze's
weights are copied into perceptspec's modules, and initial weights drawn from the same distributions.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from torch import nn

import perceptspec as ps

Spaces = dict[int | str, gym.spaces.Dict]
#: per network ('policy' / 'critic' in a single-step env, 'policy[1]' by sub-step): parameters, {output: shape}
Measured = dict[str, tuple[int, dict[str, tuple[int, ...]]]]


def _box(*shape: int) -> gym.spaces.Box:
    return gym.spaces.Box(-1.0, 1.0, shape, np.float32)


def _one_step(obs: Mapping[str, gym.Space[Any]], act: Mapping[str, gym.Space[Any]]) -> tuple[Spaces, Spaces]:
    return {0: gym.spaces.Dict(dict(obs))}, {0: gym.spaces.Dict(dict(act))}


def cartpole() -> tuple[Spaces, Spaces]:
    return _one_step({"observation": _box(4)}, {"action": gym.spaces.Discrete(2)})


def vectors() -> tuple[Spaces, Spaces]:
    """Two vector observations (one 2-D, flattened by FlattenConcat), a categorical and a Bernoulli action."""
    return _one_step({"observation": _box(8), "inventory": _box(3, 5)},
                     {"action": gym.spaces.Discrete(3), "pick": gym.spaces.MultiBinary(4)})


def vector() -> tuple[Spaces, Spaces]:
    """One vector observation (what Maze's vector templates map), a categorical and a Bernoulli action."""
    return _one_step({"observation": _box(8)}, {"action": gym.spaces.Discrete(3), "pick": gym.spaces.MultiBinary(4)})


def vector_sequence() -> tuple[Spaces, Spaces]:
    """A vector observation with a time axis (what Maze's recurrent templates read)."""
    return _one_step({"observation": _box(5, 8)}, {"action": gym.spaces.Discrete(3)})


def pixels() -> tuple[Spaces, Spaces]:
    return _one_step({"observation": gym.spaces.Box(0.0, 1.0, (1, 84, 84), np.float32)},
                     {"action": gym.spaces.Discrete(4)})


def pixel_sequence() -> tuple[Spaces, Spaces]:
    return _one_step({"observation": gym.spaces.Box(0.0, 1.0, (4, 1, 84, 84), np.float32)},
                     {"action": gym.spaces.Discrete(4)})


def inventory_grid(history: int | None = None) -> Callable[[], tuple[Spaces, Spaces]]:
    """The spaces of the seed's (and Maze docs') inventory example: a screen and an inventory, a move and a use."""
    def spaces() -> tuple[Spaces, Spaces]:
        time = () if history is None else (history,)
        return _one_step({"observation_screen": gym.spaces.Box(0.0, 1.0, (*time, 3, 64, 64), np.float32),
                          "observation_inventory": gym.spaces.Box(0.0, 1.0, (*time, 16), np.float32)},
                         {"action_move": gym.spaces.Discrete(4), "action_use": gym.spaces.MultiBinary(16)})
    return spaces


def cutting() -> tuple[Spaces, Spaces]:
    """The flat spaces of Maze's cutting-2D tutorial (keys with '-', as its observation wrappers name them)."""
    return _one_step({"inventory-flatten": _box(30), "ordered_piece": _box(2)},
                     {"piece_idx": gym.spaces.Discrete(10), "rotation": gym.spaces.Discrete(2),
                      "order": gym.spaces.Discrete(2)})


def cutting_flat_steps() -> tuple[Spaces, Spaces]:
    return _one_step({"inventory-flatten": _box(30), "ordered_piece": _box(2), "selected_piece": _box(2)},
                     {"piece_idx": gym.spaces.Discrete(10), "cut_rotation": gym.spaces.Discrete(2),
                      "cut_order": gym.spaces.Discrete(2)})


def two_steps() -> tuple[Spaces, Spaces]:
    """A structured env of two sub-steps, as Maze's composer tests build (an image and a vector in each)."""
    obs: Spaces = {step: gym.spaces.Dict({"observation_0": gym.spaces.Box(0.0, 1.0, (3, 32, 32), np.float32),
                                         "observation_1": _box(7)}) for step in (0, 1)}
    act: Spaces = {0: gym.spaces.Dict({"action_0_0": gym.spaces.Discrete(3)}),
                   1: gym.spaces.Dict({"action_1_0": gym.spaces.Discrete(5),
                                       "action_1_1": gym.spaces.MultiBinary(2)})}
    return obs, act


def two_steps_split() -> tuple[Spaces, Spaces]:
    """Two sub-steps, the second seeing only the vector."""
    obs, act = two_steps()
    obs[1] = gym.spaces.Dict({"observation_1": obs[1]["observation_1"]})
    return obs, act


def keys_by_step() -> tuple[Spaces, Spaces]:
    """Two sub-steps whose observation keys come out of order across them ('zeta' first, 'alpha' second)."""
    return ({0: gym.spaces.Dict({"zeta": _box(3)}), 1: gym.spaces.Dict({"alpha": _box(5)})},
            {0: gym.spaces.Dict({"move": gym.spaces.Discrete(2)}),
             1: gym.spaces.Dict({"pick": gym.spaces.Discrete(3)})})


def cutting_steps() -> tuple[Spaces, Spaces]:
    """The structured cutting-2D env of Maze's tutorial (part 6): select a piece of 10, then cut it."""
    obs: Spaces = {0: gym.spaces.Dict({"inventory": gym.spaces.Box(0.0, 1.0, (10, 2), np.float32),
                                       "inventory-flatten": gym.spaces.Box(0.0, 1.0, (20,), np.float32),
                                       "ordered_piece": gym.spaces.Box(0.0, 1.0, (2,), np.float32),
                                       "inventory_mask": gym.spaces.Box(0.0, 1.0, (10,), np.float32)}),
                   1: gym.spaces.Dict({"selected_piece": gym.spaces.Box(0.0, 1.0, (2,), np.float32),
                                       "ordered_piece": gym.spaces.Box(0.0, 1.0, (2,), np.float32),
                                       "cutting_mask": gym.spaces.Box(0.0, 1.0, (2,), np.float32)})}
    act: Spaces = {0: gym.spaces.Dict({"piece_idx": gym.spaces.Discrete(10)}),
                   1: gym.spaces.Dict({"cut_rotation": gym.spaces.Discrete(2), "cut_order": gym.spaces.Discrete(2)})}
    return obs, act


def two_steps_discrete() -> tuple[Spaces, Spaces]:
    """The two sub-steps with Discrete actions only (what Maze's Q critics give per-action values for)."""
    obs, _ = two_steps()
    return obs, {0: gym.spaces.Dict({"action_0_0": gym.spaces.Discrete(3)}),
                 1: gym.spaces.Dict({"action_1_0": gym.spaces.Discrete(5), "action_1_1": gym.spaces.Discrete(2)})}


def every_action_space() -> tuple[Spaces, Spaces]:
    """One action of each kind Maze's default distribution mapper maps (categorical, Bernoulli, multi-categorical,
    diagonal Gaussian)."""
    return _one_step({"observation": _box(6)},
                     {"move": gym.spaces.Discrete(4), "use": gym.spaces.MultiBinary(3),
                      "pick": gym.spaces.MultiDiscrete([2, 5]), "force": _box(2)})


def box_action(spaces: Callable[[], tuple[Spaces, Spaces]]) -> Callable[[], tuple[Spaces, Spaces]]:
    """The same observations with one Box action (what Maze's shipped configs map to a squashed Gaussian)."""
    def with_box() -> tuple[Spaces, Spaces]:
        obs, _ = spaces()
        return obs, {step: gym.spaces.Dict({"action": _box(2)}) for step in obs}
    return with_box


def masked() -> tuple[Spaces, Spaces]:
    """An action with a mask observation ('<action>_mask') beside one without."""
    return _one_step({"observation": _box(6), "action_mask": gym.spaces.Box(0.0, 1.0, (3,), np.float32)},
                     {"action": gym.spaces.Discrete(3), "other": gym.spaces.Discrete(2)})


def continuous() -> tuple[Spaces, Spaces]:
    return _one_step({"observation": _box(6)}, {"action": _box(2)})


def mixed_actions() -> tuple[Spaces, Spaces]:
    return _one_step({"observation": _box(6)}, {"action": _box(2), "switch": gym.spaces.Discrete(3)})


class PlainPolicy(nn.Module):
    """The plain torch policy of Maze's docs (custom_plain_cartpole_net): three Linear layers, ReLU between."""

    def __init__(self, obs_shapes: Mapping[str, tuple[int, ...]], action_logits_shapes: Mapping[str, tuple[int, ...]],
                 hidden_layer_0: int, hidden_layer_1: int, use_bias: bool) -> None:
        super().__init__()
        (self.obs_key, (n_in,)), = obs_shapes.items()
        (self.action, (n_out,)), = action_logits_shapes.items()
        self.l0 = nn.Linear(n_in, hidden_layer_0, bias=use_bias)
        self.l1 = nn.Linear(hidden_layer_0, hidden_layer_1, bias=use_bias)
        self.l2 = nn.Linear(hidden_layer_1, n_out, bias=use_bias)

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {self.action: self.l2(torch.relu(self.l1(torch.relu(self.l0(obs[self.obs_key])))))}


class PlainCritic(PlainPolicy):
    """The plain torch critic of Maze's docs: the policy's layers with one 'value' output."""

    def __init__(self, obs_shapes: Mapping[str, tuple[int, ...]], hidden_layer_0: int, hidden_layer_1: int,
                 use_bias: bool) -> None:
        super().__init__(obs_shapes, {"value": (1,)}, hidden_layer_0, hidden_layer_1, use_bias)


ps.register_function("maze_tutorial_unsqueeze", lambda shape: (1, *shape), lambda x: x.unsqueeze(-2))


def selection_policy(obs_shapes: Mapping[str, tuple[int, ...]], action_logits_shapes: Mapping[str, tuple[int, ...]],
                     non_lin: str, with_mask: bool) -> ps.Graph:
    """The selection policy of Maze's cutting-2D tutorial (part 6): the inventory's pieces and the ordered piece
    embedded alike (Dense 32, LinearOutput 7), one score per piece (their correlation), masked by the inventory
    mask if asked."""
    blocks: dict[str, ps.Block] = {
        "inventory_feat": ps.Dense(in_keys="inventory", out_keys="inventory_feat", hidden_units=[32], non_lin=non_lin),
        "inventory_embed": ps.LinearOutput(in_keys="inventory_feat", out_keys="inventory_embed", output_units=7,
                                           init=ps.NormC(0.01)),
        "order_unsqueezed": ps.Functional(in_keys="ordered_piece", out_keys="order_unsqueezed",
                                          func="maze_tutorial_unsqueeze"),
        "order_feat": ps.Dense(in_keys="order_unsqueezed", out_keys="order_feat", hidden_units=[32], non_lin=non_lin),
        "order_embed": ps.LinearOutput(in_keys="order_feat", out_keys="order_embed", output_units=7,
                                       init=ps.NormC(0.01)),
    }
    scores = "corr_score" if with_mask else "piece_idx"
    blocks[scores] = ps.Correlation(in_keys=["inventory_embed", "order_embed"], out_keys=scores, reduce=True)
    if with_mask:
        blocks["piece_idx"] = ps.ActionMasking(in_keys=["corr_score", "inventory_mask"], out_keys="piece_idx")
    return ps.Graph(blocks, out_keys="piece_idx", init=ps.NormC(1.0))


def cutting_policy(obs_shapes: Mapping[str, tuple[int, ...]], action_logits_shapes: Mapping[str, tuple[int, ...]],
                   non_lin: str, with_mask: bool) -> ps.Graph:
    """The cutting policy of Maze's cutting-2D tutorial: selected and ordered piece through Dense 32 each,
    concatenated, a rotation and an order head; the rotation masked by the cutting mask if asked."""
    rotation = "cut_rotation_logits" if with_mask else "cut_rotation"
    blocks: dict[str, ps.Block] = {
        "selected_feat": ps.Dense(in_keys="selected_piece", out_keys="selected_feat", hidden_units=[32],
                                  non_lin=non_lin),
        "order_feat": ps.Dense(in_keys="ordered_piece", out_keys="order_feat", hidden_units=[32], non_lin=non_lin),
        "latent": ps.Concat(in_keys=["selected_feat", "order_feat"], out_keys="latent"),
        rotation: ps.LinearOutput(in_keys="latent", out_keys=rotation,
                                  output_units=action_logits_shapes["cut_rotation"][0], init=ps.NormC(0.01)),
    }
    if with_mask:
        blocks["cut_rotation"] = ps.ActionMasking(in_keys=[rotation, "cutting_mask"], out_keys="cut_rotation")
    blocks["cut_order"] = ps.LinearOutput(in_keys="latent", out_keys="cut_order",
                                          output_units=action_logits_shapes["cut_order"][0], init=ps.NormC(0.01))
    return ps.Graph(blocks, out_keys=["cut_rotation", "cut_order"], init=ps.NormC(1.0))


def pieces_value(non_lin: str, first: str, second: str) -> ps.Graph:
    """The tutorial's value nets: two observations through Dense 32 each, concatenated, a value head."""
    features = {key: f"{key.partition('_')[0].partition('-')[0]}_feat" for key in (first, second)}
    blocks: dict[str, ps.Block] = {
        feat: ps.Dense(in_keys=key, out_keys=feat, hidden_units=[32], non_lin=non_lin)
        for key, feat in features.items()}
    blocks["latent"] = ps.Concat(in_keys=list(features.values()), out_keys="latent")
    blocks["value"] = ps.LinearOutput(in_keys="latent", out_keys="value", output_units=1, init=ps.NormC(0.01))
    return ps.Graph(blocks, out_keys="value", init=ps.NormC(1.0))


def selection_value(obs_shapes: Mapping[str, tuple[int, ...]], non_lin: str) -> ps.Graph:
    return pieces_value(non_lin, "inventory-flatten", "ordered_piece")


def cutting_value(obs_shapes: Mapping[str, tuple[int, ...]], non_lin: str) -> ps.Graph:
    return pieces_value(non_lin, "ordered_piece", "selected_piece")


# --- the configs ---------------------------------------------------------------------------------------------------

COMPOSERS = "_target_: maze.perception.models.{}\n"
POLICY = "policy:\n  _target_: maze.perception.models.policies.ProbabilisticPolicyComposer\n"


SQUASHED_GAUSSIAN = ("distribution_mapper_config:\n  - action_space: gymnasium.spaces.Box\n"
                     "    distribution: maze.distributions.squashed_gaussian.SquashedGaussianProbabilityDistribution\n")


def shipped_mapper(text: str) -> str:
    """The config with the distribution mapper Maze's conf/model files ship (Box actions: squashed Gaussian)."""
    return text.replace("distribution_mapper_config: []\n", SQUASHED_GAUSSIAN)


def template(modalities: str, mapping: str, *, critic: str | None = "StateCriticComposer", shared: str = "~") -> str:
    """A TemplateModelComposer config (Maze's ConcatModelBuilder), as Maze's shipped ones are laid out."""
    critic_text = "critic: ~\n" if critic is None else \
        f"critic:\n  _target_: maze.perception.models.critics.{critic}\n"
    return (COMPOSERS.format("template_model_composer.TemplateModelComposer")
            + "distribution_mapper_config: []\n"
            + "model_builder:\n  _target_: maze.perception.builders.ConcatModelBuilder\n"
            + f"  shared_embedding_keys: {shared}\n  observation_modality_mapping:\n{mapping}"
            + f"  modality_config:\n{modalities}" + POLICY + critic_text)


def block(name: str, block_class: str, **params: Any) -> str:
    """One modality_config entry (`{}` when `block_class` is empty)."""
    if not block_class:
        return f"    {name}: {{}}\n"
    lines = "".join(f"        {k}: {json.dumps(v)}\n" for k, v in params.items())
    return f"    {name}:\n      block_type: maze.perception.blocks.{block_class}\n      block_params:\n{lines}"


def mapping(**modalities: str) -> str:
    return "".join(f"    {key.replace('__', '-')}: {modality}\n" for key, modality in modalities.items())


def custom(policy: str, critic: str | None, *, critic_composer: str = "StateCriticComposer",
           critic_extra: str = "") -> str:
    """A CustomModelComposer config; `policy` and `critic` are the network list entries (YAML, indented)."""
    critic_text = "critic: ~\n" if critic is None else (
        f"critic:\n  _target_: maze.perception.models.critics.{critic_composer}\n{critic_extra}  networks:\n{critic}")
    return (COMPOSERS.format("custom_model_composer.CustomModelComposer")
            + "distribution_mapper_config: []\n" + POLICY + f"  networks:\n{policy}"
            + "  substeps_with_separate_agent_nets: []\n" + critic_text)


BUILT_IN = "maze.perception.models.built_in."
TANH_256 = "    non_lin: torch.nn.Tanh\n    hidden_units: [256, 256]\n"
FLATTEN_CONCAT_POLICY = f"  - _target_: {BUILT_IN}flatten_concat.FlattenConcatPolicyNet\n{TANH_256}"
FLATTEN_CONCAT_VALUE = (f"    - _target_: {BUILT_IN}flatten_concat.FlattenConcatStateValueNet\n"
                        "      non_lin: torch.nn.Tanh\n      hidden_units: [256, 256]\n")
FLATTEN_CONCAT_Q = FLATTEN_CONCAT_VALUE.replace("FlattenConcatStateValueNet", "FlattenConcatStateActionValueNet")
CRITIC_ENTRY = (f"    - _target_: {BUILT_IN}flatten_concat.{{}}\n"
                "      non_lin: torch.nn.Tanh\n      hidden_units: [32]\n")

TANH_128 = {"hidden_units": [128], "non_lin": "torch.nn.Tanh"}
PIXEL_CONV = {"hidden_channels": [8, 16, 32], "hidden_kernels": [8, 4, 4], "convolution_dimension": 2,
              "hidden_strides": [4, 2, 2], "hidden_dilations": None, "padding_mode": None, "hidden_units": [],
              "non_lin": "torch.nn.ReLU"}
LSTM_TANH = {"num_layers": 1, "bidirectional": False, "non_lin": "torch.nn.Tanh"}
PIXEL_MAPPING = mapping(observation__rgb2gray__resize_img__unsqueeze="image", observation="image")
VECTOR_OBS = (block("feature", "DenseBlock", **TANH_128) + block("hidden", "DenseBlock", **TANH_128)
              + block("recurrence", ""))
DOCS_FEATURE = block("feature", "DenseBlock", hidden_units=[32, 32], non_lin="torch.nn.ReLU")
# (Maze's docs leave out use_batch_norm_conv, which Maze's VGGConvolutionDenseBlock now requires)
DOCS_IMAGE = block("image", "VGGConvolutionDenseBlock", hidden_channels=[8, 16, 32], hidden_units=[32],
                   non_lin="torch.nn.ReLU", use_batch_norm_conv=False)
DOCS_HIDDEN = block("hidden", "DenseBlock", hidden_units=[128], non_lin="torch.nn.ReLU")
DOCS_MAPPING = mapping(observation_inventory="feature", observation_screen="image")
TEST_MODALITIES = (block("feature", "DenseBlock", hidden_units=[32, 32], non_lin="torch.nn.ReLU")
                   + block("image", "StridedConvolutionDenseBlock", **{**PIXEL_CONV, "hidden_padding": [1, 1, 1],
                                                                       "non_lin": "torch.nn.SELU"})
                   + block("hidden", "DenseBlock", hidden_units=[64], non_lin="torch.nn.ReLU")
                   + block("recurrence", ""))
CARTPOLE_MODALITIES = (block("feature", "DenseBlock", hidden_units=[32, 32], non_lin="torch.nn.ReLU")
                       + block("hidden", "DenseBlock", hidden_units=[64], non_lin="torch.nn.ReLU")
                       + block("recurrence", ""))
MASKED_POLICY = (f"  - _target_: {BUILT_IN}flatten_concat_masked.FlattenConcatMaskedPolicyNet\n"
                 "    non_lin: torch.nn.Tanh\n    hidden_units: [32, 32]\n    remove_mask_from_obs: {}\n")
EXAMPLES = "perceptspec.examples."


@dataclasses.dataclass(frozen=True)
class Case:
    """A Maze model config (`text`), the spaces it is composed for, and where Maze's side names the user's own
    network classes (`maze_targets`: our target -> the Maze class the config had)."""

    text: str
    spaces: Callable[[], tuple[Spaces, Spaces]]
    maze_targets: Mapping[str, str] = dataclasses.field(default_factory=dict)


DOCS_SNIPPETS = "docs.source.policy_and_value_networks.code_snippets."
TUTORIAL_MODELS = "tutorial_maze_env.part06_struct_env.models."
#: Maze's conf/model, with discrete actions (so without the distribution mapper entry the files ship for Box)
CONF_MODEL: dict[str, Case] = {
    "conf/model/flatten_concat": Case(custom(FLATTEN_CONCAT_POLICY, FLATTEN_CONCAT_VALUE), vectors),
    # (the shipped file names SharedStateCriticComposer, which Maze itself refuses with a shared embedding: "not yet
    # supported"; with StateCriticComposer Maze builds it)
    "conf/model/flatten_concat_shared_embedding": Case(custom(
        f"  - _target_: {BUILT_IN}flatten_concat_shared_embedding.FlattenConcatSharedEmbeddingPolicyNet\n"
        "    non_lin: torch.nn.Tanh\n    hidden_units: [256]\n    head_units: [256]\n",
        f"    - _target_: {BUILT_IN}flatten_concat_shared_embedding.FlattenConcatSharedEmbeddingStateValueNet\n"
        "      non_lin: torch.nn.Tanh\n      head_units: [256]\n",
        critic_composer="StateCriticComposer"), vectors),
    "conf/model/pixel_obs": Case(template(
        block("feature", "DenseBlock", **TANH_128)
        + block("image", "StridedConvolutionDenseBlock", **PIXEL_CONV, hidden_padding=[1, 1, 1])
        + block("hidden", "DenseBlock", **TANH_128) + block("recurrence", ""), PIXEL_MAPPING, critic=None), pixels),
    "conf/model/pixel_obs_rnn": Case(template(
        block("feature", "DenseBlock", **TANH_128)
        + block("image", "StridedConvolutionDenseBlock", **PIXEL_CONV, hidden_padding=None) + block("hidden", "")
        + block("recurrence", "LSTMLastStepBlock", hidden_size=128, **LSTM_TANH), PIXEL_MAPPING, critic=None),
        pixel_sequence),
    "conf/model/vector_obs": Case(template(VECTOR_OBS, mapping(observation="feature"), critic=None), vector),
    "conf/model/vector_obs_rnn": Case(template(
        block("feature", "DenseBlock", hidden_units=[256, 256], non_lin="torch.nn.Tanh") + block("hidden", "")
        + block("recurrence", "LSTMLastStepBlock", hidden_size=32, **LSTM_TANH), mapping(observation="feature"),
        critic=None), vector_sequence),
}
CASES: dict[str, Case] = {
    **CONF_MODEL,
    # the same with a Box action and the distribution mapper the files ship (squashed Gaussian)
    **{f"{name} (Box action, shipped mapper)": Case(shipped_mapper(case.text), box_action(case.spaces))
       for name, case in CONF_MODEL.items() if "shared_embedding" not in name},
    # Maze's conf/critic, each with the model config it goes with
    "conf/critic/flatten_concat_shared": Case(custom(
        FLATTEN_CONCAT_POLICY, FLATTEN_CONCAT_VALUE,
        critic_composer="SharedStateCriticComposer", critic_extra="  stack_observations: false\n"), vectors),
    "conf/critic/flatten_concat_state_action (discrete)": Case(custom(
        FLATTEN_CONCAT_POLICY, FLATTEN_CONCAT_Q,
        critic_composer="StateActionCriticComposer"), cartpole),
    "conf/critic/flatten_concat_state_action (continuous)": Case(custom(
        FLATTEN_CONCAT_POLICY, FLATTEN_CONCAT_Q,
        critic_composer="StateActionCriticComposer"), mixed_actions),
    "conf/critic/template_state": Case(template(VECTOR_OBS, mapping(observation="feature")), vector),
    "conf/critic/template_state_action": Case(template(
        VECTOR_OBS, mapping(observation="feature", action="feature"), critic="StateActionCriticComposer"),
        continuous),
    # Maze's docs (policy_and_value_networks)
    "docs/cartpole_concat_model_builder": Case(template(
        block("feature", "DenseBlock", hidden_units=[32, 32], non_lin="torch.nn.ReLU") + block("hidden", "")
        + block("recurrence", ""), mapping(observation="feature")), cartpole),
    "docs/ff_concat_model_builder": Case(template(
        DOCS_FEATURE + DOCS_IMAGE + DOCS_HIDDEN + block("recurrence", ""), DOCS_MAPPING), inventory_grid()),
    "docs/ff_shared_embedding_concat_model_builder": Case(template(
        DOCS_FEATURE + DOCS_IMAGE + DOCS_HIDDEN + block("recurrence", ""), DOCS_MAPPING, shared="['latent']"),
        inventory_grid()),
    "docs/rnn_concat_model_builder": Case(template(
        DOCS_FEATURE + DOCS_IMAGE + DOCS_HIDDEN
        + block("recurrence", "LSTMLastStepBlock", hidden_size=32, num_layers=1, bidirectional=False,
                non_lin="torch.nn.SELU"), DOCS_MAPPING), inventory_grid(history=4)),
    "docs/custom_cartpole_net": Case(custom(
        f"  - _target_: {EXAMPLES}cartpole.cartpole_policy\n    non_lin: torch.nn.ReLU\n    hidden_units: [16, 32]\n",
        f"    - _target_: {EXAMPLES}cartpole.cartpole_critic\n      non_lin: torch.nn.ReLU\n"
        "      hidden_units: [16, 32]\n"), cartpole,
        {f"{EXAMPLES}cartpole.cartpole_policy": f"{DOCS_SNIPPETS}custom_cartpole_policy_net.CustomCartpolePolicyNet",
         f"{EXAMPLES}cartpole.cartpole_critic": f"{DOCS_SNIPPETS}custom_cartpole_critic_net.CustomCartpoleCriticNet"}),
    "docs/custom_plain_cartpole_net": Case(custom(
        f"  - _target_: {__name__}.PlainPolicy\n    hidden_layer_0: 16\n    hidden_layer_1: 32\n    use_bias: true\n",
        f"    - _target_: {__name__}.PlainCritic\n      hidden_layer_0: 16\n      hidden_layer_1: 32\n"
        "      use_bias: true\n"), cartpole,
        {f"{__name__}.PlainPolicy": f"{DOCS_SNIPPETS}custom_plain_cartpole_policy_net.CustomPlainCartpolePolicyNet",
         f"{__name__}.PlainCritic": f"{DOCS_SNIPPETS}custom_plain_cartpole_critic_net.CustomPlainCartpoleCriticNet"}),
    "docs/custom_complex_net": Case(custom(
        f"  - _target_: {EXAMPLES}complex.complex_policy\n    non_lin: torch.nn.ReLU\n    hidden_units: [128]\n",
        f"    - _target_: {EXAMPLES}complex.complex_critic\n      non_lin: torch.nn.ReLU\n"
        "      hidden_units: [128]\n"), inventory_grid(history=4),
        {f"{EXAMPLES}complex.complex_policy": f"{DOCS_SNIPPETS}custom_complex_policy_net.CustomComplexPolicyNet",
         f"{EXAMPLES}complex.complex_critic": f"{DOCS_SNIPPETS}custom_complex_critic_net.CustomComplexCriticNet"}),
    "docs/custom_shared_complex_net": Case(custom(
        f"  - _target_: {EXAMPLES}complex.shared_policy\n    non_lin: torch.nn.ReLU\n    hidden_units: [128]\n",
        f"    - _target_: {EXAMPLES}complex.shared_critic\n      non_lin: torch.nn.ReLU\n"
        "      hidden_units: [128]\n"), inventory_grid(history=4),
        {f"{EXAMPLES}complex.shared_policy":
            f"{DOCS_SNIPPETS}custom_shared_complex_policy_net.CustomSharedComplexPolicyNet",
         f"{EXAMPLES}complex.shared_critic":
            f"{DOCS_SNIPPETS}custom_shared_complex_critic_net.CustomSharedComplexCriticNet"}),
    # Maze's tutorials (cutting 2D, flat env)
    "tutorials/tutorial_cutting_2d_basic": Case(template(
        block("feature", "DenseBlock", hidden_units=[32], non_lin="torch.nn.SELU") + block("hidden", "")
        + block("recurrence", ""), mapping(inventory__flatten="feature", ordered_piece="feature")), cutting),
    "tutorials/tutorial_cutting_2d_flat": Case(template(
        block("feature", "DenseBlock", hidden_units=[32], non_lin="torch.nn.ReLU") + block("hidden", "")
        + block("recurrence", ""),
        mapping(inventory__flatten="feature", ordered_piece="feature", selected_piece="feature"),
        critic="SharedStateCriticComposer"), cutting_flat_steps),
    **{f"tutorials/tutorial_cutting_2d_struct{'_masked' if mask else ''}": Case(custom(
        f"  - _target_: {__name__}.selection_policy\n    non_lin: torch.nn.ReLU\n    with_mask: {json.dumps(mask)}\n"
        f"  - _target_: {__name__}.cutting_policy\n    non_lin: torch.nn.ReLU\n    with_mask: {json.dumps(mask)}\n",
        f"    - _target_: {__name__}.selection_value\n      non_lin: torch.nn.ReLU\n"
        f"    - _target_: {__name__}.cutting_value\n      non_lin: torch.nn.ReLU\n",
        critic_composer="StepStateCriticComposer"), cutting_steps,
        {f"{__name__}.{ours}": f"{TUTORIAL_MODELS}{theirs}" for ours, theirs in (
            ("selection_policy", "actor.SelectionPolicyNet"), ("cutting_policy", "actor.CuttingPolicyNet"),
            ("selection_value", "critic.SelectionValueNet"), ("cutting_value", "critic.CuttingValueNet"))})
      for mask in (False, True)},
    # Maze's template composer tests
    "test/template cartpole, step critic, shared 'latent'": Case(template(
        CARTPOLE_MODALITIES, mapping(observation="feature"), critic="StepStateCriticComposer", shared="['latent']"),
        cartpole),
    "test/template cartpole, step critic, shared per step": Case(template(
        CARTPOLE_MODALITIES, mapping(observation="feature"), critic="StepStateCriticComposer",
        shared="{0: ['observation_DenseBlock']}"), cartpole),
    "test/template cartpole, delta critic": Case(template(
        CARTPOLE_MODALITIES, mapping(observation="feature"), critic="DeltaStateCriticComposer"), cartpole),
    "test/template two steps, shared critic": Case(template(
        TEST_MODALITIES, mapping(observation_0="image", observation_1="feature", prev_value="feature"),
        critic="SharedStateCriticComposer"), two_steps),
    "test/template two steps, step critic": Case(template(
        TEST_MODALITIES, mapping(observation_0="image", observation_1="feature", prev_value="feature"),
        critic="StepStateCriticComposer"), two_steps),
    "test/template two steps, delta critic": Case(template(
        TEST_MODALITIES, mapping(observation_0="image", observation_1="feature", prev_value="feature"),
        critic="DeltaStateCriticComposer"), two_steps),
    "test/template two steps, shared critic, keys out of order": Case(template(
        block("feature", "DenseBlock", hidden_units=[4], non_lin="torch.nn.ReLU") + block("hidden", "")
        + block("recurrence", ""), mapping(zeta="feature", alpha="feature"), critic="SharedStateCriticComposer"),
        keys_by_step),
    "test/template two steps, shared per step": Case(template(
        TEST_MODALITIES, mapping(observation_0="image", observation_1="feature", prev_value="feature"),
        critic="StepStateCriticComposer", shared="{0: ['latent'], 1: ['observation_1_DenseBlock']}"),
        two_steps_split),
    "test/flatten_concat two steps": Case(custom(2 * FLATTEN_CONCAT_POLICY, 2 * FLATTEN_CONCAT_VALUE,
        critic_composer="StepStateCriticComposer"), two_steps),
    "test/flatten_concat categorical value": Case(custom(
        FLATTEN_CONCAT_POLICY, f"    - _target_: {BUILT_IN}flatten_concat.FlattenConcatCategoricalStateValueNet\n"
        "      non_lin: torch.nn.Tanh\n      hidden_units: [64]\n      support_range: [-5, 5]\n"), cartpole),
    "test/flatten_concat two steps, delta critic": Case(custom(2 * FLATTEN_CONCAT_POLICY, 2 * CRITIC_ENTRY.format(
        "FlattenConcatStateValueNet"), critic_composer="DeltaStateCriticComposer"), two_steps),
    "test/flatten_concat two steps, step Q critics": Case(custom(2 * FLATTEN_CONCAT_POLICY, 2 * CRITIC_ENTRY.format(
        "FlattenConcatStateActionValueNet"), critic_composer="StepStateActionCriticComposer"), two_steps_discrete),
    "test/flatten_concat two steps, shared Q critic": Case(custom(2 * FLATTEN_CONCAT_POLICY, CRITIC_ENTRY.format(
        "FlattenConcatStateActionValueNet"), critic_composer="SharedStateActionCriticComposer"), two_steps_discrete),
    "test/flatten_concat shared embedding, two steps": Case(custom(
        2 * (f"  - _target_: {BUILT_IN}flatten_concat_shared_embedding.FlattenConcatSharedEmbeddingPolicyNet\n"
             "    non_lin: torch.nn.Tanh\n    hidden_units: [32]\n    head_units: [16]\n"),
        2 * (f"    - _target_: {BUILT_IN}flatten_concat_shared_embedding.FlattenConcatSharedEmbeddingStateValueNet\n"
             "      non_lin: torch.nn.Tanh\n      head_units: [16]\n"),
        critic_composer="StepStateCriticComposer"), two_steps),
    "test/template two steps, step Q critics": Case(template(
        TEST_MODALITIES, mapping(observation_0="image", observation_1="feature"),
        critic="StepStateActionCriticComposer"), two_steps_discrete),
    "test/template two steps, shared Q critic": Case(template(
        TEST_MODALITIES, mapping(observation_0="image", observation_1="feature"),
        critic="SharedStateActionCriticComposer"), two_steps_discrete),
    "test/flatten_concat every action space": Case(custom(FLATTEN_CONCAT_POLICY, FLATTEN_CONCAT_VALUE),
                                                    every_action_space),
    "test/flatten_concat masked policy": Case(custom(MASKED_POLICY.format("false"), None), masked),
    "test/flatten_concat masked policy, mask removed": Case(custom(MASKED_POLICY.format("true"), None), masked),
}


# Measured with Maze's own composer on the same config and spaces (see the module docstring; the slow test
# below re-measures them): per network, parameters and {output: shape}.
MAZE: dict[str, Measured] = {
    "conf/model/flatten_concat": {
        "policy": (73735, {"action": (3,), "pick": (4,)}),
        "critic": (72193, {"value": (1,)}),
    },
    "conf/model/flatten_concat_shared_embedding": {
        "policy": (73735, {"action": (3,), "pick": (4,), "latent": (256,)}),
        "critic": (66049, {"value": (1,)}),
    },
    "conf/model/pixel_obs": {
        "policy": (113852, {"action": (4,)}),
    },
    "conf/model/pixel_obs_rnn": {
        "policy": (241852, {"action": (4,)}),
    },
    "conf/model/vector_obs": {
        "policy": (18567, {"action": (3,), "pick": (4,)}),
    },
    "conf/model/vector_obs_rnn": {
        "policy": (106371, {"action": (3,)}),
    },
    "conf/model/flatten_concat (Box action, shipped mapper)": {
        "policy": (72964, {"action": (4,)}),
        "critic": (72193, {"value": (1,)}),
    },
    "conf/model/pixel_obs (Box action, shipped mapper)": {
        "policy": (113852, {"action": (4,)}),
    },
    "conf/model/pixel_obs_rnn (Box action, shipped mapper)": {
        "policy": (241852, {"action": (4,)}),
    },
    "conf/model/vector_obs (Box action, shipped mapper)": {
        "policy": (18180, {"action": (4,)}),
    },
    "conf/model/vector_obs_rnn (Box action, shipped mapper)": {
        "policy": (106404, {"action": (4,)}),
    },
    "conf/critic/flatten_concat_shared": {
        "policy": (73735, {"action": (3,), "pick": (4,)}),
        "critic": (72193, {"value": (1,)}),
    },
    "conf/critic/flatten_concat_state_action (discrete)": {
        "policy": (67586, {"action": (2,)}),
        "critic": (67586, {"action_q_values": (2,)}),
    },
    "conf/critic/flatten_concat_state_action (continuous)": {
        "policy": (69383, {"action": (4,), "switch": (3,)}),
        "critic": (69121, {"q_value": (1,)}),
    },
    "conf/critic/template_state": {
        "policy": (18567, {"action": (3,), "pick": (4,)}),
        "critic": (17793, {"value": (1,)}),
    },
    "conf/critic/template_state_action": {
        "policy": (17924, {"action": (4,)}),
        "critic": (34305, {"q_value": (1,)}),
    },
    "docs/cartpole_concat_model_builder": {
        "policy": (1282, {"action": (2,)}),
        "critic": (1249, {"value": (1,)}),
    },
    "docs/ff_concat_model_builder": {
        "policy": (96252, {"action_move": (4,), "action_use": (16,)}),
        "critic": (93801, {"value": (1,)}),
    },
    "docs/ff_shared_embedding_concat_model_builder": {
        "policy": (96252, {"action_move": (4,), "action_use": (16,), "latent": (128,)}),
        "critic": (129, {"value": (1,)}),
    },
    "docs/rnn_concat_model_builder": {
        "policy": (116124, {"action_move": (4,), "action_use": (16,)}),
        "critic": (115497, {"value": (1,)}),
    },
    "docs/custom_cartpole_net": {
        "policy": (690, {"action": (2,)}),
        "critic": (657, {"value": (1,)}),
    },
    "docs/custom_plain_cartpole_net": {
        "policy": (690, {"action": (2,)}),
        "critic": (657, {"value": (1,)}),
    },
    "docs/custom_complex_net": {
        "policy": (128988, {"action_move": (4,), "action_use": (16,)}),
        "critic": (128361, {"value": (1,)}),
    },
    "docs/custom_shared_complex_net": {
        "policy": (128988, {"action_move": (4,), "action_use": (16,), "latent_screen": (4, 32)}),
        "critic": (44609, {"value": (1,)}),
    },
    "tutorials/tutorial_cutting_2d_basic": {
        "policy": (1998, {"order": (2,), "piece_idx": (10,), "rotation": (2,)}),
        "critic": (1153, {"value": (1,)}),
    },
    "tutorials/tutorial_cutting_2d_flat": {
        "policy": (2542, {"cut_order": (2,), "cut_rotation": (2,), "piece_idx": (10,)}),
        "critic": (1281, {"value": (1,)}),
    },
    "tutorials/tutorial_cutting_2d_struct": {
        "policy[0]": (654, {"piece_idx": (10,)}),
        "policy[1]": (452, {"cut_rotation": (2,), "cut_order": (2,)}),
        "critic[0]": (833, {"value": (1,)}),
        "critic[1]": (257, {"value": (1,)}),
    },
    "tutorials/tutorial_cutting_2d_struct_masked": {
        "policy[0]": (654, {"piece_idx": (10,)}),
        "policy[1]": (452, {"cut_rotation": (2,), "cut_order": (2,)}),
        "critic[0]": (833, {"value": (1,)}),
        "critic[1]": (257, {"value": (1,)}),
    },
    "test/template cartpole, step critic, shared 'latent'": {
        "policy": (3458, {"action": (2,), "latent": (64,)}),
        "critic": (65, {"value": (1,)}),
    },
    "test/template cartpole, step critic, shared per step": {
        "policy": (3458, {"action": (2,), "observation_DenseBlock": (32,)}),
        "critic": (2177, {"value": (1,)}),
    },
    "test/template cartpole, delta critic": {
        "policy": (3458, {"action": (2,)}),
        "critic": (3393, {"value": (1,)}),
    },
    "test/template two steps, shared critic": {
        "policy[0]": (17499, {"action_0_0": (3,)}),
        "policy[1]": (17759, {"action_1_0": (5,), "action_1_1": (2,)}),
        "critic": (17369, {"value": (1,)}),
    },
    "test/template two steps, step critic": {
        "policy[0]": (17499, {"action_0_0": (3,)}),
        "policy[1]": (17759, {"action_1_0": (5,), "action_1_1": (2,)}),
        "critic[0]": (17369, {"value": (1,)}),
        "critic[1]": (17369, {"value": (1,)}),
    },
    "test/template two steps, delta critic": {
        "policy[0]": (17499, {"action_0_0": (3,)}),
        "policy[1]": (17759, {"action_1_0": (5,), "action_1_1": (2,)}),
        "critic[0]": (17369, {"value": (1,)}),
        "critic[1]": (20537, {"value": (1,)}),
    },
    "test/template two steps, shared critic, keys out of order": {
        "policy[0]": (26, {"move": (2,)}),
        "policy[1]": (39, {"pick": (3,)}),
        "critic": (49, {"value": (1,)}),
    },
    "test/template two steps, shared per step": {
        "policy[0]": (17499, {"action_0_0": (3,), "latent": (64,)}),
        "policy[1]": (3879, {"action_1_0": (5,), "action_1_1": (2,), "observation_1_DenseBlock": (32,)}),
        "critic[0]": (65, {"value": (1,)}),
        "critic[1]": (2177, {"value": (1,)}),
    },
    "test/flatten_concat two steps": {
        "policy[0]": (855043, {"action_0_0": (3,)}),
        "policy[1]": (856071, {"action_1_0": (5,), "action_1_1": (2,)}),
        "critic[0]": (854529, {"value": (1,)}),
        "critic[1]": (854529, {"value": (1,)}),
    },
    "test/flatten_concat categorical value": {
        "policy": (67586, {"action": (2,)}),
        "critic": (1035, {"probabilities": (11,), "value": ()}),
    },
    "test/flatten_concat two steps, delta critic": {
        "policy[0]": (855043, {"action_0_0": (3,)}),
        "policy[1]": (856071, {"action_1_0": (5,), "action_1_1": (2,)}),
        "critic[0]": (98593, {"value": (1,)}),
        "critic[1]": (98625, {"value": (1,)}),
    },
    "test/flatten_concat two steps, step Q critics": {
        "policy[0]": (855043, {"action_0_0": (3,)}),
        "policy[1]": (856071, {"action_1_0": (5,), "action_1_1": (2,)}),
        "critic[0]": (98659, {"action_0_0_q_values": (3,)}),
        "critic[1]": (98791, {"action_1_0_q_values": (5,), "action_1_1_q_values": (2,)}),
    },
    "test/flatten_concat two steps, shared Q critic": {
        "policy[0]": (855043, {"action_0_0": (3,)}),
        "policy[1]": (856071, {"action_1_0": (5,), "action_1_1": (2,)}),
        "critic": (98890, {"action_0_0_q_values": (3,), "action_1_0_q_values": (5,), "action_1_1_q_values": (2,)}),
    },
    "test/flatten_concat shared embedding, two steps": {
        "policy[0]": (99139, {"action_0_0": (3,), "latent": (32,)}),
        "policy[1]": (99207, {"action_1_0": (5,), "action_1_1": (2,), "latent": (32,)}),
        "critic[0]": (545, {"value": (1,)}),
        "critic[1]": (545, {"value": (1,)}),
    },
    "test/template two steps, step Q critics": {
        "policy[0]": (17499, {"action_0_0": (3,)}),
        "policy[1]": (17759, {"action_1_0": (5,), "action_1_1": (2,)}),
        "critic[0]": (17499, {"action_0_0_q_values": (3,)}),
        "critic[1]": (17759, {"action_1_0_q_values": (5,), "action_1_1_q_values": (2,)}),
    },
    "test/template two steps, shared Q critic": {
        "policy[0]": (17499, {"action_0_0": (3,)}),
        "policy[1]": (17759, {"action_1_0": (5,), "action_1_1": (2,)}),
        "critic": (17954, {"action_0_0_q_values": (3,), "action_1_0_q_values": (5,), "action_1_1_q_values": (2,)}),
    },
    "test/flatten_concat every action space": {
        "policy": (72210, {"force": (4,), "move": (4,), "pick": (7,), "use": (3,)}),
        "critic": (67841, {"value": (1,)}),
    },
    "test/flatten_concat masked policy": {
        "policy": (1541, {"action": (3,), "other": (2,)}),
    },
    "test/flatten_concat masked policy, mask removed": {
        "policy": (1445, {"action": (3,), "other": (2,)}),
    },
}


# --- building and comparing --------------------------------------------------------------------------------------

def compose(case: Case) -> ps.Models:
    obs, act = case.spaces()
    return ps.compose(yaml.safe_load(case.text), obs, act)


def networks(models: ps.Models) -> dict[str, nn.Module]:
    """Every network of `models` by its name in `MAZE`."""
    named = {_name("policy", step, len(models.policies)): m for step, m in models.policies.items()}
    named.update({_name("critic", step, len(models.critics)): m for step, m in models.critics.items()})
    return named


def _name(role: str, step: int | str, steps: int) -> str:
    return role if steps == 1 and step in (0, "shared") else f"{role}[{step}]"


def measured(models: ps.Models) -> Measured:
    """Per network: its parameter count and the shape of each output (from the fold)."""
    result: Measured = {}
    for name, module in networks(models).items():
        spec, in_shapes = getattr(module, "spec", None), getattr(module, "in_shapes", {})
        outputs = {} if spec is None else {k: tuple(ps.infer_shapes(spec, in_shapes)[k]) for k in spec.out_keys}
        result[name] = (sum(p.numel() for p in module.parameters()), outputs)
    return result


def maze_networks(case: Case) -> dict[str, nn.Module]:
    """Maze's networks for the case, built by Maze's own composer as its training runner builds them."""
    factory = importlib.import_module("maze.core.utils.factory").Factory
    composer_type = importlib.import_module("maze.perception.models.model_composer").BaseModelComposer

    text = case.text
    for ours, theirs in case.maze_targets.items():
        text = text.replace(ours, theirs)
    obs, act = case.spaces()
    with warnings.catch_warnings():  # Maze's own (its composer draws the networks with matplotlib)
        warnings.simplefilter("ignore")
        composer = factory(composer_type).instantiate(yaml.safe_load(text), action_spaces_dict=act,
                                                      observation_spaces_dict=obs,
                                                      agent_counts_dict={step: 1 for step in obs})
        policy, critic = composer.policy, composer.critic
    named = {_name("policy", step, len(obs)): net for step, net in policy.networks.items()}
    if critic is not None:
        shared = type(critic).__name__.startswith("TorchShared")
        for key, net in critic.networks.items():
            if isinstance(key, tuple):  # Maze's Q critics: two deep copies per step, and their target copies
                if isinstance(key[0], tuple) or key[1] != 0:
                    continue
                key = key[0]
            named[_name("critic", "shared" if shared else key, 1 if shared else len(obs))] = net
    return named


def sample_inputs(module: nn.Module, spaces: Mapping[str, gym.Space[Any]], seed: int) -> dict[str, torch.Tensor]:
    """A batch of 2 of the observations and of whatever else `module` reads (Maze's networks may declare inputs
    they do not use): masks 0/1 (the first entry on), everything else standard normal."""
    generator = torch.Generator().manual_seed(seed)
    shapes: dict[str, tuple[int, ...]] = {k: tuple(s.shape or ()) for k, s in spaces.items()}
    shapes.update(getattr(module, "in_shapes", {}))
    inputs = {}
    for key, shape in shapes.items():
        if key.endswith("_mask"):
            mask = torch.rand((2, *shape), generator=generator) < 0.5
            mask[..., 0] = True
            inputs[key] = mask.float()
        else:
            inputs[key] = torch.randn((2, *shape), generator=generator)
    return inputs


def _grouped(state: Mapping[str, torch.Tensor], marker: str) -> dict[str, list[str]] | None:
    """State-dict names grouped by the block they belong to (the name after `marker`), or None if some name is not
    inside a block."""
    groups: dict[str, list[str]] = {}
    for name in state:
        head, found, rest = name.partition(marker)
        if not found:
            return None
        groups.setdefault(rest.partition(".")[0], []).append(name)
    return groups


def paired_weights(maze: nn.Module, ours: nn.Module) -> list[tuple[str, str]]:
    """(Maze's state-dict name, ours) for every tensor: block by block where both name blocks alike (templates and
    built-ins use Maze's block names), else each of Maze's tensors in turn with the first of ours of its kind
    ('weight', 'bias', ...) and shape; shapes must agree."""
    theirs_state, our_state = maze.state_dict(), ours.state_dict()
    theirs_groups, our_groups = _grouped(theirs_state, "perception_blocks."), _grouped(our_state, "blocks.")
    if theirs_groups is not None and our_groups is not None and set(theirs_groups) == set(our_groups):
        pairs = [pair for block in theirs_groups for pair in zip(theirs_groups[block], our_groups[block])]
        counts = {b: (len(theirs_groups[b]), len(our_groups[b])) for b in theirs_groups}
        assert all(a == b for a, b in counts.values()), f"tensors per block differ (Maze, ours): {counts}"
    else:
        assert len(theirs_state) == len(our_state), (list(theirs_state), list(our_state))
        free, pairs = list(our_state), []
        for theirs_name, tensor in theirs_state.items():
            kind = theirs_name.rpartition(".")[2]
            match = next(n for n in free if n.rpartition(".")[2] == kind and our_state[n].shape == tensor.shape)
            free.remove(match)
            pairs.append((theirs_name, match))
    for theirs_name, our_name in pairs:
        assert theirs_state[theirs_name].shape == our_state[our_name].shape, (theirs_name, our_name)
    return pairs


def init_differences(maze: nn.Module, ours: nn.Module, pairs: list[tuple[str, str]]) -> list[str]:
    """Tensors whose initial values are not drawn alike: zero in one and not in the other, or standard deviations
    more than 35% apart (tensors of 64 values or more)."""
    theirs_state, our_state = maze.state_dict(), ours.state_dict()
    found = []
    for theirs_name, our_name in pairs:
        a, b = theirs_state[theirs_name].float(), our_state[our_name].float()
        if bool((a == 0).all()) != bool((b == 0).all()):
            found.append(f"{our_name}: zero in {'Maze' if bool((a == 0).all()) else 'perceptspec'} only")
        elif a.numel() >= 64 and not bool((a == 0).all()) and not 0.65 < float(b.std() / a.std()) < 1.0 / 0.65:
            found.append(f"{our_name}: std {float(b.std()):.4f}, Maze's {float(a.std()):.4f}")
    return found


def outputs(module: nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        result: dict[str, torch.Tensor] = module(inputs)
    return result


def maze_measured(theirs: Mapping[str, nn.Module], ours: Mapping[str, nn.Module], case: Case) -> Measured:
    """Per Maze network: its parameter count and the shape of each output (run on a sample batch of 2)."""
    obs, _ = case.spaces()
    return {name: (sum(p.numel() for p in net.parameters()),
                   {k: tuple(v.shape[1:]) for k, v in outputs(net, sample_inputs(ours[name], obs[0], 0)).items()})
            for name, net in theirs.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_composes_to_mazes_parameter_counts_and_shapes(name: str) -> None:
    """The config composes unchanged, and each network has Maze's parameter count and output shapes."""
    models = compose(CASES[name])
    expected = {net: (count, shapes) for net, (count, shapes) in MAZE[name].items()}
    ours = measured(models)
    for net, module in networks(models).items():
        if getattr(module, "spec", None) is None:  # the user's own plain module: shapes from a forward pass
            obs, _ = CASES[name].spaces()
            ours[net] = (ours[net][0], {k: tuple(v.shape[1:])
                                        for k, v in outputs(module, sample_inputs(module, obs[0], 0)).items()})
    assert ours == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_builds_mazes_networks(name: str) -> None:
    """Against Maze itself: the same networks (parameters block by block), the same outputs with Maze's weights
    copied in, initial weights drawn alike, and the pinned numbers still Maze's."""
    pytest.importorskip("maze", reason="needs Maze (maze-rl) importable; see benchmarks/RESULTS.md 'Installing the "
                                       "optional comparisons'")
    case = CASES[name]
    for ours_target, theirs_target in case.maze_targets.items():
        module_name = theirs_target.rpartition(".")[0]
        pytest.importorskip(module_name, reason=f"needs Maze's own network {theirs_target} (Maze's source tree "
                                                f"on sys.path)")
    torch.manual_seed(0)
    theirs = maze_networks(case)
    ours = networks(compose(case))
    assert maze_measured(theirs, ours, case) == MAZE[name]
    assert sorted(theirs) == sorted(ours)
    obs, _ = case.spaces()
    for net, module in ours.items():
        maze_net = theirs[net]
        pairs = paired_weights(maze_net, module)
        assert init_differences(maze_net, module, pairs) == [], net
        theirs_state = maze_net.state_dict()
        module.load_state_dict({our_name: theirs_state[theirs_name] for theirs_name, our_name in pairs})
        for seed in range(3):
            inputs = sample_inputs(module, obs[0], seed)
            expected, got = outputs(maze_net, inputs), outputs(module, inputs)
            assert sorted(got) == sorted(expected), net
            for key in got:  # float32 sums in another order: close to the outputs' scale
                scale = max(1.0, float(expected[key].abs().max()))
                torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-5 * scale, msg=f"{net} {key!r}")


def test_template_critics_read_keys_in_mazes_sorted_order() -> None:
    """Maze's critic composers hand the template a gymnasium Dict they build (observations and actions; the union
    over sub-steps), which sorts its keys: the concatenation follows that order (issue #16: out of order, the
    critic's first layer reads its inputs permuted, with the same parameter count)."""
    q_critic = compose(CASES["conf/critic/template_state_action"]).specs["critic"]
    shared = compose(CASES["test/template two steps, shared critic, keys out of order"]).specs["critic"]
    assert isinstance(q_critic, ps.Graph) and isinstance(shared, ps.Graph)
    assert q_critic.blocks["concat"].in_keys == ("action_DenseBlock", "observation_DenseBlock")
    assert shared.blocks["latent"].in_keys == ("alpha_DenseBlock", "zeta_DenseBlock")
