"""Issue #14: composer configs are strict: an unknown key anywhere or a value of the wrong type is a `SpecError`
naming the key path, with a did-you-mean suggestion; untrusted YAML is bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import gymnasium as gym
import pytest
import yaml

import perceptspec as ps
from perceptspec import _yaml

POLICY = {"_target_": "perceptspec.examples.cartpole.cartpole_policy"}
CRITIC = {"_target_": "perceptspec.examples.cartpole.cartpole_critic"}


def compose(config: dict[str, Any]) -> ps.Models:
    return ps.compose(config, gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2))


def valid(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"policy": {"networks": [POLICY]}, "critic": {"networks": [CRITIC]}}
    config.update(changes)
    return config


@pytest.mark.parametrize("config, problem", [
    (valid(critc={"networks": [CRITIC]}), r"unknown key 'critc' \(did you mean 'critic'\?\)"),
    (valid(seeed=1), r"unknown key 'seeed' \(did you mean 'seed'\?\)"),
    (valid(policy={"networks": [POLICY], "action_head_bais": {"action": [0.5, 0.5]}}),
     r"policy: unknown key 'action_head_bais' \(did you mean 'action_head_bias'\?\)"),
    (valid(critic={"networks": [CRITIC], "kinds": "state"}), r"critic: unknown key 'kinds' \(did you mean 'kind'\?\)"),
    (valid(policy={"networks": [POLICY], "init": {"bodyy": {"type": "NormC"}}}),
     r"policy.init: unknown key 'bodyy' \(did you mean 'body'\?\)"),
    (valid(distribution_override={"Box": "gaussian"}),
     r"unknown key 'distribution_override' \(did you mean 'distribution_overrides'\?\)"),
    (valid(optimizer="adam"), r"unknown key 'optimizer'; known keys: \['policy', 'critic'"),
])
def test_an_unknown_key_is_an_error_with_a_suggestion(config: dict[str, Any], problem: str) -> None:
    with pytest.raises(ps.SpecError, match=problem):
        compose(config)


@pytest.mark.parametrize("key, value, problem", [
    ("seed", "abc", r"seed: expected an int \(or null\), got 'abc'"),
    ("seed", 1.5, r"seed: expected an int \(or null\), got 1.5"),
    ("seed", True, r"seed: expected an int \(or null\), got True"),
    ("check", "alwayz", r"check: expected one of \['always', 'first', 'off'\], got 'alwayz' \(did you mean 'always'\?\)"),
    ("check", 1, r"check: expected one of .*, got 1"),
    ("check_finite", "yes", r"check_finite: expected a bool, got 'yes'"),
    ("distribution_overrides", ["gaussian"], r"distribution_overrides: expected a mapping, got \['gaussian'\]"),
    ("critic", "state", r"critic: expected a mapping, got 'state'"),
])
def test_a_value_of_the_wrong_type_is_an_error(key: str, value: Any, problem: str) -> None:
    with pytest.raises(ps.SpecError, match=problem):
        compose(valid(**{key: value}))


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ps.SpecError) as info:
        compose(valid(seeed=1, seed="x", policy={"networks": [POLICY], "init": 3}))
    assert len(info.value.problems) == 3


def test_a_valid_config_with_every_key_composes() -> None:
    models = compose(valid(policy={"networks": [POLICY], "init": {"body": {"type": "NormC", "std": 1.0},
                                                                 "heads": None},
                                   "action_head_bias": {"action": [0.3, 0.7]}},
                           critic={"kind": "state", "networks": [CRITIC], "init": None},
                           distribution_overrides={}, seed=3, check="always", check_finite=False))
    assert models.critic is not None and models.specs["policy"] is not None


def test_a_critic_of_kind_none_needs_no_networks() -> None:
    assert compose(valid(critic={"kind": "none"})).critic is None


def test_a_yaml_config_is_checked_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "ppo.yaml"
    path.write_text(yaml.safe_dump(valid(seeed=1)))
    with pytest.raises(ps.SpecError, match=r"unknown key 'seeed' \(did you mean 'seed'\?\)"):
        ps.compose(path, gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2))


# --- bounded YAML ----------------------------------------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))


def test_an_alias_bomb_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    """The issue's 480-byte bomb stood for 9**8 values (21 s): the event scan refuses it, no object is built."""
    assert len(BOMB) < 500
    config = tmp_path / "bomb.yaml"
    config.write_text(BOMB)
    with mock.patch.object(yaml, "load", side_effect=AssertionError("built")):
        with pytest.raises(ps.SpecError, match="an alias bomb"):
            ps.from_yaml(BOMB)
        with pytest.raises(ps.SpecError, match="an alias bomb"):
            ps.compose(config, gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(2))


def test_aliases_within_the_bounds_load() -> None:
    text = """
type: Graph
out_keys: [b]
blocks:
  a: {type: Dense, in_keys: [x], out_keys: [a], hidden_units: &units [8, 8]}
  b: {type: Dense, in_keys: [a], out_keys: [b], hidden_units: *units}
"""
    spec = ps.from_yaml(text)
    assert isinstance(spec, ps.Graph) and ps.infer_shapes(spec, {"x": (3,)})["b"] == (8,)


def test_expanded_size_counts_nested_aliases() -> None:
    assert _yaml._check_events("a: &x [1, 2, [3]]\nb: *x\nc: {d: *x}\n", "w") == 3
    with mock.patch.object(_yaml, "MAX_NODES", 13):
        _yaml.load_yaml("a: &x [1, 2, [3]]\nb: *x\n", "w")  # the map, 'a', x (5: 2 lists, 3 ints), 'b', x again
        with pytest.raises(ps.SpecError, match="more than 13 values"):
            _yaml.load_yaml("a: &x [1, 2, [3]]\nb: *x\nc: *x\n", "w")


@pytest.mark.parametrize("depth", [10, 999, 1001, 1100])
def test_deep_yaml_within_the_bound_loads(depth: int) -> None:
    """libyaml refuses more than 1,000 levels; PyYAML's own parser takes them up to MAX_DEPTH (slowly: the bound
    itself is tested lower)."""
    value = _yaml.load_yaml("[" * depth + "]" * depth, "w")
    for _ in range(depth - 1):
        value = value[0]
    assert value == []


@pytest.mark.parametrize("depth", [11, 1101])
def test_deeper_yaml_is_refused(depth: int) -> None:
    with mock.patch.object(_yaml, "MAX_DEPTH", depth - 1):
        with pytest.raises(ps.SpecError, match=f"nests deeper than {depth - 1:,} levels"):
            ps.from_yaml("[" * depth + "]" * depth)


def test_kwargs_nested_past_the_limit_are_our_error() -> None:
    """The issue: lists nested 900 deep in TorchModel.kwargs gave a raw RecursionError."""
    text = ("{type: TorchModel, in_keys: [o], out_keys: [h], module_factory: 'torch.nn:Identity', kwargs: {x: "
            + "[" * 900 + "]" * 900 + "}}")
    with pytest.raises(ps.SpecError, match=r"field 'kwargs': expected plain values nested at most 100 levels deep, "
                                           r"got \{'x': \[\[\[\[\[\[\[\[\[\[\[\[\.\.\.\]"):
        ps.from_yaml(text)
    nested: list[Any] = []
    for _ in range(98):  # with the kwargs mapping and the innermost list: 100 levels
        nested = [nested]
    spec = ps.TorchModel(in_keys="o", out_keys="h", module_factory="torch.nn:Identity", kwargs={"x": nested})
    assert ps.from_yaml(ps.to_yaml(spec)) == spec


def test_a_huge_document_is_refused_by_its_size() -> None:
    with mock.patch.object(_yaml, "MAX_BYTES", 100):
        with pytest.raises(ps.SpecError, match="the YAML text has 101 characters, more than the 100"):
            ps.from_yaml("#" * 101)


# --- parameters that would not fit ----------------------------------------------------------------------------

def test_parameters_that_would_not_fit_are_refused_before_allocating() -> None:
    """The issue: `hidden_units: [100000, 100000]` gave a raw 40 GB allocation error."""
    import torch

    from perceptspec._fold._shapes import trace
    from perceptspec._torch._memory import check_fits_in_memory

    spec = ps.Graph({"torso": ps.Dense(in_keys="obs", out_keys="h", hidden_units=[100_000, 100_000]),
                     "head": ps.LinearOutput(in_keys="h", out_keys="y", output_units=2)}, out_keys="y")
    with mock.patch.object(torch, "empty", side_effect=AssertionError("allocated")):
        with pytest.raises(ps.SpecError, match=r"the parameters need 37\.3 GB \(10,000,800,002 parameters of 4 "
                                               r"bytes\), more than the 16\.0 GB of memory available; the largest "
                                               r"blocks: 'torso' 10,000,600,000 \(37\.3 GB\), 'head' 200,002"):
            check_fits_in_memory(trace(spec, {"obs": (4,)}), available=16 * 2**30)
    with pytest.raises(ps.SpecError, match="more than the .* of memory available"):
        ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[10**6, 10**6]), {"obs": (4,)})
    check_fits_in_memory(trace(spec, {"obs": (4,)}), available=40 * 2**30)  # it fits: no error


# --- distribution overrides name actions or space types ------------------------------------------------------------

@pytest.mark.parametrize("overrides, problem", [
    ({"Bx": "gaussian"}, r"'Bx' is neither an action \(\['action'\]\) nor a space type such as 'Box' \(did you mean "
                         r"'Box'\?\)"),
    ({"actoin": "categorical"}, r"'actoin' is neither an action .* \(did you mean 'action'\?\)"),
])
def test_an_override_naming_nothing_is_an_error(overrides: dict[str, str], problem: str) -> None:
    with pytest.raises(ps.SpecError, match=problem):
        compose(valid(distribution_overrides=overrides))


def test_an_override_may_name_an_action_of_another_sub_step() -> None:
    """In a structured env each sub-step sees the overrides of its own actions (and of space types)."""
    obs = {0: gym.spaces.Dict({"a": gym.spaces.Box(-1.0, 1.0, (2,))}),
           1: gym.spaces.Dict({"b": gym.spaces.Box(-1.0, 1.0, (3,))})}
    act = {0: gym.spaces.Dict({"steer": gym.spaces.Box(-1.0, 1.0, (2,))}),
           1: gym.spaces.Dict({"gear": gym.spaces.Discrete(3)})}
    config = {"policy": {"networks": [{"_target_": "tests.test_composer.recording_policy"}]},
              "distribution_overrides": {"gear": "categorical", "Box": "gaussian"}}
    models = ps.compose(config, obs, act)
    assert models.action_logits_shapes == {0: {"steer": (4,)}, 1: {"gear": (3,)}}
    with pytest.raises(ps.SpecError, match="'gaer' is neither an action"):
        ps.compose({**config, "distribution_overrides": {"gaer": "categorical"}}, obs, act)
