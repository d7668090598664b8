"""The Stable-Baselines3 adapter (issue #8): `SpecActorCriticPolicy` inside PPO and A2C.

The spec functions below are composer targets ('tests.test_integration_sb3.<name>'), as a user's config names its
own module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("stable_baselines3", reason="the SB3 adapter needs stable-baselines3: pip install -e '.[sb3]'")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3 import A2C, PPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.evaluation import evaluate_policy  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402

import perceptspec as ps  # noqa: E402
from perceptspec.integrations import spec_config  # noqa: E402
from perceptspec.integrations.sb3 import SpecActorCriticPolicy  # noqa: E402

HERE = __name__
CARTPOLE_YAML = Path(ps.__file__).parent / "examples" / "cartpole.yaml"
Shapes = Mapping[str, Sequence[int]]

# ---------------------------------------------------------------------------------------------------------------
# Spec functions used as `_target_`s: any number of flat observations, concatenated, then a tanh MLP


def _trunk(obs_shapes: Shapes, hidden_units: Sequence[int]) -> dict[str, ps.Block]:
    keys = sorted(obs_shapes)
    blocks: dict[str, ps.Block] = {}
    if len(keys) > 1:
        blocks["concat"] = ps.Concat(in_keys=keys, out_keys="features", concat_dim=-1)
    blocks["body"] = ps.Dense(in_keys="features" if len(keys) > 1 else keys[0], out_keys="latent",
                              hidden_units=hidden_units, non_lin="tanh")
    return blocks


def mlp_policy(obs_shapes: Shapes, action_logits_shapes: Shapes, hidden_units: Sequence[int] = (16,),
               share_latent: bool = False) -> ps.Graph:
    """Observations -> 'latent' -> one head per action; with share_latent the graph also outputs 'latent'."""
    blocks = _trunk(obs_shapes, hidden_units)
    for action, shape in action_logits_shapes.items():
        blocks[action] = ps.LinearOutput(in_keys="latent", out_keys=action, output_units=shape[-1],
                                         init=ps.NormC(std=0.01))
    out_keys = [*action_logits_shapes, *(["latent"] if share_latent else [])]
    return ps.Graph(blocks, out_keys=out_keys, init=ps.Orthogonal(gain=1.0))


def mlp_critic(obs_shapes: Shapes, hidden_units: Sequence[int] = (16,)) -> ps.Graph:
    """Observations -> value; reads the policy's 'latent' instead when it is among its inputs (shared)."""
    if "latent" in obs_shapes:
        blocks: dict[str, ps.Block] = {"head": ps.Dense(in_keys="latent", out_keys="hidden", hidden_units=[8],
                                                        non_lin="tanh")}
        value_in = "hidden"
    else:
        blocks, value_in = _trunk(obs_shapes, hidden_units), "latent"
    blocks["value"] = ps.LinearOutput(in_keys=value_in, out_keys="value", output_units=1, init=ps.NormC(std=1.0))
    return ps.Graph(blocks, out_keys="value")


def config(shared: bool = False, **policy_section: Any) -> dict[str, Any]:
    return {"policy": {"networks": [{"_target_": f"{HERE}.mlp_policy", "share_latent": shared}], **policy_section},
            "critic": {"kind": "state", "networks": [{"_target_": f"{HERE}.mlp_critic"}]},
            "seed": 0}


def constant_lr(progress_remaining: float) -> float:
    return 1e-3


class ToyEnv(gym.Env[Any, Any]):
    """Random observations from any space; reward 1 when the action's first entry is 'high', 16-step episodes."""

    def __init__(self, observation_space: gym.Space[Any], action_space: gym.Space[Any]) -> None:
        self.observation_space, self.action_space = observation_space, action_space
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self._t += 1
        first = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        return self.observation_space.sample(), float(first > 0.5), False, self._t >= 16, {}


DICT_OBS = gym.spaces.Dict({"pos": gym.spaces.Box(-1.0, 1.0, (2,), np.float32), "flags": gym.spaces.MultiBinary(3),
                            "room": gym.spaces.Discrete(4), "doors": gym.spaces.MultiDiscrete([2, 3])})
#: (observation space, action space, the shapes the networks read)
SPACES = {
    "discrete": (gym.spaces.Discrete(5), gym.spaces.Discrete(3), {"observation": (5,)}),
    "multibinary": (gym.spaces.MultiBinary(6), gym.spaces.MultiBinary(4), {"observation": (6,)}),
    "box": (gym.spaces.Box(-1.0, 1.0, (3,), np.float32), gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
            {"observation": (3,)}),
    "dict": (DICT_OBS, gym.spaces.MultiDiscrete([3, 2]), {"doors": (5,), "flags": (3,), "pos": (2,), "room": (4,)}),
}


def make_policy(obs_space: gym.Space[Any], act_space: gym.Space[Any], cfg: Mapping[str, Any] | None = None
                ) -> SpecActorCriticPolicy:
    return SpecActorCriticPolicy(obs_space, act_space, constant_lr, config=cfg if cfg is not None else config())


def block(module: torch.nn.Module, path: str) -> torch.nn.Module:
    assert isinstance(module, ps.SpecModule)
    return module.block_module(path)


def obs_batch(space: gym.Space[Any], policy: SpecActorCriticPolicy, n: int = 8) -> Any:
    space.seed(0)
    return policy.obs_to_tensor(np.stack([space.sample() for _ in range(n)]) if not isinstance(space, gym.spaces.Dict)
                                else {k: np.stack([space.sample()[k] for _ in range(n)]) for k in space.spaces})[0]


# ---------------------------------------------------------------------------------------------------------------
# PPO and A2C on every kind of observation space


@pytest.mark.parametrize("name", list(SPACES))
def test_ppo_learns_on_each_space(name: str) -> None:
    obs_space, act_space, shapes = SPACES[name]
    model = PPO(SpecActorCriticPolicy, ToyEnv(obs_space, act_space), policy_kwargs={"config": config()},
                n_steps=32, batch_size=32, n_epochs=2, seed=0)
    policy = model.policy
    assert isinstance(policy, SpecActorCriticPolicy)
    assert ps.spaces.obs_shapes(obs_space) == shapes  # Discrete one-hot, MultiDiscrete one-hots concatenated
    assert policy.models.in_shapes["policy"] == ps.spaces.raw_obs_shapes(obs_space)  # the modules read raw ones
    before = [p.detach().clone() for p in policy.parameters()]
    model.learn(64)
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    batch = next(model.rollout_buffer.get(8))  # what PPO's update reads (a Discrete observation has shape (1,))
    actions = batch.actions.long().flatten() if isinstance(act_space, gym.spaces.Discrete) else batch.actions
    values, log_prob, entropy = policy.evaluate_actions(batch.observations, actions)
    assert values.shape == (8, 1) and log_prob.shape == (8,) and entropy is not None and entropy.shape == (8,)
    obs, _ = ToyEnv(obs_space, act_space).reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert act_space.contains(np.asarray(action, dtype=act_space.dtype).reshape(act_space.shape))


def test_a2c_learns() -> None:
    obs_space, act_space, _ = SPACES["dict"]
    model = A2C(SpecActorCriticPolicy, ToyEnv(obs_space, act_space), policy_kwargs={"config": config(shared=True)},
                n_steps=8, seed=0)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(32)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))


def test_networks_are_given_the_shapes_sb3_preprocessing_makes() -> None:
    """The network functions see what SB3's `preprocess_obs` would give; the modules read the raw observations."""
    assert ps.spaces.obs_shapes(DICT_OBS) == {"pos": (2,), "flags": (3,), "room": (4,), "doors": (5,)}
    policy = make_policy(DICT_OBS, gym.spaces.Discrete(3))
    assert dict(policy.models.obs_shapes[0]) == {"pos": (2,), "flags": (3,), "room": (), "doors": (2,)}


# ---------------------------------------------------------------------------------------------------------------
# SB3's distributions on our logits agree with perceptspec.distributions


@pytest.mark.parametrize("name", list(SPACES))
def test_log_probs_and_entropies_match_perceptspec_distributions(name: str) -> None:
    obs_space, act_space, _ = SPACES[name]
    policy = make_policy(obs_space, act_space)
    obs = obs_batch(obs_space, policy)
    with torch.no_grad():
        logits = policy.models.policy(policy.network_inputs(obs))["action"]
        theirs = policy.distribution(logits)
        actions = theirs.get_actions()
        ours = ps.distributions.action_distribution({"action": logits}, act_space)
        ours_actions = actions.long() if isinstance(act_space, (gym.spaces.Discrete, gym.spaces.MultiDiscrete)) \
            else actions
        torch.testing.assert_close(theirs.log_prob(actions), ours.log_prob({"action": ours_actions}))
        entropy = theirs.entropy()
        assert entropy is not None
        torch.testing.assert_close(entropy, ours.entropy())
        torch.testing.assert_close(theirs.mode().to(ours_actions.dtype), ours.mode()["action"])


def test_gaussian_reads_means_and_log_stds_from_the_head() -> None:
    obs_space, act_space, _ = SPACES["box"]
    policy = make_policy(obs_space, act_space)
    logits = torch.tensor([[0.5, -0.5, 0.0, math.log(2.0)]])
    distribution = policy.distribution(logits).distribution
    assert isinstance(distribution, torch.distributions.Normal)
    torch.testing.assert_close(distribution.mean, torch.tensor([[0.5, -0.5]]))
    torch.testing.assert_close(distribution.stddev, torch.tensor([[1.0, 2.0]]))


# ---------------------------------------------------------------------------------------------------------------
# The composer's networks, weights and sharing are kept


def _calls(modules: Mapping[str, torch.nn.Module]) -> dict[str, int]:
    return {name: 0 for name in modules}


def test_one_actor_critic_forward_per_call() -> None:
    obs_space, act_space, _ = SPACES["box"]
    policy = make_policy(obs_space, act_space, config(shared=True))
    modules = {"actor_critic": policy.actor_critic, "policy": policy.models.policy}
    critic = policy.models.critic
    assert critic is not None
    modules["critic"] = critic
    calls = _calls(modules)
    for name, module in modules.items():
        module.register_forward_pre_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    obs = obs_batch(obs_space, policy)
    actions, values, log_prob = policy(obs)
    assert calls == {"actor_critic": 1, "policy": 0, "critic": 0}
    assert actions.shape == (8, 2) and values.shape == (8, 1) and log_prob.shape == (8,)
    policy.evaluate_actions(obs, actions)
    assert calls == {"actor_critic": 2, "policy": 0, "critic": 0}
    policy.get_distribution(obs)
    assert calls == {"actor_critic": 2, "policy": 1, "critic": 0}


def test_weights_are_the_composers_with_head_biases() -> None:
    obs_space, act_space, _ = SPACES["discrete"]
    cfg = config(action_head_bias={"action": [0.2, 0.3, 0.5]})
    model = PPO(SpecActorCriticPolicy, ToyEnv(obs_space, act_space), policy_kwargs={"config": cfg}, seed=123)
    policy = model.policy
    assert isinstance(policy, SpecActorCriticPolicy)
    composed = ps.compose(cfg, obs_space, act_space)
    ours, theirs = policy.actor_critic.state_dict(), composed.actor_critic.state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)  # SB3's orthogonal init did not run
    head = block(policy.models.policy, "action")
    assert isinstance(head, torch.nn.Linear)
    torch.testing.assert_close(torch.softmax(head.bias, -1), torch.tensor([0.2, 0.3, 0.5]))
    distribution = policy.get_distribution(obs_batch(obs_space, policy)).distribution
    assert isinstance(distribution, torch.distributions.Categorical)
    torch.testing.assert_close(distribution.probs, torch.tensor([[0.2, 0.3, 0.5]]).expand(8, 3), atol=0.05, rtol=0)


def test_shared_embedding_is_shared() -> None:
    obs_space, act_space, _ = SPACES["box"]
    policy = make_policy(obs_space, act_space, config(shared=True))
    models = policy.models
    critic_spec, policy_spec = models.specs["critic"], models.specs["policy"]
    assert critic_spec is not None and policy_spec is not None
    assert "latent" in critic_spec.in_keys
    counted = ps.count_parameters(policy_spec, models.in_shapes["policy"]) + \
        ps.count_parameters(critic_spec, models.in_shapes["critic"])
    assert sum(p.numel() for p in policy.parameters()) == counted  # nothing duplicated, no SB3 nets
    obs = obs_batch(obs_space, policy)
    values, _, _ = policy.evaluate_actions(obs, torch.zeros(8, 2))
    torch.autograd.backward(values.sum())
    body = block(models.policy, "body")
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in body.parameters())  # the value trains it
    torch.testing.assert_close(policy.predict_values(obs), values.detach())


def spec_values_config(obs_space: gym.Space[Any], act_space: gym.Space[Any]) -> dict[str, Any]:
    """config(shared=True) with spec values instead of import paths (the specs are pickled into the saved model)."""
    obs = ps.spaces.obs_shapes(obs_space)
    policy = mlp_policy(obs, ps.spaces.action_logits_shapes(act_space), share_latent=True)
    return spec_config(policy, mlp_critic({"latent": (16,)}), seed=0)


@pytest.mark.parametrize("spec_values", [False, True])
def test_save_and_load_round_trip(tmp_path: Path, spec_values: bool) -> None:
    obs_space, act_space, _ = SPACES["dict"]
    cfg = spec_values_config(obs_space, act_space) if spec_values else config(shared=True)
    model = PPO(SpecActorCriticPolicy, ToyEnv(obs_space, act_space),
                policy_kwargs={"config": cfg}, n_steps=32, batch_size=32, n_epochs=1, seed=0)
    model.learn(32)
    model.save(tmp_path / "model.zip")
    loaded = PPO.load(tmp_path / "model.zip")
    assert isinstance(model.policy, SpecActorCriticPolicy) and isinstance(loaded.policy, SpecActorCriticPolicy)
    obs = obs_batch(obs_space, model.policy)
    with torch.no_grad():
        torch.testing.assert_close(loaded.policy.predict_values(obs), model.policy.predict_values(obs))


def test_spec_values_and_yaml_configs() -> None:
    obs_space, act_space, _ = SPACES["box"]
    shapes = {"observation": (3,)}
    policy_spec = mlp_policy(shapes, ps.spaces.action_logits_shapes(act_space))
    from_specs = make_policy(obs_space, act_space, spec_config(policy_spec, mlp_critic(shapes), seed=0))
    from_dicts = make_policy(obs_space, act_space, spec_config(ps.to_dict(policy_spec), ps.to_dict(
        mlp_critic(shapes)), seed=0))
    from_functions = make_policy(obs_space, act_space)
    assert from_specs.models.specs == from_dicts.models.specs == from_functions.models.specs
    a, b = from_specs.state_dict(), from_functions.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    cartpole = gym.make("CartPole-v1")
    from_yaml = SpecActorCriticPolicy(cartpole.observation_space, cartpole.action_space, constant_lr,
                                      config=CARTPOLE_YAML)
    assert from_yaml.config["policy"]["networks"][0]["_target_"] == "perceptspec.examples.cartpole.cartpole_policy"


def test_errors() -> None:
    obs_space, act_space, _ = SPACES["box"]
    with pytest.raises(ps.SpecError, match="gSDE"):
        PPO(SpecActorCriticPolicy, ToyEnv(obs_space, act_space), policy_kwargs={"config": config()}, use_sde=True)
    no_critic = {"policy": config()["policy"]}
    with pytest.raises(ps.SpecError, match="has no critic"):
        make_policy(obs_space, act_space, no_critic)


# ---------------------------------------------------------------------------------------------------------------
# A short training run beats the untrained policy


def _mean_return(model: PPO) -> float:
    env = Monitor(gym.make("CartPole-v1"))
    env.reset(seed=0)
    returns, _ = evaluate_policy(model, env, n_eval_episodes=10, deterministic=True, return_episode_rewards=True)
    return float(np.mean(returns))


@pytest.mark.slow  # training (make test-all)
def test_short_ppo_training_raises_cartpole_returns() -> None:
    """8,192 steps of PPO with SB3's default settings (shorter rollouts): the seeded run goes from ~17 to ~480."""
    env = make_vec_env("CartPole-v1", n_envs=4, seed=0)
    model = PPO(SpecActorCriticPolicy, env, policy_kwargs={"config": str(CARTPOLE_YAML)}, seed=0, n_steps=256)
    untrained = _mean_return(model)
    model.learn(8_192)
    trained = _mean_return(model)
    assert trained > untrained + 150, (untrained, trained)
