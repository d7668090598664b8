"""`ps.transfer` (issue #18 part 3): a warm start keeps every block's weights whose path and shapes still fit."""

from __future__ import annotations

import pytest
import torch

import perceptspec as ps
from perceptspec.examples.cartpole import cartpole_critic, cartpole_policy

SHAPES = {"observation": (4,)}


def test_adding_an_observation_key() -> None:
    """A goal key added beside the observation: the body keeps its weights, the new branch and the head (whose input
    widened) start as the spec says."""
    old = ps.materialize(cartpole_critic(SHAPES), SHAPES, seed=0)
    new_spec = ps.Graph({
        "embedding": ps.Dense(in_keys="observation", out_keys="embedding", hidden_units=[16, 32]),
        "goal": ps.Dense(in_keys="goal", out_keys="g", hidden_units=[8]),
        "cat": ps.Concat(in_keys=["embedding", "g"], out_keys="latent"),
        "value": ps.LinearOutput(in_keys="latent", out_keys="value", output_units=1, init=ps.NormC(0.01)),
    }, out_keys="value", init=ps.NormC(1.0))
    shapes = {"observation": (4,), "goal": (2,)}
    new = ps.transfer(old, new_spec, shapes, seed=3)
    report = new.transfer_report
    assert report is not None
    assert (report.reused, report.reinitialised, report.dropped) == (("embedding",), ("goal", "value"), ("value",))
    assert str(report) == "reused: embedding\nreinitialised: goal, value\ndropped: value"
    fresh = ps.materialize(new_spec, shapes, seed=3).state_dict()
    for name, tensor in new.state_dict().items():
        source = old.state_dict()[name] if name.startswith("blocks.embedding.") else fresh[name]
        assert torch.equal(tensor, source), name
    x = {"observation": torch.randn(5, 4), "goal": torch.randn(5, 2)}
    torch.testing.assert_close(new.blocks["embedding"](x["observation"]),
                               old.blocks["embedding"](x["observation"]))


def test_widening_a_head_keeps_training() -> None:
    """Two actions become three: only the head starts afresh; the body's trained weights go on training."""
    old = ps.materialize(cartpole_policy(SHAPES, {"action": (2,)}), SHAPES, seed=0).to(torch.float64)
    old.eval()
    new = ps.transfer(old, cartpole_policy(SHAPES, {"action": (3,)}), SHAPES, seed=0)
    assert new.transfer_report is not None and new.transfer_report.reinitialised == ("action",)
    assert new.transfer_report.reused == ("embedding",)
    assert next(new.parameters()).dtype == torch.float64 and not new.training  # placed and in the mode of the old
    optimizer = torch.optim.SGD(new.parameters(), lr=0.1)
    torch.autograd.backward(new({"observation": torch.randn(8, 4, dtype=torch.float64)})["action"].logsumexp(-1).sum())
    optimizer.step()
    assert not torch.equal(new.state_dict()["blocks.embedding.0.weight"], old.state_dict()["blocks.embedding.0.weight"])


def test_ensembles_transfer_when_their_size_stays() -> None:
    old = ps.materialize(ps.Ensemble(cartpole_critic(SHAPES), 3), SHAPES, seed=0)
    assert ps.transfer(old, ps.Ensemble(cartpole_critic(SHAPES), 3), SHAPES).transfer_report.reused == ("value",)  # type: ignore[union-attr]
    grown = ps.transfer(old, ps.Ensemble(cartpole_critic(SHAPES), 4), SHAPES).transfer_report
    assert grown is not None and grown.reinitialised == ("value",) and grown.dropped == ("value",)


def test_not_a_module() -> None:
    with pytest.raises(ps.SpecError, match=r"^transfer: module: expected a module made by ps.materialize, got Linear$"):
        ps.transfer(torch.nn.Linear(2, 2), cartpole_critic(SHAPES), SHAPES)  # type: ignore[arg-type]
