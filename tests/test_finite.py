"""Opt-in NaN/inf checks (issue #7: "NaN-free check optional"): `materialize(..., check_finite=True)`."""

from __future__ import annotations

import pickle

import pytest
import torch

import perceptspec as ps

ps.register_function("test_finite.log", lambda shape: shape, torch.log)


def log_spec() -> ps.Graph:
    """obs -> dense -> (torso: log) -> head: the log of a negative or zero feature is NaN or -inf."""
    torso = ps.Graph({"log": ps.Functional(in_keys="h", out_keys="logged", func="test_finite.log")}, out_keys="logged")
    return ps.Graph({
        "dense": ps.Dense(in_keys="obs", out_keys="h", hidden_units=[3], non_lin="relu"),
        "torso": torso,
        "head": ps.LinearOutput(in_keys="logged", out_keys="action", output_units=2),
    }, out_keys="action")


def test_a_nan_input_names_the_key_and_counts() -> None:
    module = ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[3]), {"obs": (4,)}, seed=0,
                            check_finite=True)
    obs = torch.zeros(2, 4)
    obs[0, 1] = float("nan")
    obs[1, 2] = float("inf")
    with pytest.raises(ps.NonFiniteError) as info:
        module({"obs": obs})
    assert str(info.value) == "input 'obs': expected finite values (check_finite=True), got 1 NaN and 1 inf of 8 values"
    assert (info.value.key, info.value.block) == ("obs", None)


def test_a_non_finite_output_names_the_first_block_that_made_it() -> None:
    module = ps.materialize(log_spec(), {"obs": (4,)}, seed=0, check_finite=True)
    obs = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    reference = ps.materialize(log_spec(), {"obs": (4,)}, seed=0)({"obs": obs})["action"]
    assert not bool(torch.isfinite(reference).all())  # relu gives zeros: log(0) = -inf, and then NaN or inf
    with pytest.raises(ps.NonFiniteError) as info:
        module({"obs": obs})
    error = info.value
    assert (error.block, error.block_type, error.key) == ("torso.log", "Functional", "logged")
    assert str(error).startswith("block 'torso.log' (Functional), key 'logged': computed ")
    assert str(error).endswith(" from finite inputs")


def test_finite_values_pass_and_compute_what_the_unchecked_module_computes() -> None:
    checked = ps.materialize(log_spec(), {"obs": (4,)}, seed=3, check_finite=True)
    plain = ps.materialize(log_spec(), {"obs": (4,)}, seed=3)
    obs = torch.full((5, 4), 0.5)
    with torch.no_grad():
        for module in (checked, plain):
            for p in module.blocks["dense"].parameters():
                p.data.abs_()  # positive weights and biases: positive features, a finite log
    torch.testing.assert_close(checked({"obs": obs}), plain({"obs": obs}))


def test_off_by_default_nan_flows_through() -> None:
    module = ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[3]), {"obs": (4,)}, seed=0)
    out = module({"obs": torch.full((4,), float("nan"))})["h"]
    assert bool(torch.isnan(out).all()) and not module.check_finite


def test_bool_masks_are_not_values_to_check() -> None:
    spec = ps.ActionMasking(in_keys=["logits", "mask"], out_keys="masked", num_of_actor_actions=None)
    module = ps.materialize(spec, {"logits": (3,), "mask": (3,)}, check_finite=True)
    out = module({"logits": torch.zeros(3), "mask": torch.tensor([True, False, True])})["masked"]
    assert out.shape == (3,)


def test_pickling_and_repr_keep_the_setting() -> None:
    module = ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[3]), {"obs": (4,)}, seed=0,
                            check_finite=True)
    clone = pickle.loads(pickle.dumps(module))
    assert clone.check_finite and "check_finite=True" in repr(clone)
    with pytest.raises(ps.NonFiniteError):
        clone({"obs": torch.full((4,), float("inf"))})


def test_a_non_bool_setting_is_a_spec_error() -> None:
    with pytest.raises(ps.SpecError, match=r"materialize: check_finite: expected a bool, got 'yes'"):
        ps.materialize(ps.Dense(in_keys="obs", out_keys="h", hidden_units=[3]), {"obs": (4,)},
                       check_finite="yes")  # type: ignore[arg-type]  # deliberately wrong


class NanOnce:
    """A tensor function that makes NaN on its first call only: a non-finite output the walk cannot reproduce."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * float("nan") if self.calls == 1 else x


def test_a_non_finite_output_the_walk_cannot_reproduce_names_the_output() -> None:
    nan_once = NanOnce()
    ps.register_function("test_finite.nan_once", lambda shape: shape, nan_once)
    module = ps.materialize(ps.Functional(in_keys="x", out_keys="y", func="test_finite.nan_once"), {"x": (2,)},
                            check_finite=True)
    with pytest.raises(ps.NonFiniteError) as info:
        module({"x": torch.ones(3, 2)})
    assert (info.value.key, info.value.block) == ("y", None)
    assert str(info.value) == "output 'y': 6 NaN and 0 inf of 6 values, not reproduced when run again block by block"
    assert nan_once.calls == 2


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("check", ["always", "off"])
def test_under_torch_compile(check: str) -> None:
    """Issue #14: torch.compile(module, fullgraph=True) keeps the finite checks (plain Python around the compiled
    forward), naming the input or the first block as in eager mode."""
    torch._dynamo.reset()
    module = ps.materialize(log_spec(), {"obs": (4,)}, seed=0, check=check, check_finite=True)
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    positive = torch.rand(3, 4) + 1.0
    weight = module.block_module("dense").get_parameter("0.weight")
    with torch.no_grad():  # a positive input then gives positive features, so the log is finite
        weight.abs_()
    torch.testing.assert_close(compiled({"obs": positive})["action"], module({"obs": positive})["action"])
    with pytest.raises(ps.NonFiniteError, match=r"^input 'obs': expected finite values"):
        compiled({"obs": torch.full((3, 4), float("nan"))})
    with torch.no_grad():
        weight.neg_()  # now every feature is 0 after the relu: log gives -inf
    with pytest.raises(ps.NonFiniteError, match=r"^block 'torso.log' \(Functional\), key 'logged': computed"):
        compiled({"obs": positive})
