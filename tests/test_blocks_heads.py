"""StateIndependentLogStd: a Gaussian head's log stds as a parameter of the spec (SB3's default; issue #17)."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from stable_baselines3.common.distributions import DiagGaussianDistribution

import perceptspec as ps
from tests.blockcheck import check_block


def head(log_std_init: float = 0.0) -> ps.Graph:
    return ps.Graph({
        "mean": ps.LinearOutput(in_keys="h", out_keys="mean", output_units=3),
        "log_std": ps.StateIndependentLogStd(in_keys="mean", out_keys="action", log_std_init=log_std_init),
    }, out_keys="action")


class TestStateIndependentLogStd:
    @pytest.mark.parametrize("shape", [(3,), (2, 5), (4, 1, 2)])
    def test_check_block(self, shape: tuple[int, ...]) -> None:
        module = check_block(ps.StateIndependentLogStd(in_keys="m", out_keys="a", log_std_init=-0.5), {"m": shape})
        assert ps.count_parameters(ps.StateIndependentLogStd(in_keys="m", out_keys="a"), {"m": shape}) == shape[-1]
        out = module({"m": torch.zeros(7, *shape)})["a"]
        assert torch.equal(out[..., shape[-1]:], torch.full((7, *shape[:-1], shape[-1]), -0.5))

    def test_the_log_stds_are_the_same_in_every_state_and_learn(self) -> None:
        module = ps.materialize(head(-1.0), {"h": (8,)}, seed=0)
        logits = module({"h": torch.randn(5, 8)})["action"]
        assert logits.shape == (5, 6)
        assert torch.equal(logits[:, 3:], torch.full((5, 3), -1.0))
        space = gym.spaces.Box(-1.0, 1.0, (3,))
        ours = ps.distributions.action_distribution({"action": logits}, space)
        mean = logits[:, :3]
        log_std = module.get_parameter("blocks.log_std.log_std")
        sb3 = DiagGaussianDistribution(3).proba_distribution(mean, log_std)
        action = ours.sample()["action"]
        torch.testing.assert_close(ours.log_prob({"action": action}), sb3.log_prob(action))
        ours.log_prob({"action": action}).sum().backward()  # type: ignore[no-untyped-call]
        grad = log_std.grad
        assert grad is not None and grad.shape == (3,) and bool(grad.ne(0).all())

    def test_round_trips_and_summary(self) -> None:
        spec = head(0.25)
        assert ps.from_yaml(ps.to_yaml(spec)) == spec
        assert "StateIndependentLogStd 3 means + 3 log stds" in ps.summary(spec, {"h": (8,)})

    def test_needs_a_feature_dim_and_a_finite_start(self) -> None:
        with pytest.raises(ps.ShapeError, match="expected a shape \\(..., action dims\\) with at least 1 dim"):
            ps.infer_shapes(ps.StateIndependentLogStd(in_keys="m", out_keys="a"), {"m": ()})
        with pytest.raises(ps.SpecError, match="field 'log_std_init': expected a finite float, got inf"):
            ps.StateIndependentLogStd(in_keys="m", out_keys="a", log_std_init=float("inf"))
