"""Maze's template composer and built-in models as spec functions (perceptspec.templates), Maze model configs read
unchanged (perceptspec._maze), the critic kinds Maze has, and Functional params (issue #16)."""

from __future__ import annotations

import logging
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import perceptspec as ps
from perceptspec import templates
from tests.blockcheck import check_block

D = gym.spaces.Dict


def box(*shape: int) -> gym.spaces.Box:
    return gym.spaces.Box(-1, 1, shape, np.float32)


def dense(units: list[int], non_lin: str = "torch.nn.Tanh") -> dict[str, Any]:
    return {"block_type": "maze.perception.blocks.DenseBlock", "block_params": {"hidden_units": units,
                                                                                 "non_lin": non_lin}}


def modalities(hidden: dict[str, Any] | None = None, recurrence: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"feature": dense([32]), "hidden": hidden or {}, "recurrence": recurrence or {}}


POLICY_COMPOSER = "maze.perception.models.policies.ProbabilisticPolicyComposer"
CUSTOM = "maze.perception.models.custom_model_composer.CustomModelComposer"
TEMPLATE = "maze.perception.models.template_model_composer.TemplateModelComposer"
BUILT_IN = "maze.perception.models.built_in."


def template_config(critic: str | None, shared: Any = None, **builder: Any) -> dict[str, Any]:
    return {"_target_": TEMPLATE,
            "model_builder": {"_target_": "maze.perception.builders.ConcatModelBuilder",
                              "shared_embedding_keys": shared,
                              "observation_modality_mapping": builder.get("mapping", {"observation": "feature"}),
                              "modality_config": builder.get("modality_config", modalities(dense([16])))},
            "policy": {"_target_": POLICY_COMPOSER},
            "critic": None if critic is None else {"_target_": f"maze.perception.models.critics.{critic}"}}


def params(module: torch.nn.Module | None) -> int:
    assert module is not None
    return sum(p.numel() for p in module.parameters())


class TestConcatPerception:
    def test_blocks_are_named_and_wired_as_mazes_concat_model_builder(self) -> None:
        net = templates.concat_perception({"a": (3,), "b": (5,)}, modalities(dense([8])),
                                          {"a": "feature", "b": "feature"})
        assert set(net.blocks) == {"a_DenseBlock", "b_DenseBlock", "concat", "latent"}
        assert net.blocks["concat"].in_keys == ("a_DenseBlock", "b_DenseBlock")
        assert net.out_keys == ("latent",)
        assert ps.infer_shapes(net, {"a": (3,), "b": (5,)})["latent"] == (8,)
        check_block(net, {"a": (3,), "b": (5,)})

    @pytest.mark.parametrize(("hidden", "recurrence", "keys"), [
        (False, False, {"concat": None, "latent": "Concat"}),
        (True, False, {"concat": "Concat", "latent": "Dense"}),
        (False, True, {"concat": "Concat", "latent": "LSTMLastStep"}),
        (True, True, {"concat": "Concat", "hidden": "Dense", "latent": "LSTMLastStep"}),
    ])
    def test_the_last_stage_outputs_latent(self, hidden: bool, recurrence: bool, keys: dict[str, Any]) -> None:
        lstm = {"block_type": "maze.perception.blocks.LSTMLastStepBlock",
                "block_params": {"hidden_size": 6, "num_layers": 1, "bidirectional": False, "non_lin": "torch.nn.Tanh"}}
        config = modalities(dense([7]) if hidden else None, lstm if recurrence else None)
        net = templates.concat_perception({"obs": (4, 3)}, config, {"obs": "feature"})
        kinds = {name: type(block).__name__ for name, block in net.blocks.items() if name != "obs_DenseBlock"}
        assert kinds == {k: v for k, v in keys.items() if v is not None}
        check_block(net, {"obs": (4, 3)})

    def test_perceptspec_block_names_work_too_and_unmapped_observations_are_logged(
            self, caplog: pytest.LogCaptureFixture) -> None:
        config = {"vec": {"block_type": "Dense", "block_params": {"hidden_units": [4]}}, "hidden": {},
                  "recurrence": {}}
        with caplog.at_level(logging.WARNING, logger="perceptspec.templates"):
            net = templates.concat_perception({"x": (3,), "ignored": (2,)}, config, {"x": "vec"})
        assert set(net.in_keys) == {"x"} and "vec_" not in str(net.blocks) and "x_Dense" in net.blocks
        assert "'ignored' is not in observation_modality_mapping" in caplog.text

    def test_weights_start_as_mazes_template_normc_1_body_normc_001_heads(self) -> None:
        spec = templates.template_policy({"observation": (6,)}, {"action": (3,)}, modalities(dense([64])),
                                         {"observation": "feature"})
        module = ps.materialize(spec, {"observation": (6,)}, seed=0)
        for name, parameter in module.named_parameters():
            if name.endswith("weight"):
                norms = parameter.detach().norm(dim=1)
                std = 0.01 if "action" in name else 1.0
                torch.testing.assert_close(norms, torch.full_like(norms, std))
            else:
                assert not parameter.detach().any(), name


class TestSharedEmbedding:
    def test_the_critic_starts_from_the_shared_keys_and_computes_only_what_follows(self) -> None:
        config = template_config("StateCriticComposer", shared=["concat"],
                                 modality_config=modalities(dense([16])))
        models = ps.compose(config, D({"observation": box(4)}), D({"action": gym.spaces.Discrete(2)}))
        policy, critic = models.specs["policy"], models.specs["critic"]
        assert policy is not None and critic is not None
        assert set(policy.out_keys) == {"action", "concat"}
        assert set(critic.in_keys) == {"concat"} and set(critic.blocks) == {"latent", "value"}  # type: ignore[attr-defined]
        out = models.actor_critic({"observation": torch.randn(5, 4)})
        assert out["action"].shape == (5, 2) and out["value"].shape == (5, 1)
        assert models.critic is not None
        expected = models.critic({"concat": models.policy({"observation": torch.randn(1, 4)})["concat"]})
        assert expected["value"].shape == (1, 1)

    def test_shared_keys_by_sub_step(self) -> None:
        config = template_config("StateCriticComposer", shared={0: ["concat"], 1: []},
                                 modality_config=modalities(dense([16])))
        obs, act = D({"observation": box(4)}), D({"action": gym.spaces.Discrete(2)})
        models = ps.compose(config, {0: obs, 1: obs}, {0: act, 1: act})
        assert set(models.in_shapes["critic[0]"]) == {"concat"}
        assert set(models.in_shapes["critic[1]"]) == {"observation"}


class TestMazeConfigs:
    obs = D({"observation": box(4)})
    act = D({"action": gym.spaces.Discrete(2)})

    def custom(self, policy: dict[str, Any], critic: dict[str, Any] | None) -> dict[str, Any]:
        return {"_target_": CUSTOM, "policy": {"_target_": POLICY_COMPOSER, "networks": [policy],
                                                "substeps_with_separate_agent_nets": []},
                "critic": critic, "distribution_mapper_config": []}

    def test_flatten_concat_as_maze_ships_it(self) -> None:
        yaml_text = f"""
_target_: {CUSTOM}
distribution_mapper_config:
  - action_space: gymnasium.spaces.Box
    distribution: maze.distributions.gaussian.DiagonalGaussianProbabilityDistribution
policy:
  _target_: {POLICY_COMPOSER}
  networks:
    - _target_: {BUILT_IN}flatten_concat.FlattenConcatPolicyNet
      non_lin: torch.nn.Tanh
      hidden_units: [ 256, 256 ]
  substeps_with_separate_agent_nets: [ ]
critic:
  _target_: maze.perception.models.critics.StateCriticComposer
  networks:
    - _target_: {BUILT_IN}flatten_concat.FlattenConcatStateValueNet
      non_lin: torch.nn.Tanh
      hidden_units: [ 256, 256 ]
"""
        models = ps.compose(_yaml(yaml_text), self.obs, D({"action": box(2)}))
        # obs 4 -> 256 -> 256 -> heads: Maze's counts (4*256+256) + (256*256+256) + head
        assert params(models.policy) == 1280 + 65792 + 256 * 4 + 4
        assert params(models.critic) == 1280 + 65792 + 257
        out = models.actor_critic({"observation": torch.randn(3, 4)})
        assert out["action"].shape == (3, 4) and out["value"].shape == (3, 1)

    def test_shared_embedding_built_ins(self) -> None:
        config = self.custom({"_target_": f"{BUILT_IN}flatten_concat_shared_embedding."
                                          f"FlattenConcatSharedEmbeddingPolicyNet", "non_lin": "torch.nn.Tanh",
                              "hidden_units": [32], "head_units": [16]},
                             {"_target_": "maze.perception.models.critics.SharedStateCriticComposer",
                              "stack_observations": False,
                              "networks": [{"_target_": f"{BUILT_IN}flatten_concat_shared_embedding."
                                                        f"FlattenConcatSharedEmbeddingStateValueNet",
                                            "non_lin": "torch.nn.Tanh", "head_units": [16]}]})
        models = ps.compose(config, self.obs, self.act)
        assert models.in_shapes["critic"] == {"latent": (32,)}
        assert params(models.critic) == 32 * 16 + 16 + 17

    def test_masked_and_categorical_value_built_ins(self) -> None:
        obs = D({"observation": box(4), "action_mask": gym.spaces.MultiBinary(3)})
        config = self.custom({"_target_": f"{BUILT_IN}flatten_concat_masked.FlattenConcatMaskedPolicyNet",
                              "non_lin": "torch.nn.ReLU", "hidden_units": [8], "remove_mask_from_obs": True},
                             {"_target_": "maze.perception.models.critics.StateCriticComposer",
                              "networks": [{"_target_": f"{BUILT_IN}flatten_concat.FlattenConcatCategoricalStateValueNet",
                                            "non_lin": "torch.nn.ReLU", "hidden_units": [8],
                                            "support_range": [-3, 3]}]})
        models = ps.compose(config, obs, D({"action": gym.spaces.Discrete(3)}))
        mask = torch.tensor([[True, False, True]])
        logits = models.policy({"observation": torch.randn(1, 4), "action_mask": mask})["action"]
        assert logits[0, 1] == torch.finfo(logits.dtype).min and torch.isfinite(logits[0, [0, 2]]).all()
        assert models.in_shapes["policy"] == {"observation": (4,), "action_mask": (3,)}
        assert models.critic is not None
        value = models.critic({"observation": torch.randn(2, 4), "action_mask": torch.ones(2, 3)})
        assert value["probabilities"].shape == (2, 7) and value["value"].shape == (2,)
        support = torch.arange(-3, 4, dtype=torch.float32)
        torch.testing.assert_close(value["value"], (value["probabilities"].softmax(-1) * support).sum(-1))

    @pytest.mark.parametrize(("actions", "inputs", "outputs"), [
        (D({"move": gym.spaces.Discrete(3), "jump": gym.spaces.Discrete(2)}), {"observation"},
         {"move_q_values": (3,), "jump_q_values": (2,)}),
        (D({"move": gym.spaces.Discrete(3), "force": box(2)}), {"observation", "move", "force"},
         {"q_value": (1,)}),
    ])
    def test_state_action_critics_in_mazes_layout(self, actions: gym.spaces.Dict, inputs: set[str],
                                                  outputs: dict[str, tuple[int, ...]]) -> None:
        config = self.custom({"_target_": f"{BUILT_IN}flatten_concat.FlattenConcatPolicyNet",
                              "non_lin": "torch.nn.ReLU", "hidden_units": [8]},
                             {"_target_": "maze.perception.models.critics.StateActionCriticComposer",
                              "networks": [{"_target_": f"{BUILT_IN}flatten_concat."
                                                        f"FlattenConcatStateActionValueNet",
                                            "non_lin": "torch.nn.ReLU", "hidden_units": [8]}]})
        models = ps.compose(config, self.obs, actions)
        assert set(models.in_shapes["critic"]) == inputs
        shapes = ps.infer_shapes(models.specs["critic"], models.in_shapes["critic"])  # type: ignore[arg-type]
        assert {k: shapes[k] for k in outputs} == outputs

    def test_template_state_action_critic_reads_the_actions_the_mapping_names(self) -> None:
        config = template_config("StateActionCriticComposer",
                                 mapping={"observation": "feature", "force": "feature"})
        models = ps.compose(config, self.obs, D({"force": box(2)}))
        assert set(models.in_shapes["critic"]) == {"observation", "force"}
        assert models.specs["critic"] is not None and models.specs["critic"].out_keys == ("q_value",)

    def test_delta_state_critic_reads_the_previous_value_after_the_first_sub_step(self) -> None:
        config = template_config("DeltaStateCriticComposer",
                                 mapping={"observation": "feature", "prev_value": "feature"})
        models = ps.compose(config, {0: self.obs, 1: self.obs}, {0: self.act, 1: self.act})
        assert set(models.in_shapes["critic[0]"]) == {"observation"}
        assert models.in_shapes["critic[1]"] == {"observation": (4,), "prev_value": (1,)}

    def test_shared_state_action_critic_reads_every_sub_steps_actions(self) -> None:
        config = template_config("SharedStateActionCriticComposer",
                                 mapping={"observation": "feature", "a": "feature", "b": "feature"})
        models = ps.compose(config, {0: self.obs, 1: self.obs}, {0: D({"a": box(1)}), 1: D({"b": box(2)})})
        assert models.in_shapes["critic"] == {"observation": (4,), "a": (1,), "b": (2,)}

    def test_networks_by_sub_step_key(self) -> None:
        net = {"_target_": "perceptspec.templates.flatten_concat_policy", "non_lin": "tanh"}
        config = {"policy": {"networks": {"1": {**net, "hidden_units": [3]}, "0": {**net, "hidden_units": [5]}}}}
        models = ps.compose(config, {0: self.obs, 1: self.obs}, {0: self.act, 1: self.act})
        assert params(models.policies[0]) == 4 * 5 + 5 + 5 * 2 + 2
        assert params(models.policies[1]) == 4 * 3 + 3 + 3 * 2 + 2

    def test_template_specs_are_ordinary_specs(self) -> None:
        models = ps.compose(template_config("StateCriticComposer"), self.obs, self.act)
        spec = models.specs["policy"]
        assert spec is not None and ps.from_yaml(ps.to_yaml(spec)) == spec
        assert "observation_DenseBlock" in ps.summary(spec, models.in_shapes["policy"])


class TestFunctionalParams:
    def test_params_are_data_hashed_and_serialized(self) -> None:
        a = ps.Functional(in_keys="x", out_keys="y", func="support_to_scalar", params={"support_range": [-1, 1]})
        b = ps.Functional(in_keys="x", out_keys="y", func="support_to_scalar", params={"support_range": (-1, 1)})
        assert a == b and hash(a) == hash(b) and ps.from_yaml(ps.to_yaml(a)) == a
        check_block(a, {"x": (3,)})

    def test_a_user_function_receives_its_params(self) -> None:
        def scale_shape(shape: tuple[int, ...], *, factor: float) -> tuple[int, ...]:
            return shape

        def scale(x: torch.Tensor, *, factor: float) -> torch.Tensor:
            return x * factor

        ps.register_function("test_templates_scale", scale_shape, scale)
        spec = ps.Functional(in_keys="x", out_keys="y", func="test_templates_scale", params={"factor": 3.0})
        module = check_block(spec, {"x": (2,)})
        x = torch.randn(4, 2)
        torch.testing.assert_close(module({"x": x})["y"], 3 * x)


def _yaml(text: str) -> Any:
    from perceptspec._yaml import load_yaml

    return load_yaml(text, "test config")


class TestDefaultNetworks:
    """`ps.compose(None, ...)`: Stable-Baselines3's default policy and value networks, as template models."""

    class _Env(gym.Env[Any, Any]):
        def __init__(self, observation_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
            self.observation_space, self.action_space = observation_space, action_space

    @pytest.mark.parametrize(("sb3_policy", "observation_space"), [
        ("MlpPolicy", box(4)),
        ("MlpPolicy", gym.spaces.Box(-1, 1, (3, 5), np.float32)),
        ("MlpPolicy", gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)),  # MiniGrid's: too small for the NatureCNN
        ("CnnPolicy", gym.spaces.Box(0, 255, (3, 64, 64), np.uint8)),
        ("MultiInputPolicy", D({"img": gym.spaces.Box(0, 255, (3, 40, 48), np.uint8), "vec": box(5)})),
    ])
    def test_sb3s_default_networks_parameter_for_parameter(self, sb3_policy: str,
                                                           observation_space: gym.Space[Any]) -> None:
        from stable_baselines3 import PPO

        action_space = gym.spaces.Discrete(4)
        sb3 = PPO(sb3_policy, self._Env(observation_space, action_space), device="cpu").policy
        models = ps.compose(None, observation_space, action_space)
        assert params(models.policy) + params(models.critic) == params(sb3)

    def test_a_gaussian_actions_log_stds_are_a_parameter_as_sb3s(self) -> None:
        from stable_baselines3 import PPO

        from perceptspec.integrations.sb3 import SpecActorCriticPolicy

        env = self._Env(box(3), gym.spaces.Box(-2, 2, (2,), np.float32))
        models = ps.compose(None, env.observation_space, env.action_space)
        spec = models.specs["policy"]
        assert spec is not None and isinstance(spec.blocks["action"], ps.StateIndependentLogStd)  # type: ignore[attr-defined]
        ours = PPO(SpecActorCriticPolicy, env, device="cpu", n_steps=64, batch_size=32, n_epochs=1)
        theirs = PPO("MlpPolicy", env, device="cpu")
        assert params(ours.policy) == params(theirs.policy) == params(models.policy) + params(models.critic)

    def test_a_lone_image_shares_its_cnn_features_with_the_critic_as_sb3s_ppo(self) -> None:
        models = ps.compose(None, gym.spaces.Box(0, 1, (3, 64, 64), np.float32), gym.spaces.Discrete(4))
        assert models.in_shapes["critic"] == {"latent": (512,)}
        out = models.actor_critic({"observation": torch.rand(2, 3, 64, 64)})
        assert out["action"].shape == (2, 4) and out["value"].shape == (2, 1)

    def test_an_image_too_small_for_the_nature_cnn_is_flattened_as_by_sb3s_mlp_policy(self) -> None:
        """SB3's CnnPolicy fails on MiniGrid's 7x7 images (the NatureCNN's 8x8 kernel does not fit); its MlpPolicy
        scales them to [0, 1], puts the channels first and flattens them, and so do the default networks."""
        from stable_baselines3 import PPO

        space, action_space = gym.spaces.Box(0, 255, (7, 7, 3), np.uint8), gym.spaces.Discrete(3)
        with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
            PPO("CnnPolicy", self._Env(space, action_space), device="cpu")
        models = ps.compose(None, space, action_space)
        spec = models.specs["policy"]
        assert isinstance(spec, ps.Graph)
        assert [type(b).__name__ for _, b in spec.blocks_in_order][:3] == ["ToFloat", "Permute", "Flatten"]
        pixels = torch.randint(0, 256, (2, 7, 7, 3), dtype=torch.uint8)
        first_linear = next(m for m in models.policy.modules() if isinstance(m, torch.nn.Linear))
        read: list[torch.Tensor] = []
        first_linear.register_forward_pre_hook(lambda _module, inputs: read.append(inputs[0]))
        models.policy({"observation": pixels})
        torch.testing.assert_close(read[0], pixels.permute(0, 3, 1, 2).flatten(1).float() / 255)

    def test_initialised_as_sb3_orthogonal_gains(self) -> None:
        models = ps.compose({**templates.DEFAULT_CONFIG, "seed": 0}, box(6), gym.spaces.Discrete(3))
        for module, head_gain in ((models.policy, 0.01), (models.critic, 1.0)):
            assert module is not None
            for name, parameter in module.named_parameters():
                if name.endswith("weight"):
                    gain = head_gain if ("action" in name or "value" in name) else 2 ** 0.5
                    w = parameter.detach()
                    rows = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
                    torch.testing.assert_close(rows, gain ** 2 * torch.eye(rows.shape[0]), atol=1e-5, rtol=0)
