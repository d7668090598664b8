"""The seed page's examples: fold == materialized module, composed from their YAML configs on real envs."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import perceptspec as ps
from perceptspec.examples import complex as ex2
from perceptspec.examples.cartpole import cartpole_critic, cartpole_policy
from perceptspec.examples.demo import as_tensors, rollout
from perceptspec.examples.inventory_env import InventoryGridEnv
from tests.blockcheck import check_block

T = 4
TIME_OBS = {"observation_screen": (T, 3, 64, 64), "observation_inventory": (T, 16)}
LOGITS = {"action_move": (4,), "action_use": (16,)}
CARTPOLE_OBS = {"observation": (4,)}


def config(name: str) -> Path:
    return Path(str(resources.files("perceptspec.examples") / name))


class TestExample1:
    def test_policy_parameter_count_equals_the_materialized_module(self) -> None:
        spec = cartpole_policy(CARTPOLE_OBS, {"action": (2,)})
        module = ps.materialize(spec, CARTPOLE_OBS, seed=0)
        assert ps.count_parameters(spec, CARTPOLE_OBS) == sum(p.numel() for p in module.parameters()) == 690

    @pytest.mark.parametrize("spec", [cartpole_policy(CARTPOLE_OBS, {"action": (2,)}), cartpole_critic(CARTPOLE_OBS)])
    def test_fold_equals_forward(self, spec: ps.Block) -> None:
        check_block(spec, CARTPOLE_OBS)

    def test_seed_init_normc_on_body_and_heads(self) -> None:
        module = ps.materialize(cartpole_policy(CARTPOLE_OBS, {"action": (2,)}), CARTPOLE_OBS, seed=0)
        weights = module.state_dict()
        body, head = weights["blocks.embedding.0.weight"], weights["blocks.action.weight"]
        torch.testing.assert_close(body.norm(dim=1), torch.ones(16))
        torch.testing.assert_close(head.norm(dim=1), torch.full((2,), 0.01))


class TestExample2:
    def test_latent_network_with_a_time_axis(self) -> None:
        """Issue 3: the seed's Example 2 latent network infers and materializes for (T, ...) observations."""
        latent = ps.Graph({"screen": ex2.screen_embedding(), "trunk": ex2.latent_net()}, out_keys="latent")
        shapes = ps.infer_shapes(latent, TIME_OBS)
        assert shapes["latent_screen"] == (T, 32) and shapes["trunk.hidden_out"] == (T, 128)
        assert shapes["latent"] == (32,)
        check_block(latent, TIME_OBS, batches=((), (2,)))

    @pytest.mark.parametrize("network", ["policy", "critic"])
    def test_policy_and_critic_fold_equals_forward(self, network: str) -> None:
        spec = ex2.complex_policy(TIME_OBS, LOGITS) if network == "policy" else ex2.complex_critic(TIME_OBS)
        check_block(spec, TIME_OBS, batches=((), (2,)))


class TestComposedExamples:
    @pytest.mark.parametrize("name", ["cartpole.yaml", "plain_cartpole.yaml"])
    def test_cartpole_examples_roll_out(self, name: str) -> None:
        env = gym.make("CartPole-v1")
        models = ps.compose(config(name), env.observation_space, env.action_space)
        total, steps, _ = rollout(env, models, steps=500)
        assert steps >= 8 and total == steps  # CartPole pays 1 per step until the pole falls

    @pytest.mark.parametrize("name", ["complex.yaml", "shared_complex.yaml"])
    def test_inventory_examples_compose_and_roll_out(self, name: str) -> None:
        env = InventoryGridEnv(max_steps=5)
        models = ps.compose(config(name), env.observation_space, env.action_space)
        for key, spec in models.specs.items():
            assert spec is not None
            module = models.policy if key == "policy" else models.critic
            assert module is not None
            assert ps.count_parameters(spec, models.in_shapes[key]) == sum(p.numel() for p in module.parameters())
        _, steps, _ = rollout(env, models, steps=5)
        assert steps == 5

    def test_example4_critic_reads_the_policys_latent_screen(self) -> None:
        env = InventoryGridEnv()
        models = ps.compose(config("shared_complex.yaml"), env.observation_space, env.action_space)
        assert models.in_shapes["critic"]["latent_screen"] == (T, 32)
        code: str = getattr(models.actor_critic, "code")
        assert code.count("# policy.screen: VGGConvDense") == 1 and "critic.screen" not in code

    def test_example4_action_head_bias_sets_the_initial_distribution(self) -> None:
        env = InventoryGridEnv()
        models = ps.compose(config("shared_complex.yaml"), env.observation_space, env.action_space)
        policy = models.specs["policy"]
        assert isinstance(policy, ps.Graph)
        assert policy.blocks["action_move"] == ps.LinearOutput(
            in_keys="latent", out_keys="action_move", output_units=4, init=ps.NormC(0.01),
            bias=ps.CategoricalBias([0.25] * 4))
        assert policy.blocks["action_use"] == ps.LinearOutput(
            in_keys="latent", out_keys="action_use", output_units=16, init=ps.NormC(0.01), bias=ps.BernoulliBias(0.1))


# inductor imports torch.utils.mkldnn, whose class bodies call the deprecated torch.jit.script_method; that
# DeprecationWarning comes from torch itself
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.slow  # inductor on four examples: minutes on a cold cache (make test-all)
@pytest.mark.parametrize("name", ["cartpole.yaml", "complex.yaml", "plain_cartpole.yaml", "shared_complex.yaml"])
def test_every_example_compiles_to_one_graph_that_trains(name: str) -> None:
    """torch.compile(fullgraph=True) of each seed example's actor-critic computes what eager mode computes, and
    the same gradients (issue #12: the compile of every example lives in make test-all)."""
    torch._dynamo.reset()
    env: gym.Env[Any, Any] = gym.make("CartPole-v1") if "cartpole" in name else InventoryGridEnv()
    models = ps.compose(config(name), env.observation_space, env.action_space)
    module = models.actor_critic
    obs, _ = env.reset(seed=0)
    inputs = {k: torch.stack([v, v + 0.5]) for k, v in as_tensors(obs, env.observation_space).items()}
    compiled = torch.compile(module, fullgraph=True)
    got, expected = compiled(inputs), module(inputs)
    assert set(got) == set(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-5)
    params = [p for p in module.parameters() if p.requires_grad]
    loss_got = sum(v.float().square().mean() for v in got.values())
    loss_expected = sum(v.float().square().mean() for v in expected.values())
    for g, e in zip(torch.autograd.grad(loss_got, params), torch.autograd.grad(loss_expected, params)):
        torch.testing.assert_close(g, e, rtol=1e-3, atol=1e-5)


def test_inventory_env_follows_the_gymnasium_api() -> None:
    check_env(InventoryGridEnv(), skip_render_check=True)
