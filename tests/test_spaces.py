"""perceptspec.spaces and perceptspec.distributions against real gymnasium spaces."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import perceptspec as ps

SPACES: dict[str, gym.Space[Any]] = {
    "move": gym.spaces.Discrete(4),
    "use": gym.spaces.MultiBinary(16),
    "steer": gym.spaces.Box(-np.inf, np.inf, (3,)),  # Gaussian samples are unbounded
    "grid": gym.spaces.Box(-np.inf, np.inf, (2, 3)),
    "scalar": gym.spaces.Box(-np.inf, np.inf, ()),
    "pick": gym.spaces.MultiDiscrete([3, 4], start=[1, -2]),
    "shifted": gym.spaces.Discrete(3, start=5),
}
LOGITS = {"move": (4,), "use": (16,), "steer": (6,), "grid": (12,), "scalar": (2,), "pick": (7,), "shifted": (3,)}


class TestObsShapes:
    def test_box_is_named_observation(self) -> None:
        assert ps.spaces.obs_shapes(gym.make("CartPole-v1").observation_space) == {"observation": (4,)}

    def test_dict_of_boxes(self) -> None:
        space = gym.spaces.Dict({"screen": gym.spaces.Box(0, 1, (3, 64, 64)), "inventory": gym.spaces.MultiBinary(16)})
        assert ps.spaces.obs_shapes(space) == {"screen": (3, 64, 64), "inventory": (16,)}

    def test_discrete_observation_is_one_hot_encoded(self) -> None:
        """Issue #17: Discrete observations compose (the composer adds the OneHot block); the raw shape is ()."""
        space = gym.spaces.Dict({"ok": gym.spaces.Box(0, 1, (2,)), "room": gym.spaces.Discrete(5)})
        assert ps.spaces.obs_shapes(space) == {"ok": (2,), "room": (5,)}
        assert ps.spaces.raw_obs_shapes(space) == {"ok": (2,), "room": ()}

    def test_unsupported_space_is_refused_naming_the_key(self) -> None:
        space = gym.spaces.Dict({"ok": gym.spaces.Box(0, 1, (2,)), "note": gym.spaces.Text(5)})
        with pytest.raises(ps.SpecError, match="observation 'note'.*Box, Discrete.*Text"):
            ps.spaces.obs_shapes(space)


class TestActionLogitsShapes:
    def test_every_kind_in_a_dict(self) -> None:
        assert ps.spaces.action_logits_shapes(gym.spaces.Dict(SPACES)) == LOGITS

    def test_plain_space_is_named_action(self) -> None:
        assert ps.spaces.action_logits_shapes(gym.spaces.Discrete(2)) == {"action": (2,)}

    @pytest.mark.parametrize("key", ["steer", gym.spaces.Box, "Box"])
    def test_override_by_name_or_type(self, key: str | type) -> None:
        names = ps.spaces.distribution_names(gym.spaces.Dict(SPACES), {key: "gaussian"})
        assert names["steer"] == "gaussian"

    def test_name_override_wins_over_type_override(self) -> None:
        space = gym.spaces.Dict({"a": gym.spaces.Discrete(3), "b": gym.spaces.Discrete(3)})
        with pytest.raises(ps.SpecError, match="unknown distribution 'nope'"):
            ps.spaces.distribution_names(space, [("a", "nope"), (gym.spaces.Discrete, "categorical")])
        assert ps.spaces.distribution_names(space, {"Discrete": "categorical"}) == {"a": "categorical",
                                                                                     "b": "categorical"}

    def test_override_that_cannot_serve_the_space(self) -> None:
        with pytest.raises(ps.SpecError, match="action 'action'.*'bernoulli' cannot serve Discrete"):
            ps.spaces.action_logits_shapes(gym.spaces.Discrete(3), {"action": "bernoulli"})

    def test_unsupported_space(self) -> None:
        with pytest.raises(ps.SpecError, match="action 'action': no distribution for Text"):
            ps.spaces.action_logits_shapes(gym.spaces.Text(5))


class TestDistributions:
    def _logits(self, batch: tuple[int, ...]) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        return {k: torch.randn(*batch, *s) for k, s in LOGITS.items()}

    @pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
    def test_samples_fit_the_spaces_and_log_probs_are_finite(self, batch: tuple[int, ...]) -> None:
        space = gym.spaces.Dict(SPACES)
        dist = ps.distributions.action_distribution(self._logits(batch), space)
        actions = dist.sample()
        for key, sub in SPACES.items():
            value = actions[key]
            shape = tuple(sub.shape or ())
            assert tuple(value.shape) == (*batch, *shape), key
            flat = value.reshape(-1, *shape).numpy()
            assert all(sub.contains(np.asarray(a, dtype=sub.dtype)) for a in flat), key
        assert dist.log_prob(actions).shape == batch
        assert torch.isfinite(dist.log_prob(actions)).all()
        assert dist.entropy().shape == batch
        mode = dist.mode()
        assert all(tuple(mode[k].shape) == tuple(actions[k].shape) for k in SPACES)

    def test_joint_log_prob_is_the_sum_of_heads(self) -> None:
        dist = ps.distributions.action_distribution(self._logits((4,)), gym.spaces.Dict(SPACES))
        actions = dist.sample()
        per_head = dist.log_probs(actions)
        torch.testing.assert_close(dist.log_prob(actions), sum(per_head.values()))

    def test_categorical_follows_the_logits_and_offsets(self) -> None:
        logits = {"action": torch.tensor([0.0, 0.0, 50.0])}
        dist = ps.distributions.action_distribution(logits, gym.spaces.Discrete(3, start=5))
        assert int(dist.sample()["action"]) == 7
        assert int(dist.mode()["action"]) == 7
        assert float(dist.log_prob({"action": torch.tensor(7)})) == pytest.approx(0.0, abs=1e-6)

    def test_gaussian_mean_and_log_std(self) -> None:
        logits = {"action": torch.tensor([1.0, -2.0, 0.0, float(np.log(0.5))])}
        dist = ps.distributions.action_distribution(logits, gym.spaces.Box(-5, 5, (2,)))
        torch.testing.assert_close(dist.mode()["action"], torch.tensor([1.0, -2.0]))
        std = torch.tensor([1.0, 0.5])
        expected = (0.5 * torch.log(2 * torch.pi * torch.e * std**2)).sum()  # a diagonal Gaussian's entropy
        torch.testing.assert_close(dist.entropy(), expected)

    def test_missing_head_and_wrong_shape_are_signature_errors(self) -> None:
        space = gym.spaces.Dict({"a": gym.spaces.Discrete(3), "b": gym.spaces.Discrete(2)})
        with pytest.raises(ps.SignatureError, match="input 'b': expected logits for every action"):
            ps.distributions.action_distribution({"a": torch.zeros(3)}, space)
        with pytest.raises(ps.SignatureError, match=r"input 'b': expected logits of shape \(\*batch, 2\), got shape"):
            ps.distributions.action_distribution({"a": torch.zeros(3), "b": torch.zeros(3)}, space)


NESTED = gym.spaces.Dict({
    "arm": gym.spaces.Dict({"joint": gym.spaces.Box(-1.0, 1.0, (2,)), "grip": gym.spaces.Discrete(2)}),
    "tools": gym.spaces.Tuple([gym.spaces.MultiBinary(3), gym.spaces.Discrete(4, start=1)]),
})


class TestFlatNames:
    """Nested Dict / Tuple spaces: one key per leaf, levels joined by '/' (issue #17)."""

    def test_nested_dict_and_tuple_are_flattened_in_order(self) -> None:
        # gymnasium sorts a Dict's keys
        assert list(ps.spaces.flatten_space(NESTED, "action")) == ["arm/grip", "arm/joint", "tools/0", "tools/1"]
        assert ps.spaces.action_logits_shapes(NESTED) == {"arm/grip": (2,), "arm/joint": (4,), "tools/0": (3,),
                                                          "tools/1": (4,)}

    def test_top_level_tuple_is_named_by_the_root(self) -> None:
        space = gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Box(-1.0, 1.0, (3,))])
        assert ps.spaces.action_names(space) == ["action/0", "action/1"]
        assert ps.spaces.flatten_space(gym.spaces.Discrete(2), "observation") == {"observation": gym.spaces.Discrete(2)}

    def test_nest_is_the_inverse_on_values(self) -> None:
        flat = {k: k.upper() for k in ps.spaces.action_names(NESTED)}
        assert ps.spaces.nest(NESTED, flat, "action") == {"arm": {"grip": "ARM/GRIP", "joint": "ARM/JOINT"},
                                                           "tools": ("TOOLS/0", "TOOLS/1")}
        space = gym.spaces.Tuple([gym.spaces.Discrete(2), gym.spaces.Discrete(3)])
        assert ps.spaces.nest(space, {"action/0": 1, "action/1": 2}, "action") == (1, 2)

    def test_sampled_nested_actions_are_in_the_space(self) -> None:
        logits = {k: torch.randn(*s) for k, s in ps.spaces.action_logits_shapes(NESTED).items()}
        sample = ps.distributions.action_distribution(logits, NESTED).sample()
        action = ps.spaces.nest(NESTED, {k: v.numpy() for k, v in sample.items()}, "action")
        action["arm"]["joint"] = action["arm"]["joint"].clip(-1, 1).astype(np.float32)
        assert NESTED.contains(action)

    @pytest.mark.parametrize("key", ["a/b", "a.b", ""])
    def test_a_key_that_cannot_be_flattened(self, key: str) -> None:
        space = gym.spaces.Dict({"outer": gym.spaces.Dict({key: gym.spaces.Discrete(2)})})
        with pytest.raises(ps.SpecError, match="action space: Dict key .*: a key must be a non-empty string"):
            ps.spaces.action_names(space)

    def test_an_empty_tuple(self) -> None:
        with pytest.raises(ps.SpecError, match="'outer' is an empty Tuple"):
            ps.spaces.action_names(gym.spaces.Dict({"outer": gym.spaces.Tuple([])}))


class TestComposedActions:
    """Every action space composes: one head per flattened action, flat logits, env-ready actions (issue #17)."""

    @pytest.mark.parametrize("space", [
        NESTED,
        gym.spaces.Tuple([gym.spaces.Discrete(3), gym.spaces.Box(-1.0, 1.0, (2, 3))]),
        gym.spaces.MultiBinary([2, 3]),
        gym.spaces.Box(-2.0, 2.0, (2, 2, 2)),
        gym.spaces.MultiDiscrete(np.array([[2, 3], [4, 5]])),
    ], ids=["nested", "tuple", "multibinary-2d", "box-3d", "multidiscrete-2d"])
    def test_compose_sample_and_step(self, space: gym.Space[Any]) -> None:
        overrides = {"Box": "squashed_gaussian"}  # samples within the bounds
        config: dict[str, Any] = {"policy": {"networks": [{"_target_": "perceptspec.examples.continuous.mlp_actor",
                                                           "hidden_units": [8]}]},
                  "critic": {"kind": "state_action",
                             "networks": [{"_target_": "perceptspec.examples.continuous.mlp_q_critic",
                                           "hidden_units": [8]}]},
                  "distribution_overrides": overrides}
        models = ps.compose(config, gym.spaces.Box(-1.0, 1.0, (4,)), space)
        logits = models.policy({"observation": torch.randn(4)})
        assert {k: tuple(v.shape) for k, v in logits.items()} == ps.spaces.action_logits_shapes(space, overrides)
        sample = ps.distributions.action_distribution(logits, space, overrides).sample()
        action = ps.distributions.env_action(sample, space)
        assert space.contains(action), action
        q = models.critic({"observation": torch.randn(4), **{k: torch.zeros(s) for k, s in  # type: ignore[misc]
                                                             ps.spaces.action_shapes(space).items()}})
        assert q["value"].shape == (1,)
