"""perceptspec.distributions against reference implementations on the same logits (issue #17 item 2, #16 item 4):
torch.distributions, Stable-Baselines3's distributions and TorchRL's TanhNormal."""

from __future__ import annotations

import math
import sys
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    MultiCategoricalDistribution,
    SquashedDiagGaussianDistribution,
)
from torch.distributions import AffineTransform, Beta, Independent, Normal, TransformedDistribution

import perceptspec as ps
from perceptspec.distributions import SquashedGaussian, action_distribution

BATCH = 64


def single(space: gym.Space[Any], overrides: Any = (), seed: int = 0, scale: float = 1.0) -> tuple[
        torch.Tensor, ps.distributions.DictDistribution]:
    """Random logits for `space`'s one head, and our distribution over them."""
    (shape,) = ps.spaces.action_logits_shapes(space, overrides).values()
    logits = torch.randn(BATCH, *shape, generator=torch.Generator().manual_seed(seed)) * scale
    return logits, action_distribution({"action": logits}, space, overrides)


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> None:
    torch.testing.assert_close(a, b, rtol=tol, atol=tol)


class TestAgainstSB3:
    """The same logits give SB3's log-probs, entropies and modes (SB3 flattens every action to a vector)."""

    def test_categorical(self) -> None:
        logits, ours = single(gym.spaces.Discrete(5))
        sb3 = CategoricalDistribution(5).proba_distribution(logits)
        actions = ours.sample()["action"]
        assert_close(ours.log_prob({"action": actions}), sb3.log_prob(actions))
        assert_close(ours.entropy(), sb3.entropy())
        assert torch.equal(ours.mode()["action"], sb3.mode())

    def test_multi_categorical(self) -> None:
        logits, ours = single(gym.spaces.MultiDiscrete([3, 2, 4]))
        sb3 = MultiCategoricalDistribution([3, 2, 4]).proba_distribution(logits)
        actions = ours.sample()["action"]
        assert_close(ours.log_prob({"action": actions}), sb3.log_prob(actions))
        assert_close(ours.entropy(), sb3.entropy())

    def test_bernoulli_of_rank_two(self) -> None:
        logits, ours = single(gym.spaces.MultiBinary([2, 3]))
        assert logits.shape == (BATCH, 6)  # a flat head; the distribution reshapes it
        sb3 = BernoulliDistribution(6).proba_distribution(logits)
        actions = ours.sample()["action"]
        assert actions.shape == (BATCH, 2, 3)
        assert_close(ours.log_prob({"action": actions}), sb3.log_prob(actions.reshape(BATCH, 6)))
        assert_close(ours.entropy(), sb3.entropy())

    @pytest.mark.parametrize("shape", [(), (3,), (2, 3)])
    def test_gaussian_of_any_rank(self, shape: tuple[int, ...]) -> None:
        space = gym.spaces.Box(-np.inf, np.inf, shape)
        logits, ours = single(space)
        n = math.prod(shape)
        mean, log_std = logits.chunk(2, dim=-1)  # SB3's layout for the flattened Box: n means, n log stds
        sb3 = DiagGaussianDistribution(n).proba_distribution(mean, log_std)
        actions = ours.sample()["action"]
        assert actions.shape == (BATCH, *shape)
        assert_close(ours.log_prob({"action": actions}), sb3.log_prob(actions.reshape(BATCH, n)))
        entropy = sb3.entropy()
        assert entropy is not None
        assert_close(ours.entropy(), entropy)
        assert_close(ours.mode()["action"].reshape(BATCH, n), sb3.mode())

    def test_gaussian_log_std_clamp(self) -> None:
        space = gym.spaces.Box(-np.inf, np.inf, (4,))
        clamp = {"action": {"distribution": "gaussian", "log_std_min": -1.0, "log_std_max": 0.5}}
        logits, ours = single(space, clamp, scale=3.0)
        mean, log_std = logits.chunk(2, dim=-1)
        reference: torch.distributions.Distribution = Independent(Normal(mean, log_std.clamp(-1.0, 0.5).exp()), 1)
        actions = ours.sample()["action"]
        assert_close(ours.log_prob({"action": actions}), reference.log_prob(actions))
        assert_close(ours.entropy(), reference.entropy())

    def test_squashed_gaussian(self) -> None:
        """SB3's SAC distribution on [-1, 1], with SB3's log-std clamp [-20, 2] (the squashed Gaussian's default)."""
        space = gym.spaces.Box(-1.0, 1.0, (3,))
        logits, ours = single(space, {"Box": "squashed_gaussian"})
        mean, log_std = logits.chunk(2, dim=-1)
        sb3 = SquashedDiagGaussianDistribution(3).proba_distribution(mean, log_std.clamp(-20, 2))
        head = ours.heads["action"]
        assert isinstance(head, SquashedGaussian)
        torch.manual_seed(1)
        actions = head.rsample()
        # SB3 adds 1e-6 inside log(1 - tanh(u)^2), which matters only where tanh saturates: compare elsewhere
        inside = (actions.abs() < 0.99).all(-1)
        assert inside.sum() > BATCH // 4
        # the sampled value is scored with its pre-tanh value, as SB3's log_prob_from_params does
        assert_close(head.log_prob(actions)[inside], sb3.log_prob(actions, head.unsquash(actions))[inside], 1e-3)
        # any other value is un-squashed first (SB3's atanh with a float epsilon)
        assert_close(ours.log_prob({"action": actions.clone()})[inside], sb3.log_prob(actions.clone())[inside], 1e-3)
        assert_close(ours.mode()["action"], sb3.mode())


class TestSquashedGaussian:
    @pytest.mark.parametrize("shape", [(3,), (2, 2)])
    def test_against_torchrl_tanh_normal_on_the_bounds(self, shape: tuple[int, ...]) -> None:
        torchrl = pytest.importorskip("torchrl.modules")
        low = np.linspace(-3.0, 0.0, math.prod(shape), dtype=np.float32).reshape(shape)
        space = gym.spaces.Box(low, low + 2.5, shape)
        logits, ours = single(space, {"Box": "squashed_gaussian"})
        mean, log_std = (x.reshape(BATCH, *shape) for x in logits.chunk(2, dim=-1))
        reference = torchrl.TanhNormal(mean, log_std.clamp(-20, 2).exp(), low=torch.as_tensor(space.low),
                                       high=torch.as_tensor(space.high), event_dims=len(shape))
        actions = ours.sample()["action"]
        low_, high_ = torch.as_tensor(space.low), torch.as_tensor(space.high)
        assert torch.all((actions >= low_) & (actions <= high_))
        inside = ((actions - low_) / (high_ - low_) * 2 - 1).abs().flatten(1).lt(0.99).all(-1)
        assert inside.sum() > BATCH // 4
        assert_close(ours.log_prob({"action": actions.clone()})[inside], reference.log_prob(actions.clone())[inside],
                     1e-3)

    def test_log_prob_is_a_density_on_the_bounds(self) -> None:
        """The correction makes it integrate to 1 over [low, high] (a scalar Box, by quadrature)."""
        space = gym.spaces.Box(-2.0, 3.0, ())
        dist = action_distribution({"action": torch.tensor([0.3, math.log(0.7)])}, space, {"Box": "squashed_gaussian"})
        grid = torch.linspace(-2.0, 3.0, 200_001, dtype=torch.float64)[1:-1]
        density = dist.log_prob({"action": grid.float()}).double().exp()
        assert float(torch.trapezoid(density, grid)) == pytest.approx(1.0, abs=2e-3)

    def test_sample_keeps_its_pre_tanh_value_where_tanh_saturates(self) -> None:
        """Far in the tail tanh rounds to 1: the sampled value is still scored with the u it came from."""
        space = gym.spaces.Box(-1.0, 1.0, (1,))
        head = action_distribution({"action": torch.tensor([[12.0, -3.0]])}, space,
                                   {"Box": "squashed_gaussian"}).heads["action"]
        assert isinstance(head, SquashedGaussian)
        action = head.rsample()
        assert float(action) == 1.0
        u = head.unsquash(action)
        gaussian: torch.distributions.Distribution = Normal(12.0, math.exp(-3.0))
        expected = gaussian.log_prob(u) - 2 * (math.log(2) - u - torch.nn.functional.softplus(-2 * u))
        assert_close(head.log_prob(action), expected.sum(-1))
        assert torch.isfinite(head.log_prob(action.clone()))  # an unrelated 1.0 is clamped inside (-1, 1)

    def test_entropy_is_a_one_sample_estimate_with_gradients(self) -> None:
        logits = torch.zeros(2, 4, requires_grad=True)
        dist = action_distribution({"action": logits}, gym.spaces.Box(-1.0, 1.0, (2,)), {"Box": "squashed_gaussian"})
        entropy = dist.entropy()
        assert entropy.shape == (2,)
        entropy.sum().backward()  # type: ignore[no-untyped-call]
        assert logits.grad is not None and torch.isfinite(logits.grad).all()


class TestBeta:
    def test_maze_parameterisation_on_the_bounds(self) -> None:
        """Maze's: clamp to [log 1e-6, -log 1e-6], softplus + 1, alphas first; then mapped onto [low, high]."""
        space = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([1.0, 5.0], np.float32))
        logits, ours = single(space, {"Box": "beta"}, scale=3.0)
        concentration = torch.nn.functional.softplus(logits.clamp(math.log(1e-6), -math.log(1e-6))) + 1.0
        alpha, beta = concentration.chunk(2, dim=-1)
        low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)
        reference: torch.distributions.Distribution = Independent(TransformedDistribution(Beta(alpha, beta), [AffineTransform(low, high - low)]), 1)
        actions = ours.sample()["action"]
        assert torch.all((actions >= low) & (actions <= high))
        assert_close(ours.log_prob({"action": actions}), reference.log_prob(actions), 1e-4)
        base: torch.distributions.Distribution = Beta(alpha, beta)
        assert_close(ours.entropy(), (base.entropy() + torch.log(high - low)).sum(-1))
        assert_close(ours.mode()["action"], low + alpha / (alpha + beta) * (high - low))  # Maze's: the mean

    def test_unbounded_box_is_refused(self) -> None:
        with pytest.raises(ps.SpecError, match="action 'action': distribution 'beta' maps its support onto"):
            ps.spaces.action_logits_shapes(gym.spaces.Box(-np.inf, 1.0, (2,)), {"Box": "beta"})


class TestChoices:
    def test_maze_class_paths_are_names_not_imports(self) -> None:
        path = "maze.distributions.squashed_gaussian.SquashedGaussianProbabilityDistribution"
        choices = ps.spaces.distribution_choices(gym.spaces.Box(-1.0, 1.0, (2,)), {"Box": path})
        assert choices["action"] == ps.spaces.DistributionChoice("squashed_gaussian",
                                                                 {"log_std_min": -20.0, "log_std_max": 2.0})
        assert "maze" not in sys.modules

    def test_options_are_checked(self) -> None:
        with pytest.raises(ps.SpecError, match="unknown option 'log_std_mx'.*did you mean 'log_std_max'"):
            ps.spaces.distribution_choices(gym.spaces.Box(-1.0, 1.0, (2,)),
                                           {"Box": {"distribution": "gaussian", "log_std_mx": 2}})

    def test_a_class_of_yours_outside_the_allow_list_is_not_imported(self) -> None:
        assert "mailbox" not in sys.modules  # a module of the standard library nothing here imports
        with pytest.raises(ps.NotAllowedError, match="module 'mailbox' is not allowed"):
            ps.spaces.action_logits_shapes(gym.spaces.Discrete(3), {"Discrete": "mailbox.Mailbox"})
        assert "mailbox" not in sys.modules

    def test_an_allowed_class_of_yours(self) -> None:
        space = gym.spaces.Discrete(3)
        path = "tests.custom_distribution.TemperedCategorical"
        with ps.allow("tests.custom_distribution"):
            overrides = {"Discrete": {"distribution": path, "temperature": 2.0}}
            assert ps.spaces.action_logits_shapes(space, overrides) == {"action": (3,)}
            logits = torch.tensor([0.0, 1.0, 2.0])
            dist = action_distribution({"action": logits}, space, overrides)
        expected: torch.distributions.Distribution = torch.distributions.Categorical(logits=logits / 2.0)
        assert_close(dist.log_prob({"action": torch.tensor(2)}), expected.log_prob(torch.tensor(2)))


MAZE = "maze.distributions."
MAZE_ACTIONS = gym.spaces.Dict({"steer": gym.spaces.Box(-1.0, 1.0, (2,)), "special_action": gym.spaces.Box(0.0, 1.0, (1,)),
                                "gear": gym.spaces.Discrete(3)})


class TestMazeDistributionMapper:
    """Maze's `distribution_mapper_config` as overrides (issue #16 item 4): Maze's class paths are names."""

    def test_maze_docs_example_action_space_then_action_head(self) -> None:
        entries = [{"action_space": "gymnasium.spaces.Box", "distribution": f"{MAZE}beta.BetaProbabilityDistribution"},
                   {"action_head": "special_action",
                    "distribution": f"{MAZE}squashed_gaussian.SquashedGaussianProbabilityDistribution"}]
        choices = ps.spaces.from_maze_distribution_mapper(entries, MAZE_ACTIONS)
        assert {a: c.name for a, c in choices.items()} == {"gear": "categorical", "special_action": "squashed_gaussian",
                                                           "steer": "beta"}
        assert ps.spaces.distribution_choices(MAZE_ACTIONS, choices) == choices  # usable as overrides as they are
        assert "maze" not in sys.modules

    def test_a_later_entry_wins_as_in_maze(self) -> None:
        entries = [{"action_head": "steer", "distribution": f"{MAZE}beta.BetaProbabilityDistribution"},
                   {"action_space": "gym.spaces.box.Box",
                    "distribution": f"{MAZE}squashed_gaussian.SquashedGaussianProbabilityDistribution"}]
        names = {a: c.name for a, c in ps.spaces.from_maze_distribution_mapper(entries, MAZE_ACTIONS).items()}
        assert names["steer"] == names["special_action"] == "squashed_gaussian"
        assert ps.spaces.from_maze_distribution_mapper([], MAZE_ACTIONS)["steer"].name == "gaussian"

    def test_args_are_options_and_classes_of_yours_go_through_the_allow_list(self) -> None:
        entries = [{"action_space": "gymnasium.spaces.Discrete", "args": {"temperature": 0.5},
                    "distribution": "tests.custom_distribution.TemperedCategorical"}]
        choice = ps.spaces.from_maze_distribution_mapper(entries, MAZE_ACTIONS)["gear"]
        assert choice == ps.spaces.DistributionChoice("tests.custom_distribution.TemperedCategorical",
                                                      {"temperature": 0.5})

    @pytest.mark.parametrize(("entry", "match"), [
        ({"action_head": "steering", "distribution": f"{MAZE}beta.BetaProbabilityDistribution"},
         r"distribution_mapper_config\[0\]: action_head 'steering' is not an action \(did you mean 'steer'\?\)"),
        ({"action_space": "gymnasium.spaces.Bx", "distribution": f"{MAZE}beta.BetaProbabilityDistribution"},
         r"expected a gymnasium space class .* got 'gymnasium.spaces.Bx' \(did you mean 'gymnasium.spaces.Box'\?\)"),
        ({"action_space": "gymnasium.spaces.Box", "distribution": f"{MAZE}beta.Beta"},
         r"action 'special_action': unknown distribution 'maze.distributions.beta.Beta': Maze's distributions are"),
        ({"distribution": f"{MAZE}beta.BetaProbabilityDistribution", "head": "steer"},
         r"unknown key 'head'.*\n.*expected exactly one of 'action_space' and 'action_head'"),
    ])
    def test_unknown_entries(self, entry: dict[str, Any], match: str) -> None:
        with pytest.raises(ps.SpecError, match=match):
            ps.spaces.from_maze_distribution_mapper([entry], MAZE_ACTIONS)
