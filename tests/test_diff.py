"""`ps.diff`, `ps.fingerprint` and `perceptspec diff` (issue #18 part 2): what changed between two specs, by block
path, and a spec's stable identity."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import perceptspec as ps
from perceptspec.examples.cartpole import cartpole_critic
from tests.test_cli import EXAMPLES, INVENTORY, assert_fails, run

SHAPES = {"observation": (4,)}


def critic() -> ps.Graph:
    return cartpole_critic(SHAPES)


def with_goal() -> ps.Graph:
    """The critic with a goal observation beside: an added branch, a concat, the head rewired; the body widened."""
    return ps.Graph({
        "embedding": ps.Dense(in_keys="observation", out_keys="embedding", hidden_units=[64, 64]),
        "goal": ps.Graph({"dense": ps.Dense(in_keys="goal", out_keys="g", hidden_units=[8])}, out_keys="g"),
        "cat": ps.Concat(in_keys=["embedding", "g"], out_keys="latent"),
        "value": ps.LinearOutput(in_keys="latent", out_keys="value", output_units=1, init=ps.NormC(0.01)),
    }, out_keys="value", init=ps.NormC(1.0))


class TestDiff:
    def test_equal_specs(self) -> None:
        assert not ps.diff(critic(), critic())
        assert str(ps.diff(critic(), critic())) == "no differences"

    def test_blocks_fields_and_keys(self) -> None:
        changes = ps.diff(critic(), with_goal())
        assert [(c.path, c.kind, c.field) for c in changes] == [
            ("embedding", "changed", "hidden_units"), ("goal", "added", None), ("cat", "added", None),
            ("value", "rewired", "in_keys")]
        assert str(changes).splitlines() == [
            "~ embedding: hidden_units changed [16, 32] -> [64, 64]",
            "+ goal: added Graph ['goal'] -> ['g']",  # the blocks inside an added graph are not listed again
            "+ cat: added Concat ['embedding', 'g'] -> ['latent']",
            "~ value: in_keys rewired ['embedding'] -> ['latent']",
        ]
        back = ps.diff(with_goal(), critic())
        assert [(c.path, c.kind) for c in back][:2] == [("goal", "removed"), ("cat", "removed")]

    def test_replaced_nested_and_ensembles(self) -> None:
        a = ps.Graph({"q": ps.Ensemble(critic(), 2)}, out_keys="value", init=ps.NormC(1.0))
        b = ps.Graph({"q": ps.Ensemble(with_goal(), 5)}, out_keys="value", init=ps.Orthogonal())
        lines = str(ps.diff(a, b)).splitlines()
        assert lines[:3] == ["~ (root): init changed NormC() -> Orthogonal()", "~ q: size changed 2 -> 5",
                             "~ q.spec.embedding: hidden_units changed [16, 32] -> [64, 64]"]
        assert str(ps.diff(critic(), ps.Ensemble(critic(), 2))) == \
            "~ (root): replaced Graph ['observation'] -> ['value'] by Ensemble ['observation'] -> ['value']"

    def test_not_a_spec(self) -> None:
        with pytest.raises(ps.SpecError, match=r"^diff: b: expected a block or a Graph, got dict$"):
            ps.diff(critic(), {})  # type: ignore[arg-type]


class TestFingerprint:
    def test_content_hash(self) -> None:
        fp = ps.fingerprint(critic())
        assert re.fullmatch("[0-9a-f]{64}", fp)
        assert fp == ps.fingerprint(ps.from_yaml(ps.to_yaml(critic())))  # equal specs, equal fingerprints
        assert fp != ps.fingerprint(with_goal()) != ps.fingerprint(ps.Ensemble(critic(), 2))
        blocks = dict(critic().blocks)
        reordered = ps.Graph(dict(reversed(list(blocks.items()))), out_keys="value", init=ps.NormC(1.0))
        assert ps.fingerprint(reordered) == fp  # a graph is its blocks and wiring, not the order they were listed

    def test_not_a_spec(self) -> None:
        with pytest.raises(ps.SpecError, match=r"^fingerprint: expected a block or a Graph, got str$"):
            ps.fingerprint("critic")  # type: ignore[arg-type]


class TestCommandLine:
    def test_specs_configs_and_saved_models(self, tmp_path: Path) -> None:
        (tmp_path / "a.yaml").write_text(ps.to_yaml(critic()))
        (tmp_path / "b.yaml").write_text(ps.to_yaml(with_goal()))
        result = run("diff", tmp_path / "a.yaml", tmp_path / "b.yaml")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == \
            f"{ps.fingerprint(critic())[:12]} -> {ps.fingerprint(with_goal())[:12]}"
        assert result.stdout.splitlines()[1:] == str(ps.diff(critic(), with_goal())).splitlines()

        ps.save(ps.materialize(critic(), SHAPES), tmp_path / "critic.safetensors")
        same = run("diff", tmp_path / "a.yaml", tmp_path / "critic.safetensors")
        assert same.stdout.splitlines()[1:] == ["no differences"]

        configs = run("diff", EXAMPLES / "complex.yaml", EXAMPLES / "shared_complex.yaml", "--env", INVENTORY)
        assert "critic: " in configs.stdout and "- screen: removed VGGConvDense" in configs.stdout

    def test_a_config_needs_an_env(self) -> None:
        assert_fails(run("diff", EXAMPLES / "cartpole.yaml", EXAMPLES / "complex.yaml"), 1,
                     "is a composer config (no 'type' at its top): give --env ENV")
