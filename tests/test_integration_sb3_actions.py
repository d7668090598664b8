"""SB3 with perceptspec's actions (issue #17 item 2): Tuple and nested Dict actions through `FlatActionWrapper`,
distributions SB3 lacks behind `SpecDistribution`, a state-independent log std with SB3's own Gaussian."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("stable_baselines3", reason="the SB3 adapter needs stable-baselines3: pip install -e '.[sb3]'")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.distributions import DiagGaussianDistribution  # noqa: E402

import perceptspec as ps  # noqa: E402
from perceptspec.integrations.sb3 import (  # noqa: E402
    FlatActionSpace,
    FlatActionWrapper,
    SpecActorCriticPolicy,
    SpecDistribution,
)
from tests.test_integration_sb3 import ToyEnv  # noqa: E402

ACTOR = "perceptspec.examples.continuous.mlp_actor"
CRITIC = "tests.test_integration_sb3.mlp_critic"

TUPLE = gym.spaces.Tuple([
    gym.spaces.Discrete(3, start=1),
    gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
    gym.spaces.Dict({"bits": gym.spaces.MultiBinary([2, 2]), "pick": gym.spaces.MultiDiscrete([2, 3])}),
])


class StructuredEnv(ToyEnv):
    """ToyEnv with an action space SB3 cannot hold: every action must be in it; reward 1 when the first action is
    its lowest value."""

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        assert self.action_space.contains(action), action
        self._t += 1
        return self.observation_space.sample(), float(action[0] == 1), False, self._t >= 16, {}


def config(**actor: Any) -> dict[str, Any]:
    return {"policy": {"networks": [{"_target_": ACTOR, "hidden_units": [16], **actor}]},
            "critic": {"networks": [{"_target_": CRITIC}]}, "seed": 0,
            "distribution_overrides": {"action/1": "squashed_gaussian"}}


class TestFlatActionSpace:
    def test_layout_bounds_and_round_trip(self) -> None:
        space = FlatActionSpace(TUPLE)
        assert space.shape == (1 + 2 + 4 + 2,)
        np.testing.assert_array_equal(space.low, [1, -1, -1, 0, 0, 0, 0, 0, 0])
        np.testing.assert_array_equal(space.high, [3, 1, 1, 1, 1, 1, 1, 1, 2])
        action = space.unflatten(np.array([2.0, 0.5, -0.25, 1, 0, 0, 1, 1, 2], np.float32))
        assert TUPLE.contains(action)
        assert action[0] == 2 and action[2]["bits"].tolist() == [[1, 0], [0, 1]]
        assert action[2]["pick"].tolist() == [1, 2]

    def test_spec_distribution_splits_and_joins_flat_actions(self) -> None:
        dist = SpecDistribution(TUPLE, {"action/1": "squashed_gaussian"})
        logits = {k: torch.randn(5, *s) for k, s in ps.spaces.action_logits_shapes(TUPLE, dist.overrides).items()}
        ours = ps.distributions.action_distribution(logits, TUPLE, dist.overrides)
        flat = dist.proba_distribution(logits).sample()
        assert flat.shape == (5, 9) and flat.dtype == torch.float32
        heads = dist.split(flat)
        assert heads["action/0"].dtype == torch.int64 and heads["action/2/bits"].shape == (5, 2, 2)
        torch.testing.assert_close(dist.log_prob(flat), ours.log_prob(heads))
        assert torch.equal(dist.join(heads), flat)
        assert all(FlatActionSpace(TUPLE).contains(a.numpy()) for a in flat)


def test_ppo_on_a_tuple_action_env() -> None:
    """A few PPO updates on a Tuple of Discrete, squashed Box and a nested Dict of MultiBinary and MultiDiscrete."""
    env = FlatActionWrapper(StructuredEnv(gym.spaces.Box(-1.0, 1.0, (3,), np.float32), TUPLE))
    model = PPO(SpecActorCriticPolicy, env, policy_kwargs={"config": config()}, n_steps=32, batch_size=32,
                n_epochs=2, seed=0)
    policy = model.policy
    assert isinstance(policy, SpecActorCriticPolicy) and isinstance(policy.action_dist, SpecDistribution)
    assert policy.models.action_logits_shapes[0] == {"action/0": (3,), "action/1": (4,), "action/2/bits": (4,),
                                                     "action/2/pick": (5,)}
    before = [p.detach().clone() for p in policy.parameters()]
    model.learn(64)
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))
    batch = next(model.rollout_buffer.get(8))
    values, log_prob, entropy = policy.evaluate_actions(batch.observations, batch.actions)
    torch.testing.assert_close(log_prob, batch.old_log_prob, rtol=0.3, atol=0.3)  # two small updates since
    assert values.shape == (8, 1) and entropy is not None and entropy.shape == (8,)
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert TUPLE.contains(env.action_space.unflatten(action))  # type: ignore[attr-defined]


def test_ppo_with_a_state_independent_log_std_uses_sb3s_gaussian() -> None:
    box = gym.spaces.Box(-1.0, 1.0, (2, 2), np.float32)
    cfg = {**config(state_independent_log_std=["action"], log_std_init=-0.5), "distribution_overrides": {}}
    model = PPO(SpecActorCriticPolicy, ToyEnv(gym.spaces.Box(-1.0, 1.0, (3,), np.float32), box),
                policy_kwargs={"config": cfg}, n_steps=32, batch_size=32, n_epochs=1, seed=0)
    policy = model.policy
    assert isinstance(policy, SpecActorCriticPolicy) and isinstance(policy.action_dist, DiagGaussianDistribution)
    log_std = policy.models.policy.get_parameter("blocks.action.log_std")
    assert torch.equal(log_std.detach(), torch.full((4,), -0.5))
    model.learn(32)
    assert not torch.equal(log_std.detach(), torch.full((4,), -0.5))  # PPO trained it
    obs = policy.obs_to_tensor(np.zeros((6, 3), np.float32))[0]
    distribution = policy.get_distribution(obs).distribution
    assert isinstance(distribution, torch.distributions.Normal)
    torch.testing.assert_close(distribution.stddev, log_std.detach().exp().expand(6, 4))  # the same in every state
