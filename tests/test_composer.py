"""The model composer (`ps.compose`): the seed's custom-model config on real gymnasium spaces.

The spec functions below are composer targets themselves: configs name them by import path
('tests.test_composer.<name>'), exactly as a user's config names their own module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from torch import nn

import perceptspec as ps

EXAMPLES = Path(ps.__file__).parent / "examples"
CARTPOLE_YAML = EXAMPLES / "cartpole.yaml"
PLAIN_CARTPOLE_YAML = EXAMPLES / "plain_cartpole.yaml"
CARTPOLE_POLICY = "perceptspec.examples.cartpole.cartpole_policy"
CARTPOLE_CRITIC = "perceptspec.examples.cartpole.cartpole_critic"
PLAIN_POLICY = "perceptspec.examples.plain_cartpole.PlainCartPolePolicy"
PLAIN_CRITIC = "perceptspec.examples.plain_cartpole.PlainCartPoleCritic"
HERE = __name__  # 'tests.test_composer': how configs below name this module's spec functions

Shapes = dict[str, tuple[int, ...]]

# ---------------------------------------------------------------------------------------------------------------
# Spec functions used as `_target_`s (they record the shapes the composer hands them)

CALLS: dict[str, list[Shapes]] = {"policy_obs": [], "policy_logits": [], "critic_obs": []}


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    for calls in CALLS.values():
        calls.clear()
    yield


def _record(obs_shapes: Mapping[str, Sequence[int]], key: str) -> None:
    CALLS[key].append({k: tuple(v) for k, v in obs_shapes.items()})


def shared_policy(obs_shapes: Mapping[str, Sequence[int]], action_logits_shapes: Mapping[str, Sequence[int]],
                  latent_units: int = 8) -> ps.Graph:
    """Seed Example 4: the policy also outputs its embedding 'latent' for the critic to reuse."""
    _record(obs_shapes, "policy_obs")
    _record(action_logits_shapes, "policy_logits")
    (obs_key,) = obs_shapes
    blocks: dict[str, ps.Block] = {
        "latent": ps.Dense(in_keys=obs_key, out_keys="latent", hidden_units=[16, latent_units], non_lin="tanh")}
    for action, shape in action_logits_shapes.items():
        blocks[action] = ps.LinearOutput(in_keys="latent", out_keys=action, output_units=shape[-1])
    return ps.Graph(blocks, out_keys=[*action_logits_shapes, "latent"])


def shared_critic(obs_shapes: Mapping[str, Sequence[int]], hidden_units: int = 4) -> ps.Graph:
    """Reads only the policy's 'latent' (which arrives among its obs_shapes)."""
    _record(obs_shapes, "critic_obs")
    return ps.Graph({
        "hidden": ps.Dense(in_keys="latent", out_keys="hidden", hidden_units=[hidden_units], non_lin="tanh"),
        "value": ps.LinearOutput(in_keys="hidden", out_keys="value", output_units=1),
    }, out_keys="value")


def recording_policy(obs_shapes: Mapping[str, Sequence[int]], action_logits_shapes: Mapping[str, Sequence[int]],
                     hidden_units: Sequence[int] = (8,)) -> ps.Graph:
    """Any number of observations (concatenated) -> one LinearOutput head per action."""
    _record(obs_shapes, "policy_obs")
    _record(action_logits_shapes, "policy_logits")
    return _concat_body(obs_shapes, hidden_units, {a: s[-1] for a, s in action_logits_shapes.items()})


def concat_critic(obs_shapes: Mapping[str, Sequence[int]], hidden_units: Sequence[int] = (8,)) -> ps.Graph:
    """Any number of observations (concatenated) -> 'value'."""
    _record(obs_shapes, "critic_obs")
    return _concat_body(obs_shapes, hidden_units, {"value": 1})


def _concat_body(obs_shapes: Mapping[str, Sequence[int]], hidden_units: Sequence[int],
                 heads: Mapping[str, int]) -> ps.Graph:
    keys = list(obs_shapes)
    blocks: dict[str, ps.Block] = {}
    if len(keys) > 1:
        blocks["cat"] = ps.Concat(in_keys=keys, out_keys="cat", concat_dim=-1)
    blocks["body"] = ps.Dense(in_keys="cat" if len(keys) > 1 else keys[0], out_keys="body",
                              hidden_units=hidden_units, non_lin="tanh")
    for key, units in heads.items():
        blocks[key] = ps.LinearOutput(in_keys="body", out_keys=key, output_units=units)
    return ps.Graph(blocks, out_keys=list(heads))


def dense_head_policy(obs_shapes: Mapping[str, Sequence[int]],
                      action_logits_shapes: Mapping[str, Sequence[int]]) -> ps.Graph:
    """The action logits come from a Dense block, not a LinearOutput (cannot be biased)."""
    (obs_key,) = obs_shapes
    return ps.Graph({a: ps.Dense(in_keys=obs_key, out_keys=a, hidden_units=[s[-1]], non_lin="identity")
                     for a, s in action_logits_shapes.items()}, out_keys=list(action_logits_shapes))


def misnamed_policy(obs_shapes: Mapping[str, Sequence[int]],
                    action_logits_shapes: Mapping[str, Sequence[int]]) -> ps.Graph:
    """Outputs 'logits' instead of the action's name."""
    (obs_key,) = obs_shapes
    return ps.Graph({"logits": ps.LinearOutput(in_keys=obs_key, out_keys="logits", output_units=2)},
                    out_keys="logits")


def misnamed_critic(obs_shapes: Mapping[str, Sequence[int]]) -> ps.Graph:
    (obs_key,) = obs_shapes
    return ps.Graph({"v": ps.LinearOutput(in_keys=obs_key, out_keys="v", output_units=1)}, out_keys="v")


def wide_policy(obs_shapes: Mapping[str, Sequence[int]], action_logits_shapes: Mapping[str, Sequence[int]],
                units: int = 3) -> ps.Graph:
    """Ignores action_logits_shapes: emits `units` logits per action whatever the action space needs."""
    (obs_key,) = obs_shapes
    return ps.Graph({a: ps.LinearOutput(in_keys=obs_key, out_keys=a, output_units=units)
                     for a in action_logits_shapes}, out_keys=list(action_logits_shapes))


def wide_critic(obs_shapes: Mapping[str, Sequence[int]]) -> ps.Graph:
    """A 'value' of 2 units instead of 1."""
    (obs_key,) = obs_shapes
    return ps.Graph({"value": ps.LinearOutput(in_keys=obs_key, out_keys="value", output_units=2)},
                    out_keys="value")


def bare_block_policy(obs_shapes: Mapping[str, Sequence[int]],
                      action_logits_shapes: Mapping[str, Sequence[int]]) -> ps.LinearOutput:
    """A single block (no Graph) is a spec too."""
    ((obs_key, _),) = obs_shapes.items()
    ((action, shape),) = action_logits_shapes.items()
    return ps.LinearOutput(in_keys=obs_key, out_keys=action, output_units=shape[-1])


def not_a_spec(obs_shapes: Mapping[str, Sequence[int]], action_logits_shapes: Mapping[str, Sequence[int]]) -> str:
    return "neither a spec nor a module"


NOT_CALLABLE = 42

# ---------------------------------------------------------------------------------------------------------------
# Helpers


def cartpole_spaces() -> tuple[gym.Space[Any], gym.Space[Any]]:
    env = gym.make("CartPole-v1")
    spaces = env.observation_space, env.action_space
    env.close()
    return spaces


def network(target: str, **kwargs: Any) -> dict[str, Any]:
    return {"_target_": target, **kwargs}


def config(policy: str | list[dict[str, Any]] = CARTPOLE_POLICY,
           critic: str | list[dict[str, Any]] | None = CARTPOLE_CRITIC, kind: str = "state",
           **extra: Any) -> dict[str, Any]:
    """A config in the seed's layout; `policy`/`critic` are one target or a list of network entries."""
    cfg: dict[str, Any] = {"policy": {"networks": [network(policy)] if isinstance(policy, str) else policy}}
    if critic is not None:
        cfg["critic"] = {"kind": kind, "networks": [network(critic)] if isinstance(critic, str) else critic}
    cfg.update(extra)
    return cfg


def params(module: nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.named_parameters())


def ptrs(module: nn.Module) -> list[int]:
    return sorted(p.data_ptr() for p in module.parameters())


def numel(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def spec_module(module: nn.Module | None) -> ps.SpecModule:
    assert isinstance(module, ps.SpecModule), type(module)
    return module


def graph(spec: ps.Block | None) -> ps.Graph:
    assert isinstance(spec, ps.Graph), type(spec)
    return spec


def batch(shapes: Mapping[str, Sequence[int]], n: int = 5, scale: float = 1.0,
          seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: scale * torch.randn(n, *s, generator=g) for k, s in shapes.items()}


def assert_same(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> None:
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"key {k!r}")


def write_yaml(tmp_path: Path, cfg: Mapping[str, Any]) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(dict(cfg)))
    return path


# ---------------------------------------------------------------------------------------------------------------
# Seed Example 1 on the real CartPole-v1


class TestCartPole:
    @pytest.mark.parametrize("source", ["path", "str", "dict"])
    def test_compose_from_yaml_or_dict(self, source: str) -> None:
        cfg: Any = {"path": CARTPOLE_YAML, "str": str(CARTPOLE_YAML),
                    "dict": yaml.safe_load(CARTPOLE_YAML.read_text())}[source]
        models = ps.compose(cfg, *cartpole_spaces())
        assert isinstance(models, ps.Models)
        assert models.critic_kind == "state"
        assert set(models.specs) == {"policy", "critic"}
        assert graph(models.specs["policy"]).out_keys == ("action",)
        assert graph(models.specs["critic"]).out_keys == ("value",)
        assert models.obs_shapes == {0: {"observation": (4,)}}
        assert models.action_logits_shapes == {0: {"action": (2,)}}
        assert spec_module(models.policy).spec == models.specs["policy"]
        assert spec_module(models.critic).spec == models.specs["critic"]
        # the YAML's constructor arguments reached the spec functions
        assert graph(models.specs["policy"]).blocks["embedding"] == ps.Dense(
            in_keys="observation", out_keys="embedding", hidden_units=[16, 32], non_lin="relu")

    def test_yaml_and_dict_give_identical_weights(self) -> None:
        a = ps.compose(CARTPOLE_YAML, *cartpole_spaces())
        b = ps.compose(yaml.safe_load(CARTPOLE_YAML.read_text()), *cartpole_spaces())
        assert_same(a.policy.state_dict(), b.policy.state_dict())
        assert a.critic is not None and b.critic is not None
        assert_same(a.critic.state_dict(), b.critic.state_dict())

    def test_folds_equal_the_materialized_modules(self) -> None:
        models = ps.compose(CARTPOLE_YAML, *cartpole_spaces())
        obs_shapes = models.obs_shapes[0]
        x = batch(obs_shapes, n=7)
        for role, module in (("policy", models.policy), ("critic", models.critic)):
            assert module is not None
            spec = models.specs[role]
            assert spec is not None
            assert ps.count_parameters(spec, obs_shapes) == numel(module)
            shapes = ps.infer_shapes(spec, obs_shapes)
            out = module(x)
            assert set(out) == set(spec.out_keys)
            for key, value in out.items():
                assert tuple(value.shape) == (7, *shapes[key])
        assert ps.count_parameters(graph(models.specs["policy"]), obs_shapes) == 4 * 16 + 16 + 16 * 32 + 32 + 32 * 2 + 2

    def test_actor_critic_equals_policy_and_critic(self) -> None:
        models = ps.compose(CARTPOLE_YAML, *cartpole_spaces())
        assert models.critic is not None
        x = batch(models.obs_shapes[0])
        out = models.actor_critic(x)
        assert set(out) == {"action", "value"}
        assert_same(out, {**models.policy(x), **models.critic(x)})

    def test_actor_critic_parameters_are_the_policys_and_critics(self) -> None:
        models = ps.compose(CARTPOLE_YAML, *cartpole_spaces())
        assert models.critic is not None
        assert ptrs(models.actor_critic) == sorted(ptrs(models.policy) + ptrs(models.critic))
        own = {id(p) for p in models.actor_critic.parameters()}
        assert own == {id(p) for p in (*models.policy.parameters(), *models.critic.parameters())}

    def test_optimiser_step_through_actor_critic_moves_policy_and_critic(self) -> None:
        models = ps.compose(CARTPOLE_YAML, *cartpole_spaces())
        critic = models.critic
        assert critic is not None
        x = batch(models.obs_shapes[0])
        with torch.no_grad():
            policy_before, critic_before = models.policy(x)["action"], critic(x)["value"]
        optimiser = torch.optim.SGD(models.actor_critic.parameters(), lr=0.5)
        out = models.actor_critic(x)
        (out["action"][:, 0].mean() + out["value"].mean()).backward()
        optimiser.step()
        with torch.no_grad():
            policy_after, critic_after = models.policy(x)["action"], critic(x)["value"]
            joint_after = models.actor_critic(x)
        assert not torch.allclose(policy_before, policy_after)
        assert not torch.allclose(critic_before, critic_after)
        assert_same(joint_after, {"action": policy_after, "value": critic_after})

    def test_one_episode_step_on_the_real_env(self) -> None:
        env = gym.make("CartPole-v1")
        models = ps.compose(CARTPOLE_YAML, env.observation_space, env.action_space)
        obs, _ = env.reset(seed=0)
        out = models.actor_critic({"observation": torch.as_tensor(obs).unsqueeze(0)})
        dist = ps.distributions.action_distribution({"action": out["action"]}, env.action_space)
        action = dist.sample()["action"]
        assert action.shape == (1,)
        assert env.action_space.contains(int(action.item()))
        next_obs, reward, terminated, truncated, _ = env.step(int(action.item()))
        assert reward == 1.0 and next_obs.shape == (4,)
        assert out["value"].shape == (1, 1)
        env.close()

    def test_bare_block_spec_is_accepted(self) -> None:
        models = ps.compose(config(f"{HERE}.bare_block_policy", critic=None), *cartpole_spaces())
        assert models.policy(batch({"observation": (4,)}))["action"].shape == (5, 2)
        spec = models.specs["policy"]
        assert spec is not None and spec.out_keys == ("action",)
        assert ps.count_parameters(spec, {"observation": (4,)}) == numel(models.policy) == 4 * 2 + 2


# ---------------------------------------------------------------------------------------------------------------
# Seed Example 4 (built here): a shared embedding between policy and critic


class TestSharedEmbedding:
    def compose(self, latent_units: int = 8) -> ps.Models:
        cfg = config([network(f"{HERE}.shared_policy", latent_units=latent_units)], f"{HERE}.shared_critic", seed=3)
        return ps.compose(cfg, *cartpole_spaces())

    def test_critic_receives_the_latent_with_its_inferred_shape(self) -> None:
        self.compose(latent_units=5)
        assert CALLS["policy_obs"] == [{"observation": (4,)}]
        assert CALLS["policy_logits"] == [{"action": (2,)}]
        assert CALLS["critic_obs"] == [{"observation": (4,), "latent": (5,)}]

    def test_latent_is_computed_once_and_the_critic_reads_it(self) -> None:
        models = self.compose()
        joint = spec_module(models.actor_critic)
        code = joint.code
        assert len(re.findall(r"^\s*latent = ", code, flags=re.M)) == 1
        critic_part = code[code.index("# critic."):]
        assert re.search(r", latent\)", critic_part), code
        # one call per block of policy and critic: nothing is computed twice
        blocks = len(spec_module(models.policy).blocks) + len(spec_module(models.critic).blocks)
        assert code.count("_call(") == blocks == 4
        assert joint.in_shapes == {"observation": (4,)}

    def test_actor_critic_outputs_and_parameters(self) -> None:
        models = self.compose()
        critic = spec_module(models.critic)
        assert critic.in_shapes == {"latent": (8,)}
        x = batch({"observation": (4,)})
        out = models.actor_critic(x)
        policy_out = models.policy(x)
        assert set(policy_out) == {"action", "latent"}
        assert_same(out, {**policy_out, **critic({"latent": policy_out["latent"]})})
        assert ptrs(models.actor_critic) == sorted(ptrs(models.policy) + ptrs(critic))

    def test_folds_of_both_specs(self) -> None:
        models = self.compose()
        critic = spec_module(models.critic)
        critic_spec = models.specs["critic"]
        policy_spec = models.specs["policy"]
        assert critic_spec is not None and policy_spec is not None
        assert ps.count_parameters(critic_spec, {"latent": (8,)}) == numel(critic) == 8 * 4 + 4 + 4 + 1
        assert ps.count_parameters(policy_spec, {"observation": (4,)}) == numel(models.policy)
        assert ps.infer_shapes(policy_spec, {"observation": (4,)})["latent"] == (8,)

    def test_gradients_of_both_losses_reach_the_shared_layers(self) -> None:
        models = self.compose()
        shared = [p for name, p in models.policy.named_parameters() if ".latent." in f".{name}"]
        assert len(shared) == 4  # two Linear layers of the latent Dense
        out = models.actor_critic(batch({"observation": (4,)}))
        value_loss = out["value"].pow(2).mean()
        policy_loss = -torch.log_softmax(out["action"], -1)[:, 0].mean()
        g_value = torch.autograd.grad(value_loss, shared, retain_graph=True)
        g_policy = torch.autograd.grad(policy_loss, shared, retain_graph=True)
        g_total = torch.autograd.grad(value_loss + policy_loss, shared)
        for gv, gp, gt in zip(g_value, g_policy, g_total):
            assert gv.abs().sum() > 0  # the value loss reaches the policy's embedding
            assert gp.abs().sum() > 0
            torch.testing.assert_close(gt, gv + gp)

    def test_value_step_moves_the_policy(self) -> None:
        models = self.compose()
        x = batch({"observation": (4,)})
        with torch.no_grad():
            before = models.policy(x)["action"]
        optimiser = torch.optim.SGD(models.actor_critic.parameters(), lr=1.0)
        models.actor_critic(x)["value"].sum().backward()
        optimiser.step()
        with torch.no_grad():
            assert not torch.allclose(before, models.policy(x)["action"])


# ---------------------------------------------------------------------------------------------------------------
# Declarative init and action-head biasing


class TestInitAndBias:
    def test_init_from_yaml_replaces_body_and_head_inits(self, tmp_path: Path) -> None:
        cfg = yaml.safe_load(CARTPOLE_YAML.read_text())
        cfg["policy"]["init"] = {"body": {"type": "Orthogonal", "gain": 1.4}, "heads": {"type": "NormC", "std": 0.01}}
        cfg["critic"]["init"] = {"body": {"type": "Orthogonal", "gain": 1.4}, "heads": {"type": "NormC", "std": 0.5}}
        models = ps.compose(write_yaml(tmp_path, cfg), *cartpole_spaces())
        policy_spec, critic_spec = graph(models.specs["policy"]), graph(models.specs["critic"])
        assert policy_spec.blocks["embedding"].init == ps.Orthogonal(gain=1.4)
        assert policy_spec.blocks["action"].init == ps.NormC(std=0.01)
        assert critic_spec.blocks["embedding"].init == ps.Orthogonal(gain=1.4)
        assert critic_spec.blocks["value"].init == ps.NormC(std=0.5)

        weights = params(models.policy)
        for name, n_in in (("blocks.embedding.0.weight", 4), ("blocks.embedding.2.weight", 16)):
            w = weights[name].detach()
            torch.testing.assert_close(w.T @ w, 1.4 ** 2 * torch.eye(n_in), atol=1e-5, rtol=1e-5)
            assert torch.count_nonzero(weights[name.replace("weight", "bias")]) == 0
        head = weights["blocks.action.weight"].detach()
        torch.testing.assert_close(head.norm(dim=1), torch.full((2,), 0.01))
        assert models.critic is not None
        value_head = params(models.critic)["blocks.value.weight"].detach()
        torch.testing.assert_close(value_head.norm(dim=1), torch.full((1,), 0.5))

    def test_init_keeps_the_other_part_when_only_one_is_given(self) -> None:
        cfg = config(critic=None)
        cfg["policy"]["init"] = {"heads": {"type": "Orthogonal", "gain": 0.3}}
        spec = graph(ps.compose(cfg, *cartpole_spaces()).specs["policy"])
        assert spec.blocks["action"].init == ps.Orthogonal(gain=0.3)
        assert spec.blocks["embedding"] == ps.Dense(in_keys="observation", out_keys="embedding",
                                                    hidden_units=[16, 32])

    def test_latent_output_counts_as_body_not_head(self) -> None:
        cfg = config(f"{HERE}.shared_policy", critic=None)
        cfg["policy"]["init"] = {"body": {"type": "Orthogonal", "gain": 2.0}, "heads": {"type": "NormC", "std": 0.01}}
        spec = graph(ps.compose(cfg, *cartpole_spaces()).specs["policy"])
        assert spec.blocks["latent"].init == ps.Orthogonal(gain=2.0)
        assert spec.blocks["action"].init == ps.NormC(std=0.01)

    @pytest.mark.parametrize(("init", "match"), [
        ({"bodyy": {"type": "NormC"}}, r"policy\.init: unknown key 'bodyy' \(did you mean 'body'\?\)"),
        ({"body": {"type": "Dense"}}, r"policy\.init\.body.*Initializer.*'Dense'"),
        ({"heads": {"type": "NormC", "std": -1.0}}, "NormC: field 'std': expected a positive"),
        ("NormC", r"policy\.init: expected a mapping, got 'NormC'"),
    ])
    def test_bad_init_config(self, init: Any, match: str) -> None:
        cfg = config(critic=None)
        cfg["policy"]["init"] = init
        with pytest.raises(ps.SpecError, match=match):
            ps.compose(cfg, *cartpole_spaces())

    def test_unknown_init_kind_names_where_it_was_configured(self) -> None:
        cfg = config(critic=None)
        cfg["policy"]["init"] = {"heads": {"type": "Nope"}}
        with pytest.raises(ps.SpecError, match=r"policy\.init\.heads(.|\n)*'Nope'"):
            ps.compose(cfg, *cartpole_spaces())

    @staticmethod
    def biased(action_space: gym.Space[Any], bias: Mapping[str, Any]) -> ps.Models:
        cfg = config(critic=None, seed=0)
        cfg["policy"]["init"] = {"heads": {"type": "NormC", "std": 1e-6}}
        cfg["policy"]["action_head_bias"] = dict(bias)
        return ps.compose(cfg, gym.spaces.Box(-1.0, 1.0, (4,)), action_space)

    def test_categorical_bias_sets_the_untrained_distribution(self) -> None:
        space = gym.spaces.Discrete(2)
        models = self.biased(space, {"action": [0.3, 0.7]})
        spec = graph(models.specs["policy"])
        assert spec.blocks["action"] == ps.LinearOutput(in_keys="embedding", out_keys="action", output_units=2,
                                                        init=ps.NormC(std=1e-6),
                                                        bias=ps.CategoricalBias([0.3, 0.7]))
        with torch.no_grad():
            logits = models.policy(batch({"observation": (4,)}, n=6, scale=1e-3))
        dist = ps.distributions.action_distribution(logits, space)
        probs = torch.stack([dist.log_prob({"action": torch.full((6,), i)}).exp() for i in range(2)], -1)
        torch.testing.assert_close(probs, torch.tensor([[0.3, 0.7]]).expand(6, 2), atol=1e-5, rtol=0)

    @pytest.mark.parametrize("p", [0.2, [0.1, 0.5, 0.9]])
    def test_bernoulli_bias_sets_the_untrained_distribution(self, p: float | list[float]) -> None:
        space = gym.spaces.MultiBinary(3)
        models = self.biased(space, {"action": p})
        head = graph(models.specs["policy"]).blocks["action"]
        assert isinstance(head, ps.LinearOutput) and head.bias == ps.BernoulliBias(p)
        with torch.no_grad():
            logits = models.policy(batch({"observation": (4,)}, n=6, scale=1e-3))
        mean = ps.distributions.action_distribution(logits, space).heads["action"].mean
        torch.testing.assert_close(mean, torch.tensor(p, dtype=torch.float32).expand(6, 3), atol=1e-5, rtol=0)

    def test_bias_per_action_of_a_dict_action_space(self) -> None:
        space = gym.spaces.Dict({"move": gym.spaces.Discrete(3), "use": gym.spaces.MultiBinary(4)})
        models = self.biased(space, {"move": [0.2, 0.3, 0.5], "use": 0.25})
        with torch.no_grad():
            logits = models.policy(batch({"observation": (4,)}, n=2, scale=1e-3))
        dist = ps.distributions.action_distribution(logits, space)
        move = torch.stack([dist.heads["move"].log_prob(torch.full((2,), i)).exp() for i in range(3)], -1)
        torch.testing.assert_close(move, torch.tensor([[0.2, 0.3, 0.5]]).expand(2, 3), atol=1e-5, rtol=0)
        torch.testing.assert_close(dist.heads["use"].mean, torch.full((2, 4), 0.25), atol=1e-5, rtol=0)

    def test_bias_for_an_unknown_action(self) -> None:
        with pytest.raises(ps.SpecError, match="unknown action 'nope'"):
            self.biased(gym.spaces.Discrete(2), {"nope": [0.5, 0.5]})

    def test_bias_for_a_head_that_is_not_a_linear_output(self) -> None:
        cfg = config(f"{HERE}.dense_head_policy", critic=None)
        cfg["policy"]["action_head_bias"] = {"action": [0.3, 0.7]}
        with pytest.raises(ps.SpecError, match="action 'action' is produced by Dense, not a LinearOutput"):
            ps.compose(cfg, *cartpole_spaces())

    def test_bias_for_a_gaussian_head(self) -> None:
        with pytest.raises(ps.SpecError, match="categorical or bernoulli.*gaussian"):
            self.biased(gym.spaces.Box(-1.0, 1.0, (2,)), {"action": 0.5})

    @pytest.mark.parametrize(("value", "match"), [([0.2, 0.3, 0.5], "3 probabilities for 2 output units"),
                                                  ([0.2, 0.3], "summing to 1")])
    def test_bias_that_does_not_fit_the_head(self, value: list[float], match: str) -> None:
        with pytest.raises(ps.SpecError, match=match):
            self.biased(gym.spaces.Discrete(2), {"action": value})


# ---------------------------------------------------------------------------------------------------------------
# Critic kinds and structured (multi-step) envs

# compose takes Mapping[int | str, Any]: Mapping keys are invariant, so sub-step dicts are typed with that key type
Steps = dict[int | str, gym.Space[Any]]
STEP_OBS: Steps = {
    0: gym.spaces.Dict({"a": gym.spaces.Box(-1.0, 1.0, (2,))}),
    1: gym.spaces.Dict({"b": gym.spaces.Box(-1.0, 1.0, (3,))}),
}
STEP_ACT: Steps = {0: gym.spaces.Discrete(2), 1: gym.spaces.MultiBinary(5)}


class TestCriticKinds:
    def test_kind_defaults_to_state(self) -> None:
        cfg = config()
        del cfg["critic"]["kind"]
        models = ps.compose(cfg, *cartpole_spaces())
        assert models.critic_kind == "state"
        assert isinstance(models.critic, ps.SpecModule)

    @pytest.mark.parametrize("with_section", [True, False])
    def test_none(self, with_section: bool) -> None:
        cfg = config(critic=None)
        if with_section:
            cfg["critic"] = {"kind": "none"}
        models = ps.compose(cfg, *cartpole_spaces())
        assert models.critic_kind == "none"
        assert models.critic is None
        assert models.critics == {}
        assert models.actor_critic is models.policy
        assert set(models.specs) == {"policy"}

    def test_unknown_kind(self) -> None:
        with pytest.raises(ps.SpecError, match=r"critic\.kind.*'q_value'"):
            ps.compose(config(kind="q_value"), *cartpole_spaces())

    def test_state_critic_per_sub_step(self) -> None:
        models = ps.compose(config(f"{HERE}.recording_policy", f"{HERE}.concat_critic"), STEP_OBS, STEP_ACT)
        assert set(models.policies) == set(models.critics) == set(models.actor_critics) == {0, 1}
        assert set(models.specs) == {"policy[0]", "policy[1]", "critic[0]", "critic[1]"}
        assert CALLS["critic_obs"] == [{"a": (2,)}, {"b": (3,)}]
        for step, obs_key, obs_shape, logits in ((0, "a", (2,), (2,)), (1, "b", (3,), (5,))):
            x = batch({obs_key: obs_shape})
            out = models.actor_critics[step](x)
            assert_same(out, {**models.policies[step](x), **models.critics[step](x)})
            assert out["action"].shape == (5, *logits) and out["value"].shape == (5, 1)
        with pytest.raises(ps.SpecError, match="sub-steps"):
            _ = models.critic

    def test_shared_state_critic_over_the_union_of_observations(self) -> None:
        models = ps.compose(config(f"{HERE}.recording_policy", f"{HERE}.concat_critic", kind="shared_state"),
                            STEP_OBS, STEP_ACT)
        assert models.critic_kind == "shared_state"
        assert CALLS["critic_obs"] == [{"a": (2,), "b": (3,)}]
        assert set(models.critics) == {"shared"}
        assert models.critic is models.critics["shared"]
        critic = spec_module(models.critic)
        assert critic.in_shapes == {"a": (2,), "b": (3,)}
        assert set(models.specs) == {"policy[0]", "policy[1]", "critic"}
        assert ps.count_parameters(graph(models.specs["critic"]), {"a": (2,), "b": (3,)}) == numel(critic)
        assert critic(batch({"a": (2,), "b": (3,)}))["value"].shape == (5, 1)

    def test_shared_state_needs_consistent_observation_shapes(self) -> None:
        obs: Steps = {0: gym.spaces.Dict({"a": gym.spaces.Box(-1.0, 1.0, (2,))}),
                      1: gym.spaces.Dict({"a": gym.spaces.Box(-1.0, 1.0, (3,))})}
        with pytest.raises(ps.SpecError, match="observation 'a' has shape"):
            ps.compose(config(f"{HERE}.recording_policy", f"{HERE}.concat_critic", kind="shared_state"), obs, STEP_ACT)

    def test_shared_state_on_a_single_step_env_has_an_actor_critic(self) -> None:
        models = ps.compose(config(kind="shared_state"), *cartpole_spaces())
        assert models.critic is models.critics["shared"]
        x = batch({"observation": (4,)})
        assert_same(models.actor_critic(x), {**models.policy(x), **models.critic(x)})


class TestStructuredEnvs:
    def test_one_network_for_all_sub_steps(self) -> None:
        models = ps.compose(config(f"{HERE}.recording_policy", critic=None), STEP_OBS, STEP_ACT)
        assert CALLS["policy_obs"] == [{"a": (2,)}, {"b": (3,)}]
        assert CALLS["policy_logits"] == [{"action": (2,)}, {"action": (5,)}]
        assert models.obs_shapes == {0: {"a": (2,)}, 1: {"b": (3,)}}
        assert models.action_logits_shapes == {0: {"action": (2,)}, 1: {"action": (5,)}}
        assert set(models.specs) == {"policy[0]", "policy[1]"}
        assert models.policies[1](batch({"b": (3,)}))["action"].shape == (5, 5)
        assert ps.count_parameters(graph(models.specs["policy[0]"]), {"a": (2,)}) == numel(models.policies[0])
        with pytest.raises(ps.SpecError, match=r"sub-steps \[0, 1\].*policies\[step\]"):
            _ = models.policy
        with pytest.raises(ps.SpecError, match="sub-steps"):
            _ = models.actor_critic

    def test_one_network_per_sub_step(self) -> None:
        nets = [network(f"{HERE}.recording_policy", hidden_units=[3]),
                network(f"{HERE}.recording_policy", hidden_units=[7, 2])]
        models = ps.compose(config(nets, critic=None), STEP_OBS, STEP_ACT)
        body0 = graph(models.specs["policy[0]"]).blocks["body"]
        body1 = graph(models.specs["policy[1]"]).blocks["body"]
        assert isinstance(body0, ps.Dense) and isinstance(body1, ps.Dense)
        assert tuple(body0.hidden_units) == (3,) and tuple(body1.hidden_units) == (7, 2)

    def test_string_sub_step_keys(self) -> None:
        obs: Steps = {"pick": STEP_OBS[0], "place": STEP_OBS[1]}
        act: Steps = {"pick": STEP_ACT[0], "place": STEP_ACT[1]}
        models = ps.compose(config(f"{HERE}.recording_policy", f"{HERE}.concat_critic"), obs, act)
        assert set(models.specs) == {"policy[pick]", "policy[place]", "critic[pick]", "critic[place]"}
        assert models.actor_critics["place"](batch({"b": (3,)}))["value"].shape == (5, 1)

    def test_wrong_number_of_networks(self) -> None:
        nets = [network(f"{HERE}.recording_policy")] * 3
        with pytest.raises(ps.SpecError, match=r"policy\.networks.*one per sub-step \(2\), got 3"):
            ps.compose(config(nets, critic=None), STEP_OBS, STEP_ACT)

    def test_mismatched_sub_step_keys(self) -> None:
        with pytest.raises(ps.SpecError, match=r"sub-steps \[0, 1\] differ.*\[0, 2\]"):
            ps.compose(config(f"{HERE}.recording_policy", critic=None), STEP_OBS, {0: STEP_ACT[0], 2: STEP_ACT[1]})

    def test_sub_step_order_does_not_matter(self) -> None:
        models = ps.compose(config(f"{HERE}.recording_policy", critic=None), STEP_OBS, {1: STEP_ACT[1], 0: STEP_ACT[0]})
        assert models.action_logits_shapes[1] == {"action": (5,)}

    def test_gymnasium_dict_is_one_step(self) -> None:
        obs = gym.spaces.Dict({"a": gym.spaces.Box(-1.0, 1.0, (2,)), "b": gym.spaces.Box(-1.0, 1.0, (3,))})
        act = gym.spaces.Dict({"move": gym.spaces.Discrete(4), "use": gym.spaces.MultiBinary(2)})
        models = ps.compose(config(f"{HERE}.recording_policy", f"{HERE}.concat_critic"), obs, act)
        assert set(models.policies) == {0}
        out = models.actor_critic(batch({"a": (2,), "b": (3,)}))
        assert {k: tuple(v.shape) for k, v in out.items()} == {"move": (5, 4), "use": (5, 2), "value": (5, 1)}


# ---------------------------------------------------------------------------------------------------------------
# Seed Example 3: plain nn.Module targets


class TestPlainModules:
    def test_compose_plain_cartpole_yaml(self) -> None:
        from perceptspec.examples.plain_cartpole import PlainCartPoleCritic, PlainCartPolePolicy

        models = ps.compose(PLAIN_CARTPOLE_YAML, *cartpole_spaces())
        assert models.specs == {"policy": None, "critic": None}
        assert isinstance(models.policy, PlainCartPolePolicy)
        assert isinstance(models.critic, PlainCartPoleCritic)
        assert numel(models.policy) == 4 * 16 + 16 + 16 * 32 + 32 + 32 * 2 + 2
        x = batch({"observation": (4,)})
        out = models.actor_critic(x)
        assert_same(out, {**models.policy(x), **models.critic(x)})
        assert ptrs(models.actor_critic) == sorted(ptrs(models.policy) + ptrs(models.critic))

    def test_plain_actor_critic_trains_both(self) -> None:
        models = ps.compose(PLAIN_CARTPOLE_YAML, *cartpole_spaces())
        assert models.critic is not None
        x = batch({"observation": (4,)})
        with torch.no_grad():
            before = {**models.policy(x), **models.critic(x)}
        optimiser = torch.optim.SGD(models.actor_critic.parameters(), lr=0.5)
        out = models.actor_critic(x)
        (out["action"][:, 0].mean() + out["value"].mean()).backward()
        optimiser.step()
        with torch.no_grad():
            assert not torch.allclose(before["action"], models.policy(x)["action"])
            assert not torch.allclose(before["value"], models.critic(x)["value"])

    @pytest.mark.parametrize(("policy", "critic"), [(PLAIN_POLICY, CARTPOLE_CRITIC), (CARTPOLE_POLICY, PLAIN_CRITIC)])
    def test_plain_and_spec_networks_mix(self, policy: str, critic: str) -> None:
        models = ps.compose(config(policy, critic), *cartpole_spaces())
        assert (models.specs["policy"] is None) == (policy == PLAIN_POLICY)
        assert (models.specs["critic"] is None) == (critic == PLAIN_CRITIC)
        assert models.critic is not None
        x = batch({"observation": (4,)})
        assert_same(models.actor_critic(x), {**models.policy(x), **models.critic(x)})


# ---------------------------------------------------------------------------------------------------------------
# Seeds


class TestSeed:
    def test_same_seed_same_weights(self) -> None:
        a = ps.compose(CARTPOLE_YAML, *cartpole_spaces())
        b = ps.compose(CARTPOLE_YAML, *cartpole_spaces())
        assert_same(a.policy.state_dict(), b.policy.state_dict())
        assert a.critic is not None and b.critic is not None
        assert_same(a.critic.state_dict(), b.critic.state_dict())

    def test_other_seed_other_weights(self) -> None:
        a = ps.compose(config(seed=0), *cartpole_spaces())
        b = ps.compose(config(seed=1), *cartpole_spaces())
        assert not torch.equal(params(a.policy)["blocks.embedding.0.weight"],
                               params(b.policy)["blocks.embedding.0.weight"])

    def test_policy_and_critic_draw_from_different_streams(self) -> None:
        # cartpole_policy and cartpole_critic have the same 'embedding' block (same path, shapes and init)
        models = ps.compose(CARTPOLE_YAML, *cartpole_spaces())
        assert models.critic is not None
        policy_specs, critic_specs = graph(models.specs["policy"]), graph(models.specs["critic"])
        assert policy_specs.blocks["embedding"] == critic_specs.blocks["embedding"]
        for name in ("blocks.embedding.0.weight", "blocks.embedding.2.weight"):
            assert not torch.equal(params(models.policy)[name], params(models.critic)[name])

    def test_sub_steps_draw_from_different_streams(self) -> None:
        obs: Steps = {0: gym.spaces.Box(-1.0, 1.0, (4,)), 1: gym.spaces.Box(-1.0, 1.0, (4,))}
        act: Steps = {0: gym.spaces.Discrete(2), 1: gym.spaces.Discrete(2)}
        models = ps.compose(config(critic=None, seed=0), obs, act)
        assert models.specs["policy[0]"] == models.specs["policy[1]"]
        assert not torch.equal(params(models.policies[0])["blocks.embedding.0.weight"],
                               params(models.policies[1])["blocks.embedding.0.weight"])


# ---------------------------------------------------------------------------------------------------------------
# Distribution overrides

BOX_OBS = gym.spaces.Box(-np.inf, np.inf, (5,))
BOX_ACT = gym.spaces.Box(-1.0, 1.0, (3,))


class TestDistributionOverrides:
    def test_box_override_from_yaml_reaches_the_logits_shapes(self, tmp_path: Path) -> None:
        cfg = config(f"{HERE}.recording_policy", f"{HERE}.concat_critic", distribution_overrides={"Box": "gaussian"})
        models = ps.compose(write_yaml(tmp_path, cfg), BOX_OBS, BOX_ACT)
        assert CALLS["policy_logits"] == [{"action": (6,)}]
        assert models.action_logits_shapes == {0: {"action": (6,)}}
        out = models.actor_critic(batch({"observation": (5,)}))
        assert out["action"].shape == (5, 6)
        dist = ps.distributions.action_distribution({"action": out["action"]}, BOX_ACT, {"Box": "gaussian"})
        assert dist.sample()["action"].shape == (5, 3)

    @pytest.mark.parametrize(("overrides", "match"), [({"Box": "bernoulli"}, "'bernoulli' cannot serve Box"),
                                                      ({"action": "betta"}, "unknown distribution 'betta'.*mean 'beta'")])
    def test_overrides_are_applied(self, overrides: dict[str, str], match: str) -> None:
        with pytest.raises(ps.SpecError, match=match):
            ps.compose(config(f"{HERE}.recording_policy", critic=None, distribution_overrides=overrides),
                       BOX_OBS, BOX_ACT)

    def test_override_by_action_name_in_a_dict_action_space(self) -> None:
        act = gym.spaces.Dict({"steer": gym.spaces.Box(-1.0, 1.0, (2,)), "gear": gym.spaces.Discrete(3)})
        models = ps.compose(config(f"{HERE}.recording_policy", critic=None,
                                   distribution_overrides={"steer": "gaussian", "Discrete": "categorical"}),
                            BOX_OBS, act)
        assert models.action_logits_shapes == {0: {"steer": (4,), "gear": (3,)}}


# ---------------------------------------------------------------------------------------------------------------
# Errors


class TestErrors:
    def test_yaml_python_tag_is_refused_and_not_executed(self, tmp_path: Path) -> None:
        marker = tmp_path / "pwned"
        text = CARTPOLE_YAML.read_text() + f'extra: !!python/object/apply:os.system ["touch {marker}"]\n'
        path = tmp_path / "evil.yaml"
        path.write_text(text)
        with pytest.raises(ps.SpecError, match="could not determine a constructor.*python/object/apply"):
            ps.compose(path, *cartpole_spaces())
        assert not marker.exists()

    def test_yaml_that_is_not_a_mapping(self, tmp_path: Path) -> None:
        path = tmp_path / "list.yaml"
        path.write_text("- policy\n- critic\n")
        with pytest.raises(ps.SpecError, match="expected a mapping at the top level, got list"):
            ps.compose(path, *cartpole_spaces())

    @pytest.mark.parametrize("section", [{}, {"networks": []}, {"networks": "x"}])
    def test_policy_section_without_networks(self, section: dict[str, Any]) -> None:
        with pytest.raises(ps.SpecError, match="policy"):
            ps.compose({"policy": section}, *cartpole_spaces())

    def test_network_entry_without_target(self) -> None:
        with pytest.raises(ps.SpecError, match=r"policy\.networks: \[0\].*'_target_'"):
            ps.compose(config([{"hidden_units": [4]}], critic=None), *cartpole_spaces())

    @pytest.mark.parametrize("target", ["cartpole_policy", "perceptspec/examples/cartpole.py",
                                        "perceptspec.examples.cartpole.cartpole_policy()", "os.system; rm -rf /", ""])
    def test_target_that_is_not_an_import_path(self, target: str) -> None:
        with pytest.raises(ps.SpecError, match="expected an import path"):
            ps.compose(config(target, critic=None), *cartpole_spaces())

    @pytest.mark.parametrize("target", ["perceptspec.examples.nope.policy", "perceptspec.examples.cartpole.nope",
                                        "no_such_package_xyz.policy"])
    def test_target_that_cannot_be_imported(self, target: str) -> None:
        with pytest.raises(ps.SpecError, match="cannot be imported"):
            ps.compose(config(target, critic=None), *cartpole_spaces(), allow=["no_such_package_xyz"])

    def test_target_that_is_not_callable(self) -> None:
        with pytest.raises(ps.SpecError, match="not callable"):
            ps.compose(config(f"{HERE}.NOT_CALLABLE", critic=None), *cartpole_spaces())

    def test_target_returning_neither_spec_nor_module(self) -> None:
        with pytest.raises(ps.SpecError, match="expected a spec or an nn.Module, got str"):
            ps.compose(config(f"{HERE}.not_a_spec", critic=None), *cartpole_spaces())

    @pytest.mark.parametrize(("role", "entry"), [
        ("policy", network(CARTPOLE_POLICY, hiden_units=[16])),
        ("critic", network(CARTPOLE_CRITIC, hidden_units=[16], dropout=0.1)),
        ("policy", network(PLAIN_POLICY, hidden=[16])),
        ("policy", network(CARTPOLE_POLICY, obs_shapes={"observation": [4]})),
        ("critic", network(CARTPOLE_POLICY)),  # a policy function lacks action_logits_shapes as a critic
    ])
    def test_arguments_that_do_not_fit_the_signature(self, role: str, entry: dict[str, Any]) -> None:
        cfg = config()
        cfg[role]["networks"] = [entry]
        with pytest.raises(ps.SpecError, match=f"{role} network.*(arguments do not fit its signature|unknown argument)"):
            ps.compose(cfg, *cartpole_spaces())

    @pytest.mark.parametrize(("entry", "problem"), [
        (network(CARTPOLE_POLICY, hiden_units=[16]),
         r"unknown argument 'hiden_units' \(did you mean 'hidden_units'\?\); it takes \['hidden_units', 'non_lin'\]"),
        (network(PLAIN_POLICY, hidden=[16]), r"unknown argument 'hidden' \(did you mean 'hidden_units'\?\)"),
    ])
    def test_a_misspelt_argument_gets_a_suggestion(self, entry: dict[str, Any], problem: str) -> None:
        cfg = config()
        cfg["policy"]["networks"] = [entry]
        with pytest.raises(ps.SpecError, match=problem):
            ps.compose(cfg, *cartpole_spaces())

    def test_policy_spec_lacking_the_action_key(self) -> None:
        with pytest.raises(ps.SpecError, match=r"policy network .*misnamed_policy.*lack \['action'\]"):
            ps.compose(config(f"{HERE}.misnamed_policy", critic=None), *cartpole_spaces())

    def test_critic_spec_lacking_the_value_key(self) -> None:
        with pytest.raises(ps.SpecError, match=r"critic network .*misnamed_critic.*lack \['value'\]"):
            ps.compose(config(critic=f"{HERE}.misnamed_critic"), *cartpole_spaces())

    def test_critic_reading_an_unknown_key(self) -> None:
        # shared_critic reads 'latent', which cartpole_policy does not output
        with pytest.raises(ps.SpecError, match="reads \\['latent'\\]"):
            ps.compose(config(critic=f"{HERE}.shared_critic"), *cartpole_spaces())

    def test_policy_logits_of_the_wrong_size(self) -> None:
        # CartPole's Discrete(2) needs 2 logits; the spec's fold says this head emits 3
        with pytest.raises(ps.PerceptSpecError, match="action"):
            ps.compose(config(f"{HERE}.wide_policy", critic=None), *cartpole_spaces())

    def test_critic_value_of_the_wrong_size(self) -> None:
        with pytest.raises(ps.PerceptSpecError, match="value"):
            ps.compose(config(critic=f"{HERE}.wide_critic"), *cartpole_spaces())


class TestChecksFromTheConfig:
    """`check` and `check_finite` in the config reach every network materialize builds, the actor-critic too."""

    def test_defaults_are_materializes(self) -> None:
        models = ps.compose(config(), *cartpole_spaces())
        for module in (models.policy, models.critic, models.actor_critic):
            assert isinstance(module, ps.SpecModule)
            assert (module.check, module.check_finite) == ("always", False)

    def test_check_finite_names_the_nan_input_in_every_module(self) -> None:
        models = ps.compose(config(check="always", check_finite=True), *cartpole_spaces())
        nan = {"observation": torch.full((2, 4), float("nan"))}
        for module in (models.policy, models.critic, models.actor_critic):
            assert isinstance(module, ps.SpecModule) and module.check == "always"
            with pytest.raises(ps.NonFiniteError, match=r"^input 'observation': expected finite values"):
                module(nan)
        out = models.actor_critic({"observation": torch.zeros(2, 4)})
        assert set(out) >= {"action", "value"}

    def test_a_bad_setting_is_a_spec_error(self) -> None:
        with pytest.raises(ps.SpecError, match=r"check_finite: expected a bool, got 'yes'"):
            ps.compose(config(check_finite="yes"), *cartpole_spaces())


def scalar_value_critic(obs_shapes: Mapping[str, Sequence[int]]) -> ps.Graph:
    """A critic whose value has shape () per sample (a squeezed LinearOutput(1))."""
    (key,) = obs_shapes
    return ps.Graph({"h": ps.Dense(in_keys=key, out_keys="h", hidden_units=[4]),
                     "v": ps.LinearOutput(in_keys="h", out_keys="v1", output_units=1),
                     "value": ps.Functional(in_keys="v1", out_keys="value", func="sum_last")}, out_keys="value")


def test_a_critic_value_of_shape_unit_is_accepted() -> None:
    """Maze critics may give the value as () per sample; (1,) is the other accepted shape (issue #16)."""
    models = ps.compose(config(critic=f"{HERE}.scalar_value_critic"), *cartpole_spaces())
    out = models.actor_critic({"observation": torch.zeros(3, 4)})
    assert out["value"].shape == (3,)
