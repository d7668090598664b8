"""Observations of every gymnasium space kind compose (issue #17 part 1): a table of spaces, each composed, run on
raw observations as the env gives them, its fold held to the forward pass; images made channel-first visibly;
real envs (FrozenLake, Taxi, Blackjack), the command line, SB3 and TensorDict agree; and every refusal."""

from __future__ import annotations

import contextlib
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import perceptspec as ps
from perceptspec._observations import flat_values, module_inputs, preprocessing
from perceptspec._torch._walk import every_key
from perceptspec.cli import main
from perceptspec.integrations import spec_config
from tests.space_env import NESTED, SPACES, Shapes

def config(**observations: Any) -> dict[str, Any]:
    """Maze's FlattenConcat nets (generic over the observation keys), a discrete head and a state critic."""
    body = {"hidden_units": [8], "non_lin": "tanh"}
    return {"policy": {"networks": [{"_target_": "perceptspec.templates.flatten_concat_policy", **body}]},
            "critic": {"networks": [{"_target_": "perceptspec.templates.flatten_concat_state_value", **body}]},
            "seed": 0, **({"observations": observations} if observations else {})}


def raw_batch(space: gym.Space[Any], n: int = 3) -> dict[str, torch.Tensor]:
    """`n` observations sampled from `space`, as the env gives them, batched."""
    space.seed(0)
    samples = [flat_values(space, space.sample()) for _ in range(n)]
    return module_inputs(preprocessing([space]), {k: np.stack([np.asarray(s[k]) for s in samples]) for k in samples[0]})


def assert_fold_matches_forward(module: ps.SpecModule, inputs: dict[str, torch.Tensor]) -> None:
    shapes = ps.infer_shapes(module.spec, module.in_shapes)
    assert ps.count_parameters(module.spec, module.in_shapes) == sum(p.numel() for p in module.parameters())
    for key, value in every_key(module, inputs).items():
        assert tuple(value.shape) == (len(next(iter(inputs.values()))), *shapes[key]), key


@pytest.mark.parametrize("name", list(SPACES))
def test_every_space_kind_composes_and_reads_raw_observations(name: str) -> None:
    space, shapes, raw = SPACES[name]
    assert ps.spaces.obs_shapes(space) == shapes and ps.spaces.raw_obs_shapes(space) == raw
    models = ps.compose(config(), space, gym.spaces.Discrete(3))
    assert models.obs_shapes[0] == raw and models.in_shapes["policy"] == raw
    inputs = raw_batch(space)
    out = models.actor_critic(inputs)
    assert out["action"].shape == (3, 3) and out["value"].shape == (3, 1)
    for name_ in ("policy", "critic"):
        module = getattr(models, name_)
        assert isinstance(module, ps.SpecModule)
        assert_fold_matches_forward(module, inputs)
        assert ps.from_yaml(ps.to_yaml(module.spec)) == module.spec


@pytest.mark.parametrize("name", list(SPACES))
def test_the_command_line_sb3_and_tensordict_build_what_the_composer_builds(name: str, tmp_path: Path) -> None:
    """One space, four ways in: `ps.compose`; `perceptspec summary --json` on an env of that space; SB3's PPO with
    `SpecActorCriticPolicy` (Tuple and nested Dict observations through `FlatObservationWrapper`, as SB3's buffers
    need); a TensorDict with nested keys. Same networks (inputs, outputs, parameter counts) and same outputs on the
    same observations."""
    from stable_baselines3 import PPO
    from tensordict import TensorDict  # type: ignore[import-untyped]  # tensordict ships no type information

    from perceptspec.integrations.sb3 import FlatObservationWrapper, SpecActorCriticPolicy
    from perceptspec.integrations.tensordict import as_tensordict_module
    from tests.space_env import SpaceEnv

    space = SPACES[name][0]
    models = ps.compose(config(), space, gym.spaces.Discrete(3))
    inputs = raw_batch(space)
    expected = models.actor_critic(inputs)
    counts = {role: sum(p.numel() for p in getattr(models, role).parameters()) for role in ("policy", "critic")}

    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config()))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["summary", str(path), "--env", "tests.space_env:SpaceEnv", "--env-kwargs",
                     json.dumps({"space": name}), "--json"]) == 0
    networks = json.loads(out.getvalue())["networks"]
    for role in ("policy", "critic"):
        assert networks[role]["parameters"] == counts[role], role
        assert networks[role]["inputs"] == {k: list(v) for k, v in models.in_shapes[role].items()}, role

    env: gym.Env[Any, Any] = SpaceEnv(name)
    if isinstance(space, gym.spaces.Tuple) or any(isinstance(s, (gym.spaces.Dict, gym.spaces.Tuple))
                                                  for s in getattr(space, "spaces", {}).values()):
        env = FlatObservationWrapper(env)
    model = PPO(SpecActorCriticPolicy, env, policy_kwargs={"config": config()}, n_steps=8, batch_size=8, seed=0)
    policy = model.policy
    assert isinstance(policy, SpecActorCriticPolicy)
    assert sum(p.numel() for p in policy.parameters()) == sum(counts.values())
    space.seed(0)
    samples: list[Any] = [env.observation(space.sample()) if isinstance(env, FlatObservationWrapper)
                          else space.sample() for _ in range(3)]
    batch = {k: np.stack([s[k] for s in samples]) for k in samples[0]} if isinstance(samples[0], dict) \
        else np.stack(samples)
    obs, _ = policy.obs_to_tensor(batch)
    distribution = policy.get_distribution(obs).distribution
    assert isinstance(distribution, torch.distributions.Categorical)
    torch.testing.assert_close(distribution.logits,
                               torch.log_softmax(expected["action"], -1))
    torch.testing.assert_close(policy.predict_values(obs), expected["value"])
    model.learn(8)  # SB3's own path: its wrappers (VecTransposeImage), buffers and update
    assert not torch.equal(policy.predict_values(obs), expected["value"])

    nested: dict[str, Any] = {}
    for key, value in inputs.items():
        *levels, leaf = key.split("/")
        node = nested
        for level in levels:
            node = node.setdefault(level, {})
        node[leaf] = value
    td = as_tensordict_module(models.policy, out_keys={"action": "logits"})(TensorDict(nested, batch_size=[3]))
    torch.testing.assert_close(td["logits"], expected["action"])


@pytest.mark.parametrize("name", ["discrete", "multi_discrete", "image_channel_last", "tuple", "nested_dict"])
def test_default_networks_read_converted_observations(name: str) -> None:
    """`ps.compose(None, ...)` (SB3's default layouts) reads the converted observations too: a CNN on each image."""
    space = SPACES[name][0]
    models = ps.compose(None, space, gym.spaces.Discrete(3))
    inputs = raw_batch(space)
    assert models.actor_critic(inputs)["action"].shape == (3, 3)
    policy = models.policy
    assert isinstance(policy, ps.SpecModule)
    assert_fold_matches_forward(policy, inputs)


@pytest.mark.parametrize("name", ["discrete", "multi_discrete", "nested_dict"])
def test_discrete_observations_embedded_when_asked(name: str) -> None:
    space = SPACES[name][0]
    models = ps.compose(config(discrete="embedding", embedding_dim=4), space, gym.spaces.Discrete(3))
    policy = models.policy
    assert isinstance(policy, ps.SpecModule)
    kinds = {type(b).__name__ for b in policy.spec.blocks.values()}  # type: ignore[attr-defined]
    assert "Embedding" in kinds and "OneHot" not in kinds
    assert_fold_matches_forward(policy, raw_batch(space))
    expected = {"discrete": (4,), "multi_discrete": (12,)}.get(name)
    assert expected is None or ps.infer_shapes(policy.spec, policy.in_shapes)["observation_flat"] == expected


def test_a_channel_last_image_is_scaled_and_permuted_by_visible_blocks() -> None:
    """Issue #17: VGGConvDense on Box(0, 255, (64, 64, 3), uint8) took 64 as channels; now the network reads
    (3, 64, 64) floats in [0, 1], made by a ToFloat and a Permute that the summary shows."""
    space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    spec = spec_config(
        ps.Graph({"conv": ps.VGGConvDense(in_keys="observation", out_keys="h", hidden_channels=[4], hidden_units=[8]),
                  "action": ps.LinearOutput(in_keys="h", out_keys="action", output_units=2)}, out_keys="action"))
    models = ps.compose(spec, space, gym.spaces.Discrete(2))
    policy = models.policy
    assert isinstance(policy, ps.SpecModule)
    summary = ps.summary(policy.spec, policy.in_shapes)
    assert "ToFloat ÷255" in summary and "Permute [3, 1, 2]" in summary and "VGGConvDense 3→4" in summary
    x = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    env = every_key(policy, {"observation": x})
    torch.testing.assert_close(env["observation_image"], x.permute(0, 3, 1, 2).float() / 255)
    unscaled = ps.compose({**spec, "observations": {"normalize_images": False}}, space, gym.spaces.Discrete(2)).policy
    assert isinstance(unscaled, ps.SpecModule) and "ToFloat ÷255" not in ps.summary(unscaled.spec, unscaled.in_shapes)


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "Taxi-v4", "Blackjack-v1"])
def test_gymnasium_envs_with_discrete_observations(env_id: str) -> None:
    env = gym.make(env_id)
    models = ps.compose(config(), env.observation_space, env.action_space)
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        values = {k: np.asarray(v)[None] for k, v in flat_values(env.observation_space, obs).items()}
        out = models.actor_critic(module_inputs(preprocessing([env.observation_space]), values))
        action = int(out["action"].argmax())
        obs, *_ = env.step(action)
    assert out["value"].shape == (1, 1)


def test_command_line_summary_and_check_on_a_discrete_env(tmp_path: Path) -> None:
    path = tmp_path / "frozen.yaml"
    path.write_text(textwrap.dedent("""\
        policy:
          networks: [{_target_: perceptspec.templates.flatten_concat_policy, hidden_units: [8], non_lin: tanh}]
        critic:
          networks: [{_target_: perceptspec.templates.flatten_concat_state_value, hidden_units: [8], non_lin: tanh}]
        """))
    for command, expected in (("summary", "OneHot 16"), ("check", "ok: ")):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main([command, str(path), "--env", "FrozenLake-v1"]) == 0
        assert expected in out.getvalue()


def test_sb3_ppo_on_frozen_lake() -> None:
    from stable_baselines3 import PPO

    from perceptspec.integrations.sb3 import SpecActorCriticPolicy

    model = PPO(SpecActorCriticPolicy, "FrozenLake-v1", policy_kwargs={"config": config()}, n_steps=32,
                batch_size=32, n_epochs=1, seed=0)
    policy = model.policy
    assert isinstance(policy, SpecActorCriticPolicy)
    before = [p.detach().clone() for p in policy.parameters()]
    model.learn(64)  # the rollout buffer keeps the indices as float32 (32, 1): cast back and reshaped to ()
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    assert 0 <= int(model.predict(np.asarray(5), deterministic=True)[0]) < 4


def test_torchrl_gym_env_gives_discrete_observations_as_the_modules_read_them() -> None:
    from torchrl.envs import GymEnv  # type: ignore[import-untyped]  # torchrl ships no type information

    from perceptspec.integrations.tensordict import as_tensordict_module

    env = GymEnv("FrozenLake-v1", categorical_action_encoding=True)
    models = ps.compose(config(), gym.make("FrozenLake-v1").observation_space, gym.make("FrozenLake-v1").action_space)
    td = as_tensordict_module(models.policy, out_keys={"action": "logits"})(env.reset())
    assert td["logits"].shape == (4,)


def test_tensordict_reads_nested_observations_by_nested_keys() -> None:
    from tensordict import TensorDict

    from perceptspec.integrations.tensordict import as_tensordict_module

    models = ps.compose(config(), NESTED, gym.spaces.Discrete(3))
    module = as_tensordict_module(models.policy, out_keys={"action": "logits"})
    inputs = raw_batch(NESTED)
    nested: dict[str, Any] = {}
    for key, value in inputs.items():
        first, _, rest = key.partition("/")
        if rest:
            nested.setdefault(first, {})[rest] = value
        else:
            nested[key] = value
    td = module(TensorDict(nested, batch_size=[3]))
    torch.testing.assert_close(td["logits"], models.policy(inputs)["action"])


@pytest.mark.parametrize(("space", "message"), [
    (gym.spaces.Box(0, 255, (64, 3, 64), np.uint8), r"smallest dim is the middle one"),
    (gym.spaces.Discrete(3, start=1), r"starts at 1, not 0"),
    (gym.spaces.MultiDiscrete(np.array([[2, 3], [2, 2]])), r"nvec of shape \(2, 2\)"),
    (gym.spaces.Text(4), r"expected a Box, Discrete, MultiDiscrete, MultiBinary"),
    (gym.spaces.Dict({"a": gym.spaces.Dict({"b": gym.spaces.Discrete(2)}), "a/b": gym.spaces.Discrete(2)}),
     r"Dict key 'a/b': a key must be a non-empty string without '/'"),
    (gym.spaces.Dict({"a.b": gym.spaces.Discrete(2)}), r"Dict key 'a.b': a key must be a non-empty string"),
])
def test_spaces_that_cannot_be_converted_are_refused(space: gym.Space[Any], message: str) -> None:
    with pytest.raises(ps.SpecError, match=message):
        ps.compose(config(), space, gym.spaces.Discrete(2))


def test_a_spec_using_a_conversion_key_is_refused() -> None:
    policy = ps.Graph({"observation_one_hot": ps.Dense(in_keys="observation", out_keys="h", hidden_units=[4]),
                       "action": ps.LinearOutput(in_keys="h", out_keys="action", output_units=2)}, out_keys="action")
    with pytest.raises(ps.SpecError, match=r"uses the key\(s\) or block name\(s\) \['observation_one_hot'\]"):
        ps.compose(spec_config(policy), gym.spaces.Discrete(4), gym.spaces.Discrete(2))


def test_sub_steps_convert_a_key_alike() -> None:
    obs = {0: gym.spaces.Dict({"a": gym.spaces.Discrete(2)}), 1: gym.spaces.Dict({"a": gym.spaces.Discrete(3)})}
    with pytest.raises(ps.SpecError, match=r"observation 'a': is converted by OneHot.*in one sub-step and by"):
        ps.compose(config(), obs, {0: gym.spaces.Discrete(2), 1: gym.spaces.Discrete(2)})


def test_config_observations_section_is_checked() -> None:
    with pytest.raises(ps.SpecError, match=r"observations.discrete: expected one of \['one_hot', 'embedding'\]"):
        ps.compose(config(discrete="hash"), gym.spaces.Discrete(2), gym.spaces.Discrete(2))


class PlainPolicy(torch.nn.Module):
    """A plain network (seed Example 3) reading whatever observations it is given, flattened and concatenated."""

    def __init__(self, obs_shapes: Shapes, action_logits_shapes: Shapes) -> None:
        super().__init__()
        self.obs_shapes = dict(obs_shapes)
        self.head = torch.nn.Linear(sum(int(np.prod(s)) for s in obs_shapes.values()), 2)

    def forward(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = torch.cat([obs[k].flatten(1) for k in self.obs_shapes], -1)
        return {"action": self.head(x)}


def test_a_plain_module_network_reads_converted_observations() -> None:
    space = gym.spaces.Dict({"cell": gym.spaces.Discrete(4), "position": gym.spaces.Box(-1.0, 1.0, (2,), np.float32)})
    models = ps.compose({"policy": {"networks": [{"_target_": f"{__name__}.PlainPolicy"}]}}, space,
                        gym.spaces.Discrete(2), allow=[__name__])
    assert models.in_shapes["policy"] == {"cell": (), "position": (2,)}
    inputs = {"cell": torch.tensor([3, 0]), "position": torch.zeros(2, 2)}
    policy = models.policy
    head = policy.network.head  # type: ignore[union-attr]
    assert isinstance(head, torch.nn.Linear)
    one_hot = torch.tensor([[0., 0., 0., 1.], [1., 0., 0., 0.]])
    torch.testing.assert_close(policy(inputs)["action"], head(torch.cat([one_hot, torch.zeros(2, 2)], -1)))
